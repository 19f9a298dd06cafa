//! The `@RSYNCD:` text handshake: greeting, protocol choice, module request lines
//! (upstream: clientserver.c exchange_protocols(), start_daemon()).
