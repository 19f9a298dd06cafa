//! `auth users`, the secrets file and `strict modes` (upstream: authenticate.c auth_server()).
