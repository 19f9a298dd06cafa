//! The `log format` escapes of rsyncd's transfer log (upstream: log.c, log_formatted()).

use crate::protocol::checksum::ChecksumKind;

/// The per-file values `log format` escapes can refer to.
#[derive(Debug, Clone, Default)]
pub struct LogFileInfo<'a> {
    /// `%o`: send, recv or del.
    pub operation: &'a str,
    /// `%n`: the file name (directories with a trailing `/`).
    pub name: &'a str,
    /// `%f`: the name with the module path prefix as upstream shows it.
    pub full_name: &'a str,
    /// `%L`: ` -> target` for symlinks, ` => target` for hard links, else empty.
    pub link: &'a str,
    /// `%l`: the file length.
    pub length: i64,
    /// `%b`: bytes transferred; `%c`: checksum bytes.
    pub bytes: i64,
    pub checksum_bytes: i64,
    /// `%i`: the itemize string.
    pub itemize: &'a str,
    /// `%B`: permission bits as `rwxr-xr-x`; `%M`: mtime as text; `%U`/`%G`: uid and gid.
    pub perms: &'a str,
    pub mtime: &'a str,
    pub uid: u32,
    pub gid: Option<u32>,
    /// `%C`: the full-file checksum as hex, when known.
    pub checksum: &'a str,
}

/// The per-session values `log format` escapes can refer to.
#[derive(Debug, Clone, Default)]
pub struct LogSessionInfo<'a> {
    /// `%h`, `%a`: the peer's host name and address.
    pub host: &'a str,
    pub addr: &'a str,
    /// `%m`, `%P`, `%u`: module name, module path, authenticated user.
    pub module: &'a str,
    pub module_path: &'a str,
    pub user: &'a str,
}

/// Expands a `log format` string. Supports upstream's escapes, each optionally with a
/// printf-style width (`%-10n`, `%'l`). Upstream: log.c, log_formatted().
pub fn format_log_line(format: &str, s: &LogSessionInfo<'_>, f: &LogFileInfo<'_>) -> String {
    let mut out = String::new();
    let mut chars = format.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut left = false;
        let mut width = String::new();
        while let Some(&d) = chars.peek() {
            match d {
                '-' => left = true,
                '\'' => {}
                '0'..='9' => width.push(d),
                _ => break,
            }
            chars.next();
        }
        let Some(esc) = chars.next() else {
            out.push('%');
            break;
        };
        let value: String = match esc {
            'h' => s.host.to_string(),
            'a' => s.addr.to_string(),
            'm' => s.module.to_string(),
            'P' => s.module_path.to_string(),
            'u' => s.user.to_string(),
            't' => chrono::Local::now().format("%Y/%m/%d %H:%M:%S").to_string(),
            'p' => std::process::id().to_string(),
            'o' => f.operation.to_string(),
            'n' => f.name.to_string(),
            'f' => f.full_name.to_string(),
            'L' => f.link.to_string(),
            'l' => f.length.to_string(),
            'b' => f.bytes.to_string(),
            'c' => f.checksum_bytes.to_string(),
            'i' => f.itemize.to_string(),
            'B' => f.perms.to_string(),
            'M' => f.mtime.to_string(),
            'U' => f.uid.to_string(),
            'G' => f
                .gid
                .map_or_else(|| "DEFAULT".to_string(), |g| g.to_string()),
            'C' => f.checksum.to_string(),
            '%' => "%".to_string(),
            other => {
                // Unknown escapes are kept as written.
                out.push('%');
                out.push(other);
                continue;
            }
        };
        let w: usize = width.parse().unwrap_or(0);
        if left {
            out.push_str(&format!("{value:<w$}"));
        } else {
            out.push_str(&format!("{value:>w$}"));
        }
    }
    out
}

/// `%B`: the permission bits as `ls -l` shows them, without the type letter
/// (upstream: lib/permstring.c).
pub fn perm_string(mode: u32) -> String {
    let bit = |mask: u32, c: char| if mode & mask != 0 { c } else { '-' };
    let special = |x: u32, special: u32, set: char| match (mode & x != 0, mode & special != 0) {
        (true, true) => set,
        (false, true) => set.to_ascii_uppercase(),
        (true, false) => 'x',
        (false, false) => '-',
    };
    [
        bit(0o400, 'r'),
        bit(0o200, 'w'),
        special(0o100, 0o4000, 's'),
        bit(0o040, 'r'),
        bit(0o020, 'w'),
        special(0o010, 0o2000, 's'),
        bit(0o004, 'r'),
        bit(0o002, 'w'),
        special(0o001, 0o1000, 't'),
    ]
    .iter()
    .collect()
}

/// `%M`: a modification time as local `YYYY/MM/DD-HH:MM:SS` (upstream: timestring() with
/// the space replaced).
pub fn mtime_string(secs: i64) -> String {
    use chrono::TimeZone;
    match chrono::Local.timestamp_opt(secs, 0).earliest() {
        Some(t) => t.format("%Y/%m/%d-%H:%M:%S").to_string(),
        None => secs.to_string(),
    }
}

/// A number as upstream's human_num() shows it: plain (`0`), with thousands separators
/// (`1`, the default), or with K/M/G/T/P units of 1000 (`2`) or 1024 (`3` and up).
/// Upstream: lib/compat.c, do_big_num().
pub fn human_num(num: i64, level: u8) -> String {
    if level > 1 {
        let mult = if level == 2 { 1000.0 } else { 1024.0 };
        if num as f64 >= mult || num as f64 <= -mult {
            let mut d = (num as f64).abs() / mult;
            let mut unit = 'K';
            for u in ['M', 'G', 'T', 'P'] {
                if d < mult {
                    break;
                }
                d /= mult;
                unit = u;
            }
            let d = if num < 0 { -d } else { d };
            return format!("{d:.2}{unit}");
        }
    }
    let digits = num.unsigned_abs().to_string();
    if level == 0 {
        return num.to_string();
    }
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    if num < 0 { format!("-{out}") } else { out }
}

/// A time as upstream's timestring() shows it: local `YYYY/MM/DD HH:MM:SS`.
pub fn time_string(secs: i64) -> String {
    mtime_string(secs).replacen('-', " ", 1)
}

/// A checksum as hex in its canonical byte order (the xxHash family is stored
/// little-endian, so it is reversed); `None` for sums with no canonical form.
/// Upstream: util2.c, sum_as_hex(), and checksum.c, canonical_checksum().
pub fn sum_hex(kind: ChecksumKind, sum: &[u8]) -> Option<String> {
    let hex = |bytes: &mut dyn Iterator<Item = &u8>| {
        bytes.map(|b| format!("{b:02x}")).collect::<String>()
    };
    match kind {
        ChecksumKind::Md4 | ChecksumKind::Md5 | ChecksumKind::Sha1 => Some(hex(&mut sum.iter())),
        ChecksumKind::Xxh64 | ChecksumKind::Xxh3 | ChecksumKind::Xxh128 => {
            Some(hex(&mut sum.iter().rev()))
        }
        ChecksumKind::Md4Old | ChecksumKind::None => None,
    }
}

/// `%C`: the `--checksum` sum of a regular file when the list carried one (not for a
/// deletion), else the transfer sum of a transferred one, in hex; blanks of the sum's
/// width otherwise. Upstream: log.c, log_formatted() `%C`.
pub fn checksum_field(
    list_sum: Option<crate::protocol::checksum::ChecksumSpec>,
    xfer: crate::protocol::checksum::ChecksumSpec,
    e: &crate::protocol::flist::FileEntry,
    iflags: u32,
    transfer_sum: Option<&[u8]>,
) -> String {
    use crate::protocol::flist::mode;
    use crate::protocol::ndx::iflags as it;
    let hex = if !mode::is_reg(e.mode) {
        None
    } else if let Some(spec) = list_sum.filter(|_| iflags & it::DELETED == 0) {
        e.checksum.as_deref().and_then(|s| sum_hex(spec.kind, s))
    } else if iflags & it::TRANSFER != 0 {
        transfer_sum.and_then(|s| sum_hex(xfer.kind, s))
    } else {
        None
    };
    hex.unwrap_or_else(|| " ".repeat(2 * list_sum.unwrap_or(xfer).digest_len()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::checksum::ChecksumKind;

    #[test]
    fn sums_print_in_canonical_order() {
        assert_eq!(
            sum_hex(ChecksumKind::Md5, &[0x01, 0xab]).as_deref(),
            Some("01ab")
        );
        assert_eq!(
            sum_hex(ChecksumKind::Xxh64, &[0x01, 0xab]).as_deref(),
            Some("ab01")
        );
        assert_eq!(sum_hex(ChecksumKind::Md4Old, &[0x01]), None);
    }

    #[test]
    fn log_format_escapes() {
        let s = LogSessionInfo {
            host: "localhost",
            addr: "127.0.0.1",
            module: "backup",
            module_path: "/b",
            user: "u",
        };
        let f = LogFileInfo {
            operation: "recv",
            name: "1.txt",
            length: 13,
            itemize: ">f+++++++++",
            ..Default::default()
        };
        assert_eq!(
            format_log_line("%o %h [%a] %m (%u) %f %l", &s, &f),
            "recv localhost [127.0.0.1] backup (u)  13"
        );
        assert_eq!(format_log_line("%i %n%L", &s, &f), ">f+++++++++ 1.txt");
        assert_eq!(
            format_log_line("%-8n|%5l|%%|%q", &s, &f),
            "1.txt   |   13|%|%q"
        );
    }

    #[test]
    fn numbers_read_like_upstreams() {
        assert_eq!(human_num(3_000_000, 1), "3,000,000");
        assert_eq!(human_num(999, 1), "999");
        assert_eq!(human_num(4096, 0), "4096");
        assert_eq!(human_num(4096, 2), "4.10K");
        assert_eq!(human_num(3_000_000, 3), "2.86M");
        assert_eq!(human_num(-1234, 1), "-1,234");
    }

    #[test]
    fn perm_strings_follow_ls() {
        assert_eq!(perm_string(0o100644), "rw-r--r--");
        assert_eq!(perm_string(0o4755), "rwsr-xr-x");
        assert_eq!(perm_string(0o2644), "rw-r-Sr--");
        assert_eq!(perm_string(0o1777), "rwxrwxrwt");
        assert_eq!(perm_string(0o1000), "--------T");
    }
}
