//! `hosts allow` / `hosts deny` (upstream: access.c).
