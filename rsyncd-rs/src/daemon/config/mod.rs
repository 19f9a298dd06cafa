//! `rsyncd.conf` into a typed [`DaemonConfig`] (upstream: params.c, loadparm.c).
