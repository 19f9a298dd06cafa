//! The native rsync client: connect to a daemon, authenticate, negotiate as rsync 3.5
//! does (and as a 3.1 daemon expects), then list, pull or push on the engine's roles. For
//! the agent and syncctl; it never imports the daemon.

mod blame;
mod command;
mod connect;
mod error;
mod filters;
mod list;
mod options;
mod pull;
mod push;
mod session;
mod setup;
mod transport;
mod url;

pub use crate::engine::session::{ItemEvent, ItemWhat, LocalFilter, PeerStats};
pub use command::run as run_command_line;
pub use connect::{ConnectOptions, Password, Progress, read_password};
pub use error::{ClientError, Refusal};
pub use list::{ListOptions, Listing, Shown, list};
pub use options::{ClientArgs, parse_command_line, parse_options};
pub use pull::{PullOutcome, pull, pull_from};
pub use push::{PushOutcome, push, push_to};
pub use session::{Endpoint, ServerLine};
pub use url::{DEFAULT_PORT, Remote, UrlError};

/// The module list a daemon gives for an address without a module (its MOTD first, then
/// `name<TAB>comment` lines as it formats them).
pub fn list_modules(remote: &Remote, c: &ConnectOptions) -> Result<Vec<String>, ClientError> {
    connect::greet(remote, c)?.list_modules()
}
