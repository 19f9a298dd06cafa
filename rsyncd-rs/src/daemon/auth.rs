//! `auth users`, the secrets file and `strict modes` (upstream: authenticate.c auth_server()).
//!
//! The daemon calls [`check_digest_floor`] after choosing the digest and before sending
//! the challenge, then [`check_auth`] with the client's response line. Failures carry
//! upstream's log reason, so the session can log
//! `auth failed on module M from HOST (ADDR) for USER: REASON` via
//! [`AuthFailure::log_line`] and send the client only `@ERROR: auth failed on module M`.

use std::ffi::{CString, OsStr};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{AT_FDCWD, OFlag, open, openat, readlinkat};
use nix::sys::stat::{Mode, fstatat};
use nix::unistd::{Gid, Group, User, geteuid, getgrouplist};
use subtle::ConstantTimeEq as _;

use crate::protocol::auth::{AuthDigest, MAX_RESPONSE_LINE, response};
use crate::wildmatch::wildmatch;

/// What an `auth users` rule's `:ro` / `:rw` suffix does to the module's `read only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessOverride {
    /// `:ro`: read-only for this user, whatever the module says.
    ReadOnly,
    /// `:rw`: writable for this user, whatever the module says.
    ReadWrite,
}

/// The suffix of one `auth users` rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOption {
    /// No suffix, or one upstream ignores.
    None,
    /// `:deny` (upstream looks only at the first letter, so `:d...` denies).
    Deny,
    /// `:ro`, any case.
    ReadOnly,
    /// `:rw`, any case.
    ReadWrite,
}

/// One `auth users` rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthRule {
    /// The wildcard pattern, without `@` or the `:suffix`.
    pub pattern: String,
    /// `@pattern`: matched against the user's system group names.
    pub is_group: bool,
    /// The `:suffix`.
    pub option: RuleOption,
}

/// Splits an `auth users` value into rules: on spaces, tabs, commas, CR and LF; or, when
/// the value starts with a comma (after white space), on commas only with each entry
/// trimmed, so names may contain spaces. Empty entries are dropped. The pattern ends at
/// the first `:`.
///
/// Upstream: util1.c, conf_strtok(); authenticate.c, auth_server().
pub fn parse_auth_users(value: &str) -> Vec<AuthRule> {
    let value = value.trim_start_matches(is_c_space);
    let entries: Vec<&str> = match value.strip_prefix(',') {
        Some(rest) => rest
            .split(',')
            .map(|e| e.trim_matches(is_c_space))
            .filter(|e| !e.is_empty())
            .collect(),
        None => value
            .split([' ', ',', '\t', '\r', '\n'])
            .filter(|e| !e.is_empty())
            .collect(),
    };
    entries.into_iter().map(parse_rule).collect()
}

/// C's `isspace()` in the C locale.
fn is_c_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\x0b' | '\x0c' | '\r')
}

fn parse_rule(entry: &str) -> AuthRule {
    let (name, option) = match entry.split_once(':') {
        None => (entry, RuleOption::None),
        Some((name, opts)) => {
            let b = opts.as_bytes();
            let lower = |i: usize| b.get(i).map_or(0, u8::to_ascii_lowercase);
            let option = match (lower(0), lower(1)) {
                (b'd', _) => RuleOption::Deny,
                (b'r', b'o') => RuleOption::ReadOnly,
                (b'r', b'w') => RuleOption::ReadWrite,
                _ => RuleOption::None,
            };
            (name, option)
        }
    };
    match name.strip_prefix('@') {
        Some(group) => AuthRule {
            pattern: group.to_string(),
            is_group: true,
            option,
        },
        None => AuthRule {
            pattern: name.to_string(),
            is_group: false,
            option,
        },
    }
}

/// Why the secrets file was not used although it opened; upstream logs this line
/// before the `ignoring secrets file` failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretsFileProblem {
    /// `strict modes`: other-read or other-write is set (other-execute is not looked at).
    OtherAccessible,
    /// `strict modes`, running as root: the file is not owned by root.
    NotOwnedByRoot,
    /// `fstat()` on the open file failed.
    Stat {
        /// The configured path.
        path: String,
        /// The error text.
        error: String,
    },
}

impl SecretsFileProblem {
    /// The line upstream logs for this problem.
    ///
    /// Upstream: authenticate.c, check_secret().
    pub fn log_line(&self) -> String {
        match self {
            SecretsFileProblem::OtherAccessible => {
                "secrets file must not be other-accessible (see strict modes option)".into()
            }
            SecretsFileProblem::NotOwnedByRoot => {
                "secrets file must be owned by root when running as root (see strict modes)".into()
            }
            SecretsFileProblem::Stat { path, error } => format!("fstat({path}): {error}"),
        }
    }
}

/// Why authentication failed; `Display` is upstream's log wording.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthReason {
    /// The response line was missing, too long, held a NUL, or had no space.
    #[error("invalid challenge response")]
    InvalidChallengeResponse,
    /// No `auth users` rule matched the user.
    #[error("no matching rule")]
    NoMatchingRule,
    /// The first matching rule had `:deny`.
    #[error("denied by rule")]
    DeniedByRule,
    /// `secrets file` unset, or it could not be opened (including a symlink owned by
    /// someone other than root or the daemon's user).
    #[error("no secrets file")]
    NoSecretsFile,
    /// The file opened but was refused; the problem is logged on a line of its own.
    #[error("ignoring secrets file")]
    IgnoringSecretsFile(SecretsFileProblem),
    /// The user name starts with `#`, which would match a comment line.
    #[error("invalid username")]
    InvalidUsername,
    /// No `user:` (or matching `@group:`) line.
    #[error("secret not found")]
    SecretNotFound,
    /// A line was found but its password gives a different response.
    #[error("password mismatch")]
    PasswordMismatch,
    /// `auth digest` names a digest this build lacks: every login fails.
    #[error("the configured 'auth digest = {floor}' is not a supported digest on this build")]
    UnsupportedDigestFloor {
        /// The configured value.
        floor: String,
    },
    /// The negotiated digest ranks below the module's `auth digest`.
    #[error(
        "negotiated auth digest {negotiated} is weaker than the required 'auth digest = {floor}'"
    )]
    DigestTooWeak {
        /// The negotiated digest's name.
        negotiated: &'static str,
        /// The configured value.
        floor: String,
    },
}

/// A failed authentication: the user (when the response line named one) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    /// The user from the response line; `None` when none was parsed.
    pub user: Option<String>,
    /// Why.
    pub reason: AuthReason,
}

impl AuthFailure {
    fn anonymous(reason: AuthReason) -> AuthFailure {
        AuthFailure { user: None, reason }
    }

    /// The daemon log line, exactly as upstream words it (without the newline); a
    /// failure with no user omits the `for USER` part, as upstream does.
    ///
    /// Upstream: authenticate.c, auth_server().
    pub fn log_line(&self, module: &str, host: &str, addr: &str) -> String {
        match &self.user {
            Some(user) => format!(
                "auth failed on module {module} from {host} ({addr}) for {user}: {}",
                self.reason
            ),
            None => format!(
                "auth failed on module {module} from {host} ({addr}): {}",
                self.reason
            ),
        }
    }

    /// The extra line upstream logs first for a refused secrets file, if any.
    pub fn preceding_log_line(&self) -> Option<String> {
        match &self.reason {
            AuthReason::IgnoringSecretsFile(problem) => Some(problem.log_line()),
            _ => None,
        }
    }
}

impl fmt::Display for AuthFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.reason.fmt(f)
    }
}

impl std::error::Error for AuthFailure {}

/// A successful authentication.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthOk {
    /// The authenticated user name (for logs and `RSYNC_USER_NAME`).
    pub user: String,
    /// A `:ro` / `:rw` from the matching rule.
    pub access: Option<AccessOverride>,
}

/// A module's authentication settings.
#[derive(Debug, Clone, Copy)]
pub struct ModuleAuth<'a> {
    /// `auth users`; authentication is only asked for when this is non-empty
    /// (see [`auth_required`]).
    pub auth_users: &'a str,
    /// `secrets file`.
    pub secrets_file: Option<&'a Path>,
    /// `strict modes` (upstream default: yes).
    pub strict_modes: bool,
}

/// Whether a module with this `auth users` value challenges the client at all; an
/// unset or empty value means anonymous access.
pub fn auth_required(auth_users: Option<&str>) -> bool {
    auth_users.is_some_and(|v| !v.is_empty())
}

/// Applies the module's `auth digest` floor (unset or empty: none) to the negotiated
/// digest. Call it before sending the challenge: upstream refuses a weak digest then,
/// and the failure has no user.
///
/// Upstream: authenticate.c, auth_server(); checksum.c, auth_digest_rank().
pub fn check_digest_floor(negotiated: AuthDigest, floor: Option<&str>) -> Result<(), AuthFailure> {
    let Some(floor) = floor.filter(|f| !f.is_empty()) else {
        return Ok(());
    };
    let Some(required) = AuthDigest::from_name(floor) else {
        return Err(AuthFailure::anonymous(AuthReason::UnsupportedDigestFloor {
            floor: floor.to_string(),
        }));
    };
    if negotiated.rank() > required.rank() {
        return Err(AuthFailure::anonymous(AuthReason::DigestTooWeak {
            negotiated: negotiated.name(),
            floor: floor.to_string(),
        }));
    }
    Ok(())
}

/// Checks the client's response line (`user response`, as read: without the newline;
/// carriage returns are dropped here too) against `challenge`, the `auth users` rules
/// and the secrets file. `groups_of` gives a user's system group names, primary group
/// first (see [`system_groups`]); it is only asked when a rule starts with `@`.
///
/// Upstream: authenticate.c, auth_server() and check_secret().
pub fn check_auth(
    line: &[u8],
    challenge: &str,
    digest: AuthDigest,
    module: &ModuleAuth<'_>,
    running_as_root: bool,
    groups_of: &dyn Fn(&str) -> Vec<String>,
) -> Result<AuthOk, AuthFailure> {
    // Check the bound before copying anything.
    let kept = line.iter().filter(|&&b| b != b'\r').count();
    if kept > MAX_RESPONSE_LINE || line.iter().any(|&b| b == 0 || b == b'\n') {
        return Err(AuthFailure::anonymous(AuthReason::InvalidChallengeResponse));
    }
    let line: Vec<u8> = line.iter().copied().filter(|&b| b != b'\r').collect();
    let Some(space) = line.iter().position(|&b| b == b' ') else {
        return Err(AuthFailure::anonymous(AuthReason::InvalidChallengeResponse));
    };
    let (user, pass) = (&line[..space], &line[space + 1..]);
    let user_name = String::from_utf8_lossy(user).into_owned();
    let fail = |reason| AuthFailure {
        user: Some(user_name.clone()),
        reason,
    };

    let matched = matching_rule(module.auth_users, user, &|| groups_of(&user_name));
    let (option, group) = match matched {
        None => return Err(fail(AuthReason::NoMatchingRule)),
        Some((RuleOption::Deny, _)) => return Err(fail(AuthReason::DeniedByRule)),
        Some(found) => found,
    };
    let secrets = Secrets {
        path: module.secrets_file,
        strict_modes: module.strict_modes,
        running_as_root,
    };
    secrets
        .check(
            user,
            group.as_deref().map(str::as_bytes),
            challenge,
            digest,
            pass,
        )
        .map_err(fail)?;
    let access = match option {
        RuleOption::ReadOnly => Some(AccessOverride::ReadOnly),
        RuleOption::ReadWrite => Some(AccessOverride::ReadWrite),
        RuleOption::None | RuleOption::Deny => None,
    };
    Ok(AuthOk {
        user: user_name,
        access,
    })
}

/// The first `auth users` rule that matches `user`: its suffix, and for an `@group` rule
/// the group that matched. `groups_of` gives the user's system group names and is
/// asked at most once, only when a group rule is reached.
///
/// Upstream: authenticate.c, auth_server().
pub fn matching_rule(
    auth_users: &str,
    user: &[u8],
    groups_of: &dyn Fn() -> Vec<String>,
) -> Option<(RuleOption, Option<String>)> {
    let mut groups: Option<Vec<String>> = None;
    for rule in parse_auth_users(auth_users) {
        if !rule.is_group {
            if wildmatch(rule.pattern.as_bytes(), user) {
                return Some((rule.option, None));
            }
            continue;
        }
        let groups = groups.get_or_insert_with(groups_of);
        if let Some(group) = groups
            .iter()
            .find(|g| wildmatch(rule.pattern.as_bytes(), g.as_bytes()))
        {
            return Some((rule.option, Some(group.clone())));
        }
    }
    None
}

/// Why the daemon would ignore a secrets file with this owner and mode: with `strict
/// modes`, one others may read or write, or (running as root) one not owned by root.
///
/// Upstream: authenticate.c, check_secret().
pub fn secrets_mode_problem(
    meta: &std::fs::Metadata,
    strict_modes: bool,
    running_as_root: bool,
) -> Option<SecretsFileProblem> {
    if !strict_modes {
        return None;
    }
    if meta.mode() & 0o006 != 0 {
        return Some(SecretsFileProblem::OtherAccessible);
    }
    if running_as_root && meta.uid() != 0 {
        return Some(SecretsFileProblem::NotOwnedByRoot);
    }
    None
}

/// One non-empty line of a secrets file as the daemon reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecretsLine {
    /// 1-based.
    pub line: u32,
    /// The text (up to the first CR or LF).
    pub text: Vec<u8>,
}

impl SecretsLine {
    /// `(name, secret, is_group)` for a `name:secret` or `@group:secret` line; `None`
    /// for a line without `:`, which matches nobody.
    pub fn entry(&self) -> Option<(&[u8], &[u8], bool)> {
        let (is_group, s) = match self.text.strip_prefix(b"@") {
            Some(rest) => (true, rest),
            None => (false, self.text.as_slice()),
        };
        let colon = s.iter().position(|&b| b == b':')?;
        Some((&s[..colon], &s[colon + 1..], is_group))
    }
}

/// Opens the secrets file as the daemon does (no symlink owned by another user is
/// followed), refuses it as the daemon would ([`secrets_mode_problem`]) and returns its
/// lines as the daemon reads them (1023-byte `fgets()` pieces).
///
/// Errors: the reason the daemon gives when it cannot use the file.
pub fn read_secrets_file(
    path: &Path,
    strict_modes: bool,
    running_as_root: bool,
) -> Result<Vec<SecretsLine>, AuthReason> {
    let mut reader = open_secrets(path, strict_modes, running_as_root)?;
    let mut out = Vec::new();
    let mut chunk = Vec::with_capacity(SECRETS_CHUNK);
    let mut line: u32 = 1;
    while fgets(&mut reader, &mut chunk) {
        if let Some(text) = secrets_text(&chunk) {
            out.push(SecretsLine {
                line,
                text: text.to_vec(),
            });
        }
        if chunk.last() == Some(&b'\n') {
            line = line.saturating_add(1);
        }
    }
    chunk.fill(0);
    Ok(out)
}

/// The secrets file opened and vetted; see [`read_secrets_file`].
fn open_secrets(
    path: &Path,
    strict_modes: bool,
    running_as_root: bool,
) -> Result<BufReader<File>, AuthReason> {
    let file = open_no_attacker_symlinks(path).map_err(|_| AuthReason::NoSecretsFile)?;
    let meta = file.metadata().map_err(|e| {
        AuthReason::IgnoringSecretsFile(SecretsFileProblem::Stat {
            path: path.display().to_string(),
            error: e.to_string(),
        })
    })?;
    if let Some(problem) = secrets_mode_problem(&meta, strict_modes, running_as_root) {
        return Err(AuthReason::IgnoringSecretsFile(problem));
    }
    Ok(BufReader::new(file))
}

/// `strtok(line, "\n\r")` on one `fgets()` piece: skip leading CR/LF, stop at the next
/// one or a NUL; `None` for a piece with nothing else.
fn secrets_text(chunk: &[u8]) -> Option<&[u8]> {
    let text = chunk.split(|&b| b == 0).next().unwrap_or_default();
    text.split(|&b| b == b'\n' || b == b'\r')
        .find(|t| !t.is_empty())
}

/// The system groups of `user` by name, primary group first, then the rest in
/// `getgrouplist()` order; groups without a name are left out. Not a real user: none.
///
/// Upstream: uidlist.c, getallgroups() and gid_to_group(), as auth_server() uses them.
pub fn system_groups(user: &str) -> Vec<String> {
    let Ok(Some(by_name)) = User::from_name(user) else {
        return Vec::new();
    };
    // Upstream looks the uid up again and uses that entry's name and primary group.
    let Ok(Some(pw)) = User::from_uid(by_name.uid) else {
        return Vec::new();
    };
    let Ok(name) = CString::new(pw.name.as_bytes()) else {
        return Vec::new();
    };
    let Ok(mut gids) = getgrouplist(&name, pw.gid) else {
        return Vec::new();
    };
    if gids.first() != Some(&pw.gid) {
        match gids.iter().position(|&g| g == pw.gid) {
            Some(j) => gids.swap(0, j),
            None => gids.insert(0, pw.gid),
        }
    }
    gids.into_iter()
        .filter_map(|gid: Gid| Group::from_gid(gid).ok().flatten())
        .map(|g| g.name)
        .collect()
}

/// Upstream reads the secrets file with `fgets()` into a 1024-byte buffer, so a longer
/// line is seen as several.
const SECRETS_CHUNK: usize = 1023;

struct Secrets<'a> {
    path: Option<&'a Path>,
    strict_modes: bool,
    running_as_root: bool,
}

impl Secrets<'_> {
    /// Upstream: authenticate.c, check_secret().
    fn check(
        &self,
        user: &[u8],
        group: Option<&[u8]>,
        challenge: &str,
        digest: AuthDigest,
        pass: &[u8],
    ) -> Result<(), AuthReason> {
        let path = self
            .path
            .filter(|p| !p.as_os_str().is_empty())
            .ok_or(AuthReason::NoSecretsFile)?;
        let mut reader = open_secrets(path, self.strict_modes, self.running_as_root)?;
        if user.first() == Some(&b'#') {
            return Err(AuthReason::InvalidUsername);
        }

        let mut user = Some(user);
        let mut group = group;
        let mut err = AuthReason::SecretNotFound;
        let mut chunk = Vec::with_capacity(SECRETS_CHUNK);
        while (user.is_some() || group.is_some()) && fgets(&mut reader, &mut chunk) {
            let Some(s) = secrets_text(&chunk) else {
                continue;
            };
            let (wanted, s) = match s.strip_prefix(b"@") {
                Some(rest) => (&mut group, rest),
                None => (&mut user, s),
            };
            let Some(name) = *wanted else { continue };
            let Some(secret) = s.strip_prefix(name).and_then(|r| r.strip_prefix(b":")) else {
                continue;
            };
            let expected = response(digest, secret, challenge);
            if bool::from(expected.as_bytes().ct_eq(pass)) {
                return Ok(());
            }
            err = AuthReason::PasswordMismatch;
            // Each name gets one try; the other (user or group) may still succeed.
            *wanted = None;
        }
        chunk.fill(0);
        Err(err)
    }
}

/// `fgets()` into a 1024-byte buffer: up to 1023 bytes, or through the next newline.
/// A read error ends the file, as it does for upstream.
fn fgets(reader: &mut impl BufRead, chunk: &mut Vec<u8>) -> bool {
    chunk.fill(0);
    chunk.clear();
    while chunk.len() < SECRETS_CHUNK {
        let Ok(avail) = reader.fill_buf() else { break };
        if avail.is_empty() {
            break;
        }
        let room = avail.len().min(SECRETS_CHUNK - chunk.len());
        let (take, done) = match avail[..room].iter().position(|&b| b == b'\n') {
            Some(i) => (i + 1, true),
            None => (room, false),
        };
        chunk.extend_from_slice(&avail[..take]);
        reader.consume(take);
        if done {
            break;
        }
    }
    !chunk.is_empty()
}

/// Upstream's path limits for the walk below (`MAXPATHLEN`, and twice it for the
/// unresolved rest) and its cap on symlinks followed.
const MAX_PATH: usize = 4096;
const MAX_SYMLINKS: u32 = 40;

/// Opens `path` read-only, walking it one component at a time without following any
/// symlink owned by someone other than root or our effective uid (`ELOOP`); trusted
/// symlinks are followed, at most 40 of them.
///
/// Upstream: syscall.c, open_no_attacker_symlinks() (ona_open()), which 3.5.0 uses for
/// the secrets file so a planted link to e.g. /etc/shadow is not read. (At auth time no
/// module directory confinement applies yet.) Where upstream would silently truncate
/// an over-long symlink target or path tail, this fails instead.
fn open_no_attacker_symlinks(path: &Path) -> nix::Result<File> {
    let trusted = geteuid().as_raw();
    let mut rest: Vec<u8> = path.as_os_str().as_bytes().to_vec();
    if rest.is_empty() {
        return Err(Errno::EINVAL);
    }
    if rest.len() >= 2 * MAX_PATH {
        return Err(Errno::ENAMETOOLONG);
    }
    let dir_flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    let mut dir: Option<OwnedFd> = None;
    if rest.starts_with(b"/") {
        dir = Some(open("/", dir_flags, Mode::empty())?);
        rest = trim_slashes(&rest).to_vec();
    }
    let mut links_left = MAX_SYMLINKS;
    while !rest.is_empty() {
        let at = dir.as_ref().map_or(AT_FDCWD, |d| d.as_fd());
        let slash = rest.iter().position(|&b| b == b'/');
        let comp = OsStr::from_bytes(&rest[..slash.unwrap_or(rest.len())]);
        if comp.is_empty() {
            return Err(Errno::EINVAL);
        }
        if comp.len() >= MAX_PATH {
            return Err(Errno::ENAMETOOLONG);
        }
        let st = fstatat(at, comp, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)?;
        let kind = st.st_mode & libc::S_IFMT;
        if kind == libc::S_IFLNK {
            if st.st_uid != 0 && st.st_uid != trusted {
                return Err(Errno::ELOOP);
            }
            links_left = links_left.checked_sub(1).ok_or(Errno::ELOOP)?;
            let target = readlinkat(at, comp)?;
            let target = target.as_bytes();
            let tail = slash.map_or(&[][..], |i| &rest[i..]);
            if target.len() >= MAX_PATH || tail.len() >= MAX_PATH {
                return Err(Errno::ENAMETOOLONG);
            }
            let mut rebuilt = target.to_vec();
            rebuilt.extend_from_slice(tail);
            if rebuilt.len() >= 2 * MAX_PATH {
                return Err(Errno::ENAMETOOLONG);
            }
            if target.starts_with(b"/") {
                dir = Some(open("/", dir_flags, Mode::empty())?);
                rebuilt = trim_slashes(&rebuilt).to_vec();
            }
            rest = rebuilt;
            continue;
        }
        let Some(slash) = slash else {
            let flags = OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC;
            return Ok(File::from(openat(at, comp, flags, Mode::empty())?));
        };
        if kind != libc::S_IFDIR {
            return Err(Errno::ENOTDIR);
        }
        let next = openat(at, comp, dir_flags | OFlag::O_NOFOLLOW, Mode::empty())?;
        dir = Some(next);
        rest = trim_slashes(&rest[slash..]).to_vec();
    }
    // The path named a directory.
    Err(Errno::EISDIR)
}

fn trim_slashes(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b'/').count();
    &s[n..]
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::path::PathBuf;

    // Captured pairs: a-push-p32 (accepted) and a-authfail (refused), password "1".
    const P32_CHALLENGE: &str =
        "X+DMRXqUcaj56Tp6C1cBNsPUdIr8WY2JTVjUVq+ty6jJgNHW12QeUSZp3e1rnotRd8TVw4nR7nZj9AcmiQwWuA";
    const P32_LINE: &[u8] = b"rsync_backup y88t/x3HBXxIvgEItvcgitCb85d7xehtFRQ8X6NeYbQPaS/Ja18rZ3in1PPILGNu5iHB2Vc+307D7pkQ1pGYUQ";
    const FAIL_CHALLENGE: &str =
        "OGBk297gS/3qpiz8oqtMfRM3urYUCToAZPVeXN1xSKOdS/YPjudBqZ/xSxPcPQsaT9TH1zN60NkZbilFFV9fCg";
    const FAIL_LINE: &[u8] = b"rsync_backup FD1ReoejwcPFq9I81kQLREF+pfzxlv0OvlnV/4r5N1kYnC33qS/3J61MxVkN39s8TH9UKdMxglqLKZGV9fnOng";

    fn no_groups(_: &str) -> Vec<String> {
        Vec::new()
    }

    /// A secrets file with `content` and `mode`, owned by whoever runs the tests.
    fn secrets(content: &[u8], mode: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secrets");
        std::fs::write(&path, content).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        (dir, path)
    }

    fn run(
        line: &[u8],
        challenge: &str,
        digest: AuthDigest,
        rules: &str,
        path: Option<&Path>,
        groups_of: &dyn Fn(&str) -> Vec<String>,
    ) -> Result<AuthOk, AuthFailure> {
        let module = ModuleAuth {
            auth_users: rules,
            secrets_file: path,
            strict_modes: true,
        };
        check_auth(line, challenge, digest, &module, false, groups_of)
    }

    fn reason(r: Result<AuthOk, AuthFailure>) -> AuthReason {
        r.unwrap_err().reason
    }

    fn line_for(user: &str, password: &[u8], challenge: &str, digest: AuthDigest) -> Vec<u8> {
        format!("{user} {}", response(digest, password, challenge)).into_bytes()
    }

    #[test]
    fn rule_parsing() {
        let rules = parse_auth_users("joe:deny @guest:deny admin:rw @rsync:ro susan,joe\tsam");
        let short: Vec<_> = rules
            .iter()
            .map(|r| (r.pattern.as_str(), r.is_group, r.option))
            .collect();
        assert_eq!(
            short,
            [
                ("joe", false, RuleOption::Deny),
                ("guest", true, RuleOption::Deny),
                ("admin", false, RuleOption::ReadWrite),
                ("rsync", true, RuleOption::ReadOnly),
                ("susan", false, RuleOption::None),
                ("joe", false, RuleOption::None),
                ("sam", false, RuleOption::None),
            ]
        );
        let rules = parse_auth_users("  , joe:deny, @Some Group:DENY,, admin:RW , @RO Group:ro ");
        let short: Vec<_> = rules
            .iter()
            .map(|r| (r.pattern.as_str(), r.is_group, r.option))
            .collect();
        assert_eq!(
            short,
            [
                ("joe", false, RuleOption::Deny),
                ("Some Group", true, RuleOption::Deny),
                ("admin", false, RuleOption::ReadWrite),
                ("RO Group", true, RuleOption::ReadOnly),
            ]
        );
        // Only the first letters count: ":dork" denies, ":r" and ":read" do nothing.
        let opts: Vec<_> = parse_auth_users("a:dork b:r c:read d: e:Rw:x f:rO")
            .into_iter()
            .map(|r| r.option)
            .collect();
        assert_eq!(
            opts,
            [
                RuleOption::Deny,
                RuleOption::None,
                RuleOption::None,
                RuleOption::None,
                RuleOption::ReadWrite,
                RuleOption::ReadOnly
            ]
        );
        assert!(parse_auth_users(" \t ").is_empty());
        assert!(parse_auth_users(",,, ,").is_empty());
        assert!(auth_required(Some(" ")));
        assert!(!auth_required(Some("")));
        assert!(!auth_required(None));
    }

    #[test]
    fn captured_sessions() {
        let (_d, path) = secrets(b"rsync_backup:1\n", 0o600);
        let ok = run(
            P32_LINE,
            P32_CHALLENGE,
            AuthDigest::Sha512,
            "rsync_backup",
            Some(&path),
            &no_groups,
        )
        .unwrap();
        assert_eq!(
            ok,
            AuthOk {
                user: "rsync_backup".into(),
                access: None
            }
        );
        let err = run(
            FAIL_LINE,
            FAIL_CHALLENGE,
            AuthDigest::Sha512,
            "rsync_backup",
            Some(&path),
            &no_groups,
        )
        .unwrap_err();
        assert_eq!(
            err.log_line("backup", "localhost", "127.0.0.1"),
            "auth failed on module backup from localhost (127.0.0.1) for rsync_backup: password mismatch"
        );
        // The scripted old clients: md4-old at protocol 29, md5 at 30.
        let md4 = b"rsync_backup ExS1VYMoi8ODPPGTqU/xmw\r";
        assert!(
            run(
                md4,
                "xC3rRZb8swVhGqlpzAJAcg",
                AuthDigest::Md4Old,
                "rsync_backup",
                Some(&path),
                &no_groups
            )
            .is_ok()
        );
        let md5 = b"rsync_backup JGEkSegUooQY5mS1l2OizA";
        assert!(
            run(
                md5,
                "wdxR1ZrnVMQOGjtx112XKA",
                AuthDigest::Md5,
                "rsync_backup",
                Some(&path),
                &no_groups
            )
            .is_ok()
        );
        // The same response checked as the wrong digest fails.
        assert_eq!(
            reason(run(
                md5,
                "wdxR1ZrnVMQOGjtx112XKA",
                AuthDigest::Md4,
                "rsync_backup",
                Some(&path),
                &no_groups
            )),
            AuthReason::PasswordMismatch
        );
    }

    #[test]
    fn response_line_shape() {
        let (_d, path) = secrets(b"u:pw\n", 0o600);
        for line in [&b"u"[..], b"", b"u\0 x", &[b'u'; MAX_RESPONSE_LINE + 1]] {
            let err = run(line, "c", AuthDigest::Md5, "*", Some(&path), &no_groups).unwrap_err();
            assert_eq!(err.reason, AuthReason::InvalidChallengeResponse);
            assert_eq!(err.user, None);
            assert_eq!(
                err.log_line("m", "h", "1.2.3.4"),
                "auth failed on module m from h (1.2.3.4): invalid challenge response"
            );
        }
        // Trailing junk after the response is part of it: a mismatch.
        let mut line = line_for("u", b"pw", "c", AuthDigest::Md5);
        assert!(run(&line, "c", AuthDigest::Md5, "u", Some(&path), &no_groups).is_ok());
        line.push(b' ');
        assert_eq!(
            reason(run(
                &line,
                "c",
                AuthDigest::Md5,
                "u",
                Some(&path),
                &no_groups
            )),
            AuthReason::PasswordMismatch
        );
    }

    #[test]
    fn rules_decide_first() {
        let (_d, path) = secrets(b"joe:pw\nadmin:pw\nsam:pw\n", 0o600);
        let d = AuthDigest::Sha256;
        let rules = "joe:deny admin:rw s?m:ro j*";
        let check = |user: &str| {
            run(
                &line_for(user, b"pw", "c", d),
                "c",
                d,
                rules,
                Some(&path),
                &no_groups,
            )
        };
        assert_eq!(reason(check("joe")), AuthReason::DeniedByRule);
        assert_eq!(
            check("admin").unwrap().access,
            Some(AccessOverride::ReadWrite)
        );
        assert_eq!(check("sam").unwrap().access, Some(AccessOverride::ReadOnly));
        assert_eq!(reason(check("jim")), AuthReason::SecretNotFound);
        let err = check("bob").unwrap_err();
        assert_eq!(
            (err.reason, err.user.as_deref()),
            (AuthReason::NoMatchingRule, Some("bob"))
        );
        // Matching is case-sensitive for user names.
        assert_eq!(reason(check("SAM")), AuthReason::NoMatchingRule);
    }

    #[test]
    fn group_rules_and_group_secrets() {
        let groups = |user: &str| -> Vec<String> {
            match user {
                "ann" => vec!["staff".into(), "backup".into()],
                "bob" => vec!["guest".into()],
                _ => Vec::new(),
            }
        };
        let d = AuthDigest::Sha1;
        let rules = "@guest:deny @back*:ro";
        let check = |path: &Path, user: &str, pw: &[u8]| {
            run(
                &line_for(user, pw, "ch", d),
                "ch",
                d,
                rules,
                Some(path),
                &groups,
            )
        };
        let (_d1, path) = secrets(b"ann:own\n@backup:shared\n", 0o600);
        assert_eq!(
            check(&path, "ann", b"own").unwrap().access,
            Some(AccessOverride::ReadOnly)
        );
        // The user line mismatches, the group line still counts.
        assert!(check(&path, "ann", b"shared").is_ok());
        assert_eq!(
            reason(check(&path, "ann", b"nope")),
            AuthReason::PasswordMismatch
        );
        assert_eq!(reason(check(&path, "bob", b"x")), AuthReason::DeniedByRule);
        assert_eq!(
            reason(check(&path, "cid", b"x")),
            AuthReason::NoMatchingRule
        );
        // Only the matched group's line is used.
        let (_d2, path) = secrets(b"@staff:shared\n", 0o600);
        assert_eq!(
            reason(check(&path, "ann", b"shared")),
            AuthReason::SecretNotFound
        );
        // The groups are asked for once, and only for @ rules.
        let calls = std::cell::Cell::new(0);
        let counting = |u: &str| {
            calls.set(calls.get() + 1);
            groups(u)
        };
        let _ = run(
            &line_for("ann", b"x", "ch", d),
            "ch",
            d,
            "@a @b @c",
            Some(&path),
            &counting,
        );
        assert_eq!(calls.get(), 1);
        let _ = run(
            &line_for("ann", b"x", "ch", d),
            "ch",
            d,
            "ann",
            Some(&path),
            &counting,
        );
        assert_eq!(calls.get(), 1);
    }

    #[test]
    fn secrets_file_format() {
        let d = AuthDigest::Md5;
        let check = |content: &[u8], user: &str, pw: &[u8]| {
            let (_dir, path) = secrets(content, 0o600);
            run(
                &line_for(user, pw, "ch", d),
                "ch",
                d,
                "*",
                Some(&path),
                &no_groups,
            )
            .map(|_| ())
        };
        let file = b"# comment\n\n\r\nalice:a:b:c\r\nbob:with space \n\rcarol:c\rjunk\ndave:d\0ignored\n:empty\n";
        assert!(check(file, "alice", b"a:b:c").is_ok());
        assert!(check(file, "bob", b"with space ").is_ok());
        assert_eq!(
            check(file, "bob", b"with space").unwrap_err().reason,
            AuthReason::PasswordMismatch
        );
        assert!(check(file, "carol", b"c").is_ok());
        assert!(check(file, "dave", b"d").is_ok());
        assert!(check(file, "", b"empty").is_ok());
        assert_eq!(
            check(file, "eve", b"x").unwrap_err().reason,
            AuthReason::SecretNotFound
        );
        assert_eq!(
            check(file, "#", b"x").unwrap_err().reason,
            AuthReason::InvalidUsername
        );
        // First line for a name wins; a later line with the right password is not tried.
        assert_eq!(
            check(b"bob:1\nbob:2\n", "bob", b"2").unwrap_err().reason,
            AuthReason::PasswordMismatch
        );
        // No newline at the end is fine.
        assert!(check(b"bob:2", "bob", b"2").is_ok());
        // fgets() splits lines longer than 1023 bytes; the rest reads as a line of its own.
        let mut long = vec![b'x'; SECRETS_CHUNK];
        long.extend_from_slice(b"bob:tail\n");
        assert!(check(&long, "bob", b"tail").is_ok());
    }

    #[test]
    fn strict_modes() {
        let d = AuthDigest::Sha512;
        let line = line_for("u", b"pw", "ch", d);
        let attempt = |path: &Path, strict: bool, root: bool| {
            let module = ModuleAuth {
                auth_users: "u",
                secrets_file: Some(path),
                strict_modes: strict,
            };
            check_auth(&line, "ch", d, &module, root, &no_groups)
        };
        let (_d1, open) = secrets(b"u:pw\n", 0o644);
        let err = attempt(&open, true, true).unwrap_err();
        assert_eq!(err.to_string(), "ignoring secrets file");
        assert_eq!(
            err.preceding_log_line().as_deref(),
            Some("secrets file must not be other-accessible (see strict modes option)")
        );
        assert!(attempt(&open, false, true).is_ok());
        for mode in [0o600, 0o640, 0o601, 0o660] {
            let (_d, path) = secrets(b"u:pw\n", mode);
            assert!(attempt(&path, true, true).is_ok(), "mode {mode:o}");
        }
        let (_d2, path) = secrets(b"u:pw\n", 0o602);
        assert_eq!(
            attempt(&path, true, false).unwrap_err().reason.to_string(),
            "ignoring secrets file"
        );

        // Owned by someone else: refused only when running as root.
        let (_d3, theirs) = secrets(b"u:pw\n", 0o600);
        nix::unistd::chown(&theirs, Some(nix::unistd::Uid::from_raw(65534)), None).unwrap();
        let err = attempt(&theirs, true, true).unwrap_err();
        assert_eq!(
            err.preceding_log_line().as_deref(),
            Some("secrets file must be owned by root when running as root (see strict modes)")
        );
        if geteuid().is_root() {
            assert!(attempt(&theirs, true, false).is_ok());
        }
        assert!(attempt(&theirs, false, true).is_ok());
    }

    #[test]
    fn missing_or_unsafe_secrets_files() {
        let d = AuthDigest::Md5;
        let line = line_for("u", b"pw", "ch", d);
        let check = |path: Option<&Path>| reason(run(&line, "ch", d, "u", path, &no_groups));
        let ok = |path: &Path| run(&line, "ch", d, "u", Some(path), &no_groups).is_ok();
        assert_eq!(check(None), AuthReason::NoSecretsFile);
        assert_eq!(check(Some(Path::new(""))), AuthReason::NoSecretsFile);
        let (dir, path) = secrets(b"u:pw\n", 0o600);
        assert_eq!(
            check(Some(&dir.path().join("absent"))),
            AuthReason::NoSecretsFile
        );
        assert_eq!(check(Some(&path.join("x"))), AuthReason::NoSecretsFile);
        // A directory opens but reads as empty.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert_eq!(check(Some(dir.path())), AuthReason::SecretNotFound);
        assert!(ok(&path));
        // A symlink we (or root) own is followed, relative or absolute, and so is a
        // symlinked parent directory.
        let link = dir.path().join("link");
        symlink("secrets", &link).unwrap();
        assert!(ok(&link));
        let abs = dir.path().join("abs");
        symlink(&path, &abs).unwrap();
        assert!(ok(&abs));
        let sub = dir.path().join("sub");
        symlink(dir.path(), &sub).unwrap();
        assert!(ok(&sub.join("secrets")));
        assert!(ok(&dir.path().join("./sub//secrets")));
        // Symlinks owned by another user are refused, as leaf or as parent.
        if geteuid().is_root() {
            let nobody = Some(nix::unistd::Uid::from_raw(65534));
            let planted = dir.path().join("planted");
            symlink("secrets", &planted).unwrap();
            nix::unistd::fchownat(
                AT_FDCWD,
                &planted,
                nobody,
                None,
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .unwrap();
            assert_eq!(check(Some(&planted)), AuthReason::NoSecretsFile);
            let pdir = dir.path().join("pdir");
            symlink(".", &pdir).unwrap();
            nix::unistd::fchownat(
                AT_FDCWD,
                &pdir,
                nobody,
                None,
                nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW,
            )
            .unwrap();
            assert_eq!(
                check(Some(&pdir.join("secrets"))),
                AuthReason::NoSecretsFile
            );
        }
        // A symlink loop ends.
        let a = dir.path().join("a");
        let b = dir.path().join("b");
        symlink("b", &a).unwrap();
        symlink("a", &b).unwrap();
        assert_eq!(check(Some(&a)), AuthReason::NoSecretsFile);
    }

    #[test]
    fn digest_floor() {
        assert!(check_digest_floor(AuthDigest::Md4Old, None).is_ok());
        assert!(check_digest_floor(AuthDigest::Md4Old, Some("")).is_ok());
        assert!(check_digest_floor(AuthDigest::Sha512, Some("sha256")).is_ok());
        assert!(check_digest_floor(AuthDigest::Sha256, Some("SHA256")).is_ok());
        assert!(check_digest_floor(AuthDigest::Md4Old, Some("md4")).is_ok());
        let err = check_digest_floor(AuthDigest::Md5, Some("sha256")).unwrap_err();
        assert_eq!(
            err.log_line("backup", "localhost", "127.0.0.1"),
            "auth failed on module backup from localhost (127.0.0.1): negotiated auth digest md5 \
             is weaker than the required 'auth digest = sha256'"
        );
        let err = check_digest_floor(AuthDigest::Md4Old, Some("md5")).unwrap_err();
        assert_eq!(
            err.reason.to_string(),
            "negotiated auth digest md4 is weaker than the required 'auth digest = md5'"
        );
        let err = check_digest_floor(AuthDigest::Sha512, Some("sha384")).unwrap_err();
        assert_eq!(
            err.reason.to_string(),
            "the configured 'auth digest = sha384' is not a supported digest on this build"
        );
    }

    #[test]
    fn reason_texts() {
        let texts: Vec<String> = [
            AuthReason::InvalidChallengeResponse,
            AuthReason::NoMatchingRule,
            AuthReason::DeniedByRule,
            AuthReason::NoSecretsFile,
            AuthReason::IgnoringSecretsFile(SecretsFileProblem::OtherAccessible),
            AuthReason::InvalidUsername,
            AuthReason::SecretNotFound,
            AuthReason::PasswordMismatch,
        ]
        .iter()
        .map(ToString::to_string)
        .collect();
        assert_eq!(
            texts,
            [
                "invalid challenge response",
                "no matching rule",
                "denied by rule",
                "no secrets file",
                "ignoring secrets file",
                "invalid username",
                "secret not found",
                "password mismatch"
            ]
        );
    }

    #[test]
    fn root_groups() {
        let groups = system_groups("root");
        assert_eq!(groups.first().map(String::as_str), Some("root"));
        assert!(system_groups("no-such-user-here").is_empty());
    }

    proptest! {
        #[test]
        fn rules_never_panic(s in ".{0,120}") {
            let _ = parse_auth_users(&s);
        }

        #[test]
        fn lines_never_panic(line in proptest::collection::vec(any::<u8>(), 0..200), rules in "[a-z@*?:,\\[\\] ]{0,40}") {
            let groups = |_: &str| vec!["g".to_string()];
            let _ = run(&line, "ch", AuthDigest::Md5, &rules, None, &groups);
        }
    }
}
