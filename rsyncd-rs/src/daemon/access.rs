//! `hosts allow` / `hosts deny` (upstream: access.c) and the client's host name
//! (upstream: clientname.c).
//!
//! Name service calls go through [`Resolver`], so tests (and the proxy-protocol path)
//! can supply their own answers; [`SystemResolver`] asks the C library as upstream does.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::wildmatch::iwildmatch;

/// The host name used when `reverse lookup` is off.
///
/// Upstream: clientserver.c, undetermined_hostname.
pub const UNDETERMINED: &str = "UNDETERMINED";

/// The host name used when reverse lookup fails or looks spoofed.
///
/// Upstream: clientname.c, default_name.
pub const UNKNOWN: &str = "UNKNOWN";

/// Upstream reads the reverse-lookup name into a 100-byte buffer; a longer name makes
/// `getnameinfo()` fail, which gives [`UNKNOWN`].
const MAX_HOST_NAME: usize = 99;

/// The client's address as upstream sees it: an IPv4-mapped IPv6 address is turned back
/// into IPv4 (so `hosts allow = 10.0.0.0/8` works on a dual-stack listener), and an
/// IPv6 scope id is kept for link-local matching.
///
/// Upstream: clientname.c, client_sockaddr().
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ClientAddr {
    ip: IpAddr,
    scope_id: u32,
}

impl ClientAddr {
    /// Builds the address, mapping `::ffff:a.b.c.d` to `a.b.c.d`.
    pub fn new(ip: IpAddr, scope_id: u32) -> ClientAddr {
        match ip {
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => ClientAddr {
                    ip: IpAddr::V4(v4),
                    scope_id: 0,
                },
                None => ClientAddr { ip, scope_id },
            },
            IpAddr::V4(_) => ClientAddr { ip, scope_id: 0 },
        }
    }

    /// The peer address of an accepted connection.
    pub fn from_socket_addr(peer: SocketAddr) -> ClientAddr {
        match peer {
            SocketAddr::V4(v4) => ClientAddr::new(IpAddr::V4(*v4.ip()), 0),
            SocketAddr::V6(v6) => ClientAddr::new(IpAddr::V6(*v6.ip()), v6.scope_id()),
        }
    }

    /// The (normalised) IP address.
    pub fn ip(&self) -> IpAddr {
        self.ip
    }

    /// The IPv6 scope id, 0 for none.
    pub fn scope_id(&self) -> u32 {
        self.scope_id
    }
}

impl From<IpAddr> for ClientAddr {
    fn from(ip: IpAddr) -> ClientAddr {
        ClientAddr::new(ip, 0)
    }
}

/// The numeric address text (upstream's `addr`), without any `%scope`.
impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ip.fmt(f)
    }
}

/// The client's host name as the access check and the logs use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostName {
    /// `reverse lookup` is off: shown as [`UNDETERMINED`]. A plain host name in
    /// the lists that forward-resolves to the client replaces it (upstream quirk).
    Undetermined,
    /// A reverse-lookup result, [`UNKNOWN`], or a name taken from the lists.
    Name(String),
}

impl HostName {
    /// The text upstream logs and matches patterns against.
    pub fn as_str(&self) -> &str {
        match self {
            HostName::Undetermined => UNDETERMINED,
            HostName::Name(name) => name,
        }
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An address family for forward lookups.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `AF_INET`.
    V4,
    /// `AF_INET6`.
    V6,
}

/// The name-service questions the access check asks.
pub trait Resolver {
    /// The PTR name of `addr` (`getnameinfo()` with `NI_NAMEREQD`), `None` if none.
    fn name_of(&self, addr: &ClientAddr) -> Result<String, String>;
    /// The addresses (with IPv6 scope ids) `name` resolves to in `family`, `None` when
    /// the lookup fails.
    fn addrs_of(&self, name: &str, family: Family) -> Option<Vec<(IpAddr, u32)>>;
    /// Whether `host` is in `netgroup` (`innetgr()`).
    fn in_netgroup(&self, netgroup: &str, host: &str) -> bool;
    /// The index of the interface named `name` (`if_nametoindex()`), for `%scope`.
    fn interface_index(&self, name: &str) -> Option<u32>;
}

/// The C library's resolver, as upstream uses it.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn name_of(&self, addr: &ClientAddr) -> Result<String, String> {
        let sock = match addr.ip {
            IpAddr::V4(v4) => SocketAddr::from((v4, 0)),
            IpAddr::V6(v6) => std::net::SocketAddrV6::new(v6, 0, 0, addr.scope_id).into(),
        };
        dns_lookup::getnameinfo(&sock, libc::NI_NAMEREQD | libc::NI_NUMERICSERV)
            .map(|(host, _)| host)
            .map_err(|e| gai_text(&e))
    }

    fn addrs_of(&self, name: &str, family: Family) -> Option<Vec<(IpAddr, u32)>> {
        let hints = dns_lookup::AddrInfoHints {
            socktype: libc::SOCK_STREAM,
            address: match family {
                Family::V4 => libc::AF_INET,
                Family::V6 => libc::AF_INET6,
            },
            flags: 0,
            protocol: 0,
        };
        let found = dns_lookup::getaddrinfo(Some(name), None, Some(hints)).ok()?;
        let addrs = found
            .filter_map(Result::ok)
            .map(|ai| match ai.sockaddr {
                SocketAddr::V4(v4) => (IpAddr::V4(*v4.ip()), 0),
                SocketAddr::V6(v6) => (IpAddr::V6(*v6.ip()), v6.scope_id()),
            })
            .collect();
        Some(addrs)
    }

    fn in_netgroup(&self, netgroup: &str, host: &str) -> bool {
        netgroup::contains(netgroup, host)
    }

    fn interface_index(&self, name: &str) -> Option<u32> {
        nix::net::if_::if_nametoindex(name).ok().filter(|&i| i != 0)
    }
}

/// glibc's `innetgr()`, which upstream uses when configure finds it (it does on
/// glibc Linux). The `libc` crate does not declare it, hence the one foreign call here.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
mod netgroup {
    use std::ffi::{CString, c_char, c_int};
    use std::sync::Mutex;

    unsafe extern "C" {
        fn innetgr(
            netgroup: *const c_char,
            host: *const c_char,
            user: *const c_char,
            domain: *const c_char,
        ) -> c_int;
    }

    /// glibc documents innetgr() as racing with other netgroup calls; serialise ours.
    static LOCK: Mutex<()> = Mutex::new(());

    pub(super) fn contains(netgroup: &str, host: &str) -> bool {
        let (Ok(group), Ok(host)) = (CString::new(netgroup), CString::new(host)) else {
            return false;
        };
        let _guard = LOCK.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: both pointers come from live CStrings (NUL-terminated, not freed
        // until after the call), user and domain may be NULL per innetgr(3), and the
        // lock keeps our calls from racing each other on glibc's netgroup state.
        unsafe {
            innetgr(
                group.as_ptr(),
                host.as_ptr(),
                std::ptr::null(),
                std::ptr::null(),
            ) == 1
        }
    }
}

/// Without glibc there is no `innetgr()`; upstream built without it would treat the
/// `@name` token as a host pattern instead, which this keeps simple by never matching.
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
mod netgroup {
    pub(super) fn contains(_netgroup: &str, _host: &str) -> bool {
        tracing::warn!("@netgroup in hosts allow/deny is not supported on this platform");
        false
    }
}

/// The text glibc gives for a resolver failure (what upstream logs).
fn gai_text(e: &dns_lookup::LookupError) -> String {
    match e.kind() {
        dns_lookup::LookupErrorKind::NoName => "Name or service not known".to_string(),
        dns_lookup::LookupErrorKind::Again => "Temporary failure in name resolution".to_string(),
        dns_lookup::LookupErrorKind::Fail => {
            "Non-recoverable failure in name resolution".to_string()
        }
        _ => format!("{e:?}"),
    }
}

/// The client's host name by reverse lookup with the system resolver; `Err` carries the
/// line upstream logs, and the name to use is then [`UNKNOWN`].
///
/// Upstream: clientname.c, client_name().
pub fn reverse_lookup(addr: IpAddr) -> Result<String, String> {
    reverse_lookup_with(&ClientAddr::from(addr), &SystemResolver)
}

/// The client's host name: the PTR name if it forward-resolves (in the client's address
/// family) back to the client's address, else [`UNKNOWN`]. `0.0.0.0` is not looked up.
///
/// Upstream: clientname.c, client_name() and check_name().
pub fn reverse_lookup_with(addr: &ClientAddr, resolver: &dyn Resolver) -> Result<String, String> {
    if addr.ip == IpAddr::V4(Ipv4Addr::UNSPECIFIED) {
        return Ok(UNKNOWN.to_string());
    }
    let name = match resolver.name_of(addr) {
        Ok(name) if !name.is_empty() && name.len() <= MAX_HOST_NAME && !name.contains('\0') => name,
        Ok(name) => return Err(format!("name lookup failed for {addr}: bad name {name:?}")),
        Err(why) => return Err(format!("name lookup failed for {addr}: {why}")),
    };
    let family = match addr.ip {
        IpAddr::V4(_) => Family::V4,
        IpAddr::V6(_) => Family::V6,
    };
    let Some(found) = resolver.addrs_of(&name, family) else {
        return Err(format!("forward name lookup for {name} failed"));
    };
    let same = |&(ip, scope): &(IpAddr, u32)| match ip {
        IpAddr::V4(_) => ip == addr.ip,
        IpAddr::V6(_) => ip == addr.ip && scope == addr.scope_id,
    };
    if found.iter().any(same) {
        Ok(name)
    } else {
        Err(format!(
            "{addr} is not a known address for \"{name}\": spoofed address?"
        ))
    }
}

/// Decides `hosts allow` / `hosts deny` with the system resolver; see
/// [`allow_access_with`].
pub fn allow_access(
    addr: IpAddr,
    host: &mut HostName,
    allow: Option<&str>,
    deny: Option<&str>,
    forward_lookup: bool,
) -> bool {
    let client = ClientAddr::from(addr);
    allow_access_with(&client, host, allow, deny, forward_lookup, &SystemResolver)
}

/// Decides `hosts allow` / `hosts deny` as upstream: an empty list counts as unset; a
/// match in `allow` admits; with `allow` set and no `deny`, anything else is refused;
/// otherwise a match in `deny` refuses and everything else is admitted.
///
/// Tokens are separated by spaces, tabs and commas and compared in lower case. Each is
/// tried as a host-name pattern (or `@netgroup`), then as an address, `addr/bits` or
/// `addr/mask`. With `forward_lookup`, a plain host name is also resolved (IPv4, as
/// upstream's `gethostbyname()`) and compared with the client; a deny-list name that
/// does not resolve counts as a match (fails closed). If such a name matches while
/// `host` is [`HostName::Undetermined`], `host` becomes that name.
///
/// Upstream: access.c, allow_access().
pub fn allow_access_with(
    client: &ClientAddr,
    host: &mut HostName,
    allow: Option<&str>,
    deny: Option<&str>,
    forward_lookup: bool,
    resolver: &dyn Resolver,
) -> bool {
    let allow = allow.filter(|l| !l.is_empty());
    let deny = deny.filter(|l| !l.is_empty());
    let ctx = Ctx {
        client,
        forward_lookup,
        resolver,
    };
    if let Some(list) = allow {
        if ctx.list_matches(list, host, false) {
            return true;
        }
        if deny.is_none() {
            return false;
        }
    }
    !deny.is_some_and(|list| ctx.list_matches(list, host, true))
}

/// Whether a peer may send a PROXY protocol header: it must match `list` (`proxy
/// protocol hosts`), with no forward lookups; an empty or missing list trusts nobody.
///
/// Upstream: access.c, allow_proxy_protocol_peer().
pub fn proxy_peer_allowed_with(
    client: &ClientAddr,
    list: Option<&str>,
    resolver: &dyn Resolver,
) -> bool {
    let Some(list) = list.filter(|l| !l.is_empty()) else {
        return false;
    };
    let ctx = Ctx {
        client,
        forward_lookup: false,
        resolver,
    };
    ctx.list_matches(list, &mut HostName::Undetermined, false)
}

struct Ctx<'a> {
    client: &'a ClientAddr,
    forward_lookup: bool,
    resolver: &'a dyn Resolver,
}

impl Ctx<'_> {
    /// Upstream: access.c, access_match().
    fn list_matches(&self, list: &str, host: &mut HostName, deny: bool) -> bool {
        // The C string ends at a NUL; the whole list is lower-cased first.
        host_list_tokens(list)
            .iter()
            .any(|tok| self.match_hostname(host, tok, deny) || self.match_address(tok))
    }

    /// Upstream: access.c, match_hostname().
    fn match_hostname(&self, host: &mut HostName, tok: &str, deny: bool) -> bool {
        let name = host.as_str();
        if name.is_empty() {
            return false;
        }
        if let Some(group) = tok.strip_prefix('@').filter(|g| !g.is_empty()) {
            return self.resolver.in_netgroup(group, name);
        }
        if iwildmatch(tok.as_bytes(), name.as_bytes()) {
            return true;
        }
        if !self.forward_lookup {
            return false;
        }
        // Only a plain name is looked up: not an address, not a pattern.
        if tok.bytes().all(|b| b == b'.' || b.is_ascii_digit())
            || tok.bytes().any(|b| b":/*?[".contains(&b))
        {
            return false;
        }
        let Some(found) = self.resolver.addrs_of(tok, Family::V4) else {
            // 3.5.0: an unresolvable deny-list name must fail closed.
            return deny;
        };
        if !found.iter().any(|&(ip, _)| ip == self.client.ip) {
            return false;
        }
        if *host == HostName::Undetermined {
            *host = HostName::Name(tok.to_string());
        }
        true
    }

    /// Upstream: access.c, match_address().
    fn match_address(&self, tok: &str) -> bool {
        let (ip, scope, mask) = match address_pattern(tok, self.resolver) {
            AddressPattern::NotAnAddress => return false,
            AddressPattern::Bad(why) => {
                tracing::warn!("{why}");
                return false;
            }
            AddressPattern::Net { ip, scope, mask } => (ip, scope, mask),
        };
        let (ours, theirs) = match (self.client.ip, ip) {
            (IpAddr::V4(c), IpAddr::V4(t)) => (c.octets().to_vec(), t.octets().to_vec()),
            (IpAddr::V6(c), IpAddr::V6(t)) => {
                if scope != 0 && scope != self.client.scope_id {
                    return false;
                }
                (c.octets().to_vec(), t.octets().to_vec())
            }
            _ => return false,
        };
        let mask_bytes = match mask {
            None => vec![0xff; ours.len()],
            Some(Mask::Bytes(bytes)) => bytes,
            Some(Mask::All) => return true,
            Some(Mask::Malformed) => return false,
        };
        ours.iter()
            .zip(&theirs)
            .zip(&mask_bytes)
            .all(|((a, b), m)| (a ^ b) & m == 0)
    }
}

/// The tokens of a `hosts allow`/`hosts deny` value as the daemon matches them: the C
/// string up to a NUL, lower-cased, split on spaces, commas and tabs.
///
/// Upstream: access.c, access_match().
pub fn host_list_tokens(list: &str) -> Vec<String> {
    let list = list
        .split('\0')
        .next()
        .unwrap_or_default()
        .to_ascii_lowercase();
    list.split([' ', ',', '\t'])
        .filter(|tok| !tok.is_empty())
        .map(str::to_string)
        .collect()
}

/// Why the daemon could never match `token` (one of [`host_list_tokens`]), as the line
/// it logs each time it tries: an address that does not parse or a malformed mask.
/// Host-name patterns and `@netgroup`s always parse: `None`.
pub fn host_pattern_problem(token: &str) -> Option<String> {
    match address_pattern(&token.to_ascii_lowercase(), &SystemResolver) {
        AddressPattern::Bad(why) => Some(why),
        AddressPattern::NotAnAddress | AddressPattern::Net { .. } => None,
    }
}

/// A host-list token read as an address pattern.
enum AddressPattern {
    /// A host name: matched by name only.
    NotAnAddress,
    /// Looks like an address but does not parse (the daemon's log line).
    Bad(String),
    /// `addr`, `addr/bits` or `addr/mask`.
    Net {
        ip: IpAddr,
        scope: u32,
        mask: Option<Mask>,
    },
}

/// Reads `tok` as upstream's match_address() does, without a client to compare with.
fn address_pattern(tok: &str, resolver: &dyn Resolver) -> AddressPattern {
    let (addr, mask) = match tok.split_once('/') {
        Some((addr, mask)) => (addr, Some(mask)),
        None => (tok, None),
    };
    // A host name, not an address: no match, and nothing to log.
    if !addr.contains(':') && !addr.bytes().all(|b| b == b'.' || b.is_ascii_digit()) {
        return AddressPattern::NotAnAddress;
    }
    let Some((ip, scope)) = parse_numeric_host(addr, resolver) else {
        return AddressPattern::Bad(format!(
            "error matching address {tok}: Name or service not known"
        ));
    };
    let len = if ip.is_ipv4() { 4 } else { 16 };
    let mask = mask.map(|m| parse_mask(m, len));
    if matches!(mask, Some(Mask::Malformed)) {
        return AddressPattern::Bad(format!("malformed mask in {tok}"));
    }
    AddressPattern::Net { ip, scope, mask }
}

enum Mask {
    Bytes(Vec<u8>),
    /// `/0`: every address of the family matches.
    All,
    Malformed,
}

/// A netmask in address form (strict, as `inet_pton()`), else a bit count as `strtol()`
/// reads it (leading white space and a sign allowed, nothing after the digits).
fn parse_mask(mask: &str, len: usize) -> Mask {
    let as_addr = if len == 4 {
        mask.parse::<Ipv4Addr>().ok().map(|m| m.octets().to_vec())
    } else {
        mask.parse::<Ipv6Addr>().ok().map(|m| m.octets().to_vec())
    };
    if let Some(bytes) = as_addr {
        return Mask::Bytes(bytes);
    }
    let Some(bits) = strtol_exact(mask) else {
        return Mask::Malformed;
    };
    if bits == 0 {
        return Mask::All;
    }
    let Some(bits) = usize::try_from(bits).ok().filter(|&b| b <= len * 8) else {
        return Mask::Malformed;
    };
    let bytes = (0..len)
        .map(|i| {
            let left = bits.saturating_sub(i * 8).min(8);
            (0xffu16 << (8 - left)) as u8
        })
        .collect();
    Mask::Bytes(bytes)
}

/// `strtol(s, &end, 10)` that must consume all of `s`; saturates like `strtol()`.
fn strtol_exact(s: &str) -> Option<i64> {
    let t = s.trim_start_matches(|c: char| c.is_ascii_whitespace() || c == '\x0b');
    let (negative, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let magnitude = digits.bytes().fold(0i64, |n, d| {
        n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
    });
    Some(if negative { -magnitude } else { magnitude })
}

/// What glibc's `getaddrinfo()` with `AI_NUMERICHOST` accepts: IPv4 in any `inet_aton()`
/// form (`10.1`, octal `010.0.0.1`, ...), or IPv6 with an optional `%scope`.
fn parse_numeric_host(s: &str, resolver: &dyn Resolver) -> Option<(IpAddr, u32)> {
    if let Some(v4) = inet_aton_exact(s) {
        return Some((IpAddr::V4(v4), 0));
    }
    let (addr, scope) = match s.split_once('%') {
        Some((addr, scope)) => (addr, Some(scope)),
        None => (s, None),
    };
    let v6: Ipv6Addr = addr.parse().ok()?;
    let scope_id = match scope {
        None => 0,
        Some(scope) => scope_id(&v6, scope, resolver)?,
    };
    Some((IpAddr::V6(v6), scope_id))
}

/// glibc's `__inet6_scopeid_pton()`: an interface name for link-local (and node- or
/// link-local multicast) addresses, else a decimal number.
fn scope_id(addr: &Ipv6Addr, scope: &str, resolver: &dyn Resolver) -> Option<u32> {
    let o = addr.octets();
    let link_scoped = (o[0] == 0xfe && o[1] & 0xc0 == 0x80)
        || (o[0] == 0xff && matches!(o[1] & 0x0f, 0x01 | 0x02));
    if link_scoped {
        if let Some(index) = resolver.interface_index(scope) {
            return Some(index);
        }
    }
    if !scope.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
        return None;
    }
    scope.parse::<u32>().ok()
}

/// glibc's `__inet_aton_exact()`: one to four parts separated by dots, each decimal,
/// octal (leading 0) or hex (0x); the last part fills the remaining bytes.
fn inet_aton_exact(s: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = s.split('.').collect();
    if parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(parts.len());
    for part in &parts {
        values.push(c_number(part)?);
    }
    let (last, head) = values.split_last()?;
    if head.iter().any(|&v| v > 0xff) {
        return None;
    }
    let last_bits = 32 - 8 * head.len() as u32;
    if u64::from(*last) >> last_bits != 0 {
        return None;
    }
    let mut word = *last;
    for (i, &v) in head.iter().enumerate() {
        word |= v << (24 - 8 * i as u32);
    }
    Some(Ipv4Addr::from(word))
}

/// One `inet_aton()` part as `strtoul(s, &end, 0)` reads it, which must consume it all
/// and fit in 32 bits.
fn c_number(s: &str) -> Option<u32> {
    if !s.bytes().next().is_some_and(|b| b.is_ascii_digit()) {
        return None;
    }
    let (radix, digits) = if let Some(hex) = s.strip_prefix("0x").or(s.strip_prefix("0X")) {
        (16, hex)
    } else if s.len() > 1 && s.starts_with('0') {
        (8, &s[1..])
    } else {
        (10, s)
    };
    if digits.is_empty() {
        // "0x" alone: strtoul reads the "0" and stops at the 'x'.
        return None;
    }
    u32::from_str_radix(digits, radix)
        .ok()
        .filter(|_| digits.bytes().all(|b| b.is_ascii_hexdigit()))
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_the_daemon_can_never_match_are_named() {
        assert_eq!(host_pattern_problem("10.0.0.0/24"), None);
        assert_eq!(host_pattern_problem("*.example.com"), None);
        assert_eq!(host_pattern_problem("@admins"), None);
        assert_eq!(
            host_pattern_problem("127.0.0.1/33").as_deref(),
            Some("malformed mask in 127.0.0.1/33")
        );
        assert!(host_pattern_problem("10.0.0.300").is_some());
        assert_eq!(host_list_tokens("A, b\tc"), ["a", "b", "c"]);
    }
    use proptest::prelude::*;
    use std::collections::HashMap;

    /// A resolver answering from tables; anything absent fails to resolve.
    #[derive(Default)]
    struct Fake {
        ptr: HashMap<IpAddr, String>,
        hosts: HashMap<(String, bool), Vec<(IpAddr, u32)>>,
        netgroups: Vec<(&'static str, &'static str)>,
        interfaces: Vec<(&'static str, u32)>,
    }

    impl Fake {
        fn host(mut self, name: &str, addrs: &[&str]) -> Fake {
            for a in addrs {
                let ip: IpAddr = a.parse().unwrap();
                let key = (name.to_string(), ip.is_ipv6());
                self.hosts.entry(key).or_default().push((ip, 0));
            }
            self
        }
    }

    impl Resolver for Fake {
        fn name_of(&self, addr: &ClientAddr) -> Result<String, String> {
            self.ptr
                .get(&addr.ip())
                .cloned()
                .ok_or_else(|| "Name or service not known".to_string())
        }
        fn addrs_of(&self, name: &str, family: Family) -> Option<Vec<(IpAddr, u32)>> {
            self.hosts
                .get(&(name.to_string(), family == Family::V6))
                .cloned()
        }
        fn in_netgroup(&self, netgroup: &str, host: &str) -> bool {
            self.netgroups.contains(&(netgroup, host))
        }
        fn interface_index(&self, name: &str) -> Option<u32> {
            self.interfaces
                .iter()
                .find(|(n, _)| *n == name)
                .map(|&(_, i)| i)
        }
    }

    fn client(s: &str) -> ClientAddr {
        ClientAddr::from(s.parse::<IpAddr>().unwrap())
    }

    /// Allow-list check of one address against one list, named host "h.example".
    fn allowed(addr: &str, list: &str) -> bool {
        let mut host = HostName::Name("h.example".into());
        allow_access_with(
            &client(addr),
            &mut host,
            Some(list),
            None,
            false,
            &Fake::default(),
        )
    }

    #[test]
    fn ipv4_forms() {
        assert!(allowed("192.168.1.7", "192.168.1.7"));
        assert!(!allowed("192.168.1.8", "192.168.1.7"));
        assert!(allowed("192.168.1.8", "192.168.1.0/24"));
        assert!(!allowed("192.168.2.8", "192.168.1.0/24"));
        assert!(allowed("192.168.1.8", "192.168.1.0/255.255.255.0"));
        assert!(allowed("10.100.1.8", "10.0.0.0/9"));
        assert!(!allowed("10.128.1.8", "10.0.0.0/9"));
        assert!(allowed("10.0.0.1", "10.0.0.1/32"));
        assert!(allowed("10.0.0.1", "10.0.0.1/+32"));
        // /0 and -0 match any IPv4 address; out of range or junk masks match nothing.
        assert!(allowed("8.8.8.8", "1.2.3.4/0"));
        assert!(allowed("8.8.8.8", "1.2.3.4/-0"));
        assert!(!allowed("1.2.3.4", "1.2.3.4/33"));
        assert!(!allowed("1.2.3.4", "1.2.3.4/"));
        assert!(!allowed("1.2.3.4", "1.2.3.4/24x"));
        assert!(!allowed("1.2.3.4", "1.2.3.4/-1"));
        // glibc's numeric getaddrinfo() takes inet_aton() forms.
        assert!(allowed("127.0.0.1", "127.1"));
        assert!(allowed("8.0.0.1", "010.0.0.1"));
        assert!(allowed("10.0.1.2", "10.258"));
        assert!(!allowed("1.2.3.4", "1.2.3.4.5"));
        assert!(!allowed("1.2.3.4", "1.2.3.256"));
        assert!(!allowed("1.2.3.4", "09.2.3.4"));
        // A strict dotted mask only; "255.255.0" falls back to strtol and is malformed.
        assert!(!allowed("1.2.3.4", "1.2.0.0/255.255.0"));
        // Lists split on spaces, tabs and commas.
        assert!(allowed("1.1.1.1", " 9.9.9.9,,\t1.1.1.1 "));
    }

    #[test]
    fn ipv6_forms() {
        assert!(allowed("2001:db8::1", "2001:db8::1"));
        assert!(allowed("2001:db8::1", "2001:DB8:0:0::1"));
        assert!(allowed("2001:db8::abcd", "2001:db8::/64"));
        assert!(!allowed("2001:db9::1", "2001:db8::/64"));
        assert!(allowed("2001:db8::5", "2001:db8::/ffff:ffff:ffff:ffff::"));
        assert!(allowed("::1", "::/0"));
        assert!(!allowed("::1", "::1/129"));
        // Families never mix, even with /0.
        assert!(!allowed("::1", "0.0.0.0/0"));
        assert!(!allowed("127.0.0.1", "::/0"));
    }

    #[test]
    fn scope_ids() {
        let fake = Fake {
            interfaces: vec![("eth0", 2)],
            ..Fake::default()
        };
        let ip: IpAddr = "fe80::1".parse().unwrap();
        let mut host = HostName::Undetermined;
        let check = |scope, list: &str, host: &mut HostName| {
            allow_access_with(
                &ClientAddr::new(ip, scope),
                host,
                Some(list),
                None,
                false,
                &fake,
            )
        };
        assert!(check(2, "fe80::1%eth0", &mut host));
        assert!(check(2, "fe80::1%ETH0", &mut host));
        assert!(!check(3, "fe80::1%eth0", &mut host));
        assert!(check(3, "fe80::1%3", &mut host));
        assert!(check(3, "fe80::1", &mut host));
        assert!(check(2, "fe80::%eth0/64", &mut host));
        assert!(!check(2, "fe80::1%nosuch", &mut host));
        assert!(!check(2, "fe80::1%", &mut host));
    }

    #[test]
    fn ipv4_mapped_peers_are_ipv4() {
        let mapped: IpAddr = "::ffff:10.1.2.3".parse().unwrap();
        let peer = ClientAddr::new(mapped, 0);
        assert_eq!(peer.ip(), "10.1.2.3".parse::<IpAddr>().unwrap());
        assert_eq!(peer.to_string(), "10.1.2.3");
        let sock: SocketAddr = "[::ffff:10.1.2.3]:873".parse().unwrap();
        assert_eq!(ClientAddr::from_socket_addr(sock), peer);
        let mut host = HostName::Name("x".into());
        let fake = Fake::default();
        assert!(allow_access_with(
            &peer,
            &mut host,
            Some("10.0.0.0/8"),
            None,
            false,
            &fake
        ));
        assert!(!allow_access_with(
            &peer,
            &mut host,
            Some("::ffff:10.1.2.3"),
            None,
            false,
            &fake
        ));
    }

    #[test]
    fn host_patterns() {
        let fake = Fake {
            netgroups: vec![("trusted", "box.example.com")],
            ..Fake::default()
        };
        let peer = client("192.0.2.9");
        let check = |name: &str, list: &str| {
            let mut host = HostName::Name(name.into());
            allow_access_with(&peer, &mut host, Some(list), None, false, &fake)
        };
        assert!(check("box.example.com", "*.example.com"));
        assert!(check("BOX.Example.COM", "*.EXAMPLE.com"));
        assert!(!check("box.example.org", "*.example.com"));
        assert!(check("box.example.com", "box.example.com"));
        assert!(check("box.example.com", "b?x.*.com"));
        assert!(check("box.example.com", "[a-c]ox.example.com"));
        assert!(check("box.example.com", "@trusted"));
        assert!(check("box.example.com", "@TRUSTED"));
        assert!(!check("other.example.com", "@trusted"));
        // "*" also matches the placeholder names, as upstream.
        assert!(check(UNKNOWN, "*"));
        assert!(check(UNDETERMINED, "undetermined"));
        // The captured a-denied set-up: hosts deny = 127.0.0.1 refuses localhost.
        let mut host = HostName::Name("localhost".into());
        let lo = client("127.0.0.1");
        assert!(!allow_access_with(
            &lo,
            &mut host,
            None,
            Some("127.0.0.1"),
            true,
            &fake
        ));
    }

    #[test]
    fn forward_lookup() {
        let fake = Fake::default()
            .host("backup", &["192.0.2.1", "192.0.2.2"])
            .host("v6only", &["2001:db8::1"]);
        let peer = client("192.0.2.2");
        // Reverse lookup off: the config name that resolves to the peer becomes its name.
        let mut host = HostName::Undetermined;
        assert!(allow_access_with(
            &peer,
            &mut host,
            Some("BACKUP"),
            None,
            true,
            &fake
        ));
        assert_eq!(host, HostName::Name("backup".into()));
        // A known name is kept.
        let mut host = HostName::Name("ptr.example".into());
        assert!(allow_access_with(
            &peer,
            &mut host,
            Some("backup"),
            None,
            true,
            &fake
        ));
        assert_eq!(host.as_str(), "ptr.example");
        // forward lookup = no: names only match the reverse name.
        let mut host = HostName::Undetermined;
        assert!(!allow_access_with(
            &peer,
            &mut host,
            Some("backup"),
            None,
            false,
            &fake
        ));
        // Only IPv4 answers count (gethostbyname()).
        let v6 = client("2001:db8::1");
        assert!(!allow_access_with(
            &v6,
            &mut host,
            Some("v6only"),
            None,
            true,
            &fake
        ));
        // Unresolvable: no match in allow, a match (refusal) in deny.
        let mut host = HostName::Name("x".into());
        assert!(!allow_access_with(
            &peer,
            &mut host,
            Some("gone"),
            None,
            true,
            &fake
        ));
        assert!(!allow_access_with(
            &peer,
            &mut host,
            None,
            Some("gone"),
            true,
            &fake
        ));
        assert!(allow_access_with(
            &peer,
            &mut host,
            None,
            Some("gone"),
            false,
            &fake
        ));
        // Patterns and addresses are never looked up.
        assert!(allow_access_with(
            &peer,
            &mut host,
            None,
            Some("gone*"),
            true,
            &fake
        ));
        assert!(allow_access_with(
            &peer,
            &mut host,
            None,
            Some("10.9.9.9"),
            true,
            &fake
        ));
    }

    #[test]
    fn precedence() {
        let fake = Fake::default();
        let peer = client("10.0.0.5");
        let run = |allow: Option<&str>, deny: Option<&str>| {
            let mut host = HostName::Name("peer.example".into());
            allow_access_with(&peer, &mut host, allow, deny, false, &fake)
        };
        assert!(run(None, None));
        assert!(run(Some(""), Some("")));
        assert!(run(Some("10.0.0.5"), None));
        // Allow list alone: everyone else is refused.
        assert!(!run(Some("10.0.0.6"), None));
        assert!(!run(None, Some("10.0.0.0/8")));
        assert!(run(None, Some("10.0.0.6")));
        // Both: allow wins, then deny, then the host is let in.
        assert!(run(Some("10.0.0.5"), Some("10.0.0.0/8")));
        assert!(!run(Some("10.0.0.6"), Some("10.0.0.0/8")));
        assert!(run(Some("10.0.0.6"), Some("10.0.0.7")));
        assert!(run(Some(""), Some("10.0.0.7")));
    }

    #[test]
    fn proxy_peers() {
        let fake = Fake::default().host("lb", &["10.0.0.5"]);
        let peer = client("10.0.0.5");
        assert!(proxy_peer_allowed_with(&peer, Some("10.0.0.0/8"), &fake));
        assert!(!proxy_peer_allowed_with(&peer, Some("lb"), &fake));
        assert!(!proxy_peer_allowed_with(&peer, None, &fake));
        assert!(!proxy_peer_allowed_with(&peer, Some(""), &fake));
    }

    #[test]
    fn reverse_lookups() {
        let mut fake = Fake::default()
            .host("good.example", &["192.0.2.1"])
            .host("liar.example", &["192.0.2.99"])
            .host("six.example", &["2001:db8::1"]);
        let long = format!("{}.example", "a".repeat(100));
        fake = fake.host(&long, &["192.0.2.4"]);
        for (ip, name) in [
            ("192.0.2.1", "good.example"),
            ("192.0.2.2", "liar.example"),
            ("2001:db8::1", "six.example"),
            ("192.0.2.4", long.as_str()),
        ] {
            fake.ptr.insert(ip.parse().unwrap(), name.to_string());
        }
        assert_eq!(
            reverse_lookup_with(&client("192.0.2.1"), &fake).unwrap(),
            "good.example"
        );
        assert_eq!(
            reverse_lookup_with(&client("2001:db8::1"), &fake).unwrap(),
            "six.example"
        );
        assert!(
            reverse_lookup_with(&client("192.0.2.2"), &fake)
                .unwrap_err()
                .contains("spoofed")
        );
        assert_eq!(
            reverse_lookup_with(&client("192.0.2.3"), &fake).unwrap_err(),
            "name lookup failed for 192.0.2.3: Name or service not known"
        );
        assert!(reverse_lookup_with(&client("192.0.2.4"), &fake).is_err());
        assert_eq!(
            reverse_lookup_with(&client("0.0.0.0"), &fake).unwrap(),
            UNKNOWN
        );
    }

    #[test]
    fn number_parsers() {
        assert_eq!(inet_aton_exact("1"), Some(Ipv4Addr::new(0, 0, 0, 1)));
        assert_eq!(inet_aton_exact("1.2.3"), Some(Ipv4Addr::new(1, 2, 0, 3)));
        assert_eq!(
            inet_aton_exact("0377.0.0.0"),
            Some(Ipv4Addr::new(255, 0, 0, 0))
        );
        assert_eq!(inet_aton_exact("4294967295"), Some(Ipv4Addr::BROADCAST));
        assert_eq!(inet_aton_exact("4294967296"), None);
        assert_eq!(inet_aton_exact("1.16777216"), None);
        assert_eq!(inet_aton_exact("0x7f.1"), Some(Ipv4Addr::new(127, 0, 0, 1)));
        assert_eq!(inet_aton_exact("1."), None);
        assert_eq!(inet_aton_exact(".1"), None);
        assert_eq!(inet_aton_exact("08"), None);
        assert_eq!(strtol_exact(" +7"), Some(7));
        assert_eq!(strtol_exact("-3"), Some(-3));
        assert_eq!(strtol_exact("7 "), None);
        assert_eq!(strtol_exact(""), None);
        assert_eq!(strtol_exact("99999999999999999999999"), Some(i64::MAX));
    }

    proptest! {
        #[test]
        fn lists_never_panic(list in ".{0,80}", deny in "[0-9a-f.:/%, *?\\[\\]@-]{0,60}") {
            let fake = Fake::default().host("a", &["10.0.0.1"]);
            for peer in ["10.0.0.1", "fe80::1", "::1"] {
                let mut host = HostName::Undetermined;
                let _ = allow_access_with(&client(peer), &mut host, Some(&list), Some(&deny), true, &fake);
                let _ = allow_access_with(&client(peer), &mut host, Some(&deny), Some(&list), true, &fake);
            }
        }
    }
}
