//! From the connect flags to the client library's options.

use std::time::Duration;

use rsyncd_rs::client::{ConnectOptions, Password, Remote};

use crate::cli::ConnectArgs;

/// The parsed address and how to connect to it.
pub fn connect_options(url: &str, a: &ConnectArgs) -> anyhow::Result<(Remote, ConnectOptions)> {
    let remote = Remote::parse(url, a.port)?;
    let password = Password::from_file_or_env(a.password_file.as_deref());
    let secs = |s: u64| (s > 0).then(|| Duration::from_secs(s));
    let max_protocol = match a.protocol {
        None => rsyncd_rs::PROTOCOL_VERSION,
        Some(p) if (rsyncd_rs::MIN_PROTOCOL_VERSION..=rsyncd_rs::PROTOCOL_VERSION).contains(&p) => {
            p
        }
        Some(p) => anyhow::bail!(
            "--protocol={p}: this client speaks {} to {}",
            rsyncd_rs::MIN_PROTOCOL_VERSION,
            rsyncd_rs::PROTOCOL_VERSION
        ),
    };
    Ok((
        remote,
        ConnectOptions {
            connect_timeout: secs(a.contimeout),
            io_timeout: secs(a.timeout),
            bind: a.address,
            password,
            max_protocol,
            connect_prog: None,
            ..ConnectOptions::default()
        },
    ))
}
