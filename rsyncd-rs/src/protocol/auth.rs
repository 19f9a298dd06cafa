//! Daemon authentication digests: negotiation, challenge and response
//! (upstream: authenticate.c, compat.c negotiate_daemon_auth(), checksum.c).
