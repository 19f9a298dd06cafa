//! `--version` and `-VV`: what this build can do, in the words and order stock rsync
//! 3.5.0 prints them (its `--version` text and its `-VV` JSON), so that scripts and test
//! suites that read stock's capabilities read ours the same way. Every value is ours:
//! a capability we do not have is printed as stock prints a missing one (`no NAME`,
//! `false`).

use crate::protocol::auth::OUR_DIGESTS;
use crate::protocol::compat::{CHECKSUM_NAMES, COMPRESS_NAMES};

/// The newest protocol we speak.
const PROTOCOL: u32 = 32;

/// One capability's value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Value {
    /// A width in bits: `64-bit files` / `"file_bits": 64`.
    Bits(u32),
    /// Present or not: `ACLs` or `no ACLs` / `"ACLs": true`.
    Has(bool),
    /// A word: `optional secluded-args` / `"secluded_args": "optional"`.
    Word(&'static str),
}

/// (the text's name, the JSON key, the value), in stock's order.
const CAPABILITIES: &[(&str, &str, Value)] = &[
    ("files", "file_bits", Value::Bits(64)),
    ("inums", "inum_bits", Value::Bits(64)),
    ("timestamps", "timestamp_bits", Value::Bits(64)),
    ("long ints", "long_int_bits", Value::Bits(64)),
    ("socketpairs", "socketpairs", Value::Has(true)),
    ("symlinks", "symlinks", Value::Has(true)),
    ("symtimes", "symtimes", Value::Has(true)),
    ("hardlinks", "hardlinks", Value::Has(true)),
    ("hardlink-specials", "hardlink_specials", Value::Has(true)),
    ("hardlink-symlinks", "hardlink_symlinks", Value::Has(true)),
    ("IPv6", "IPv6", Value::Has(true)),
    ("atimes", "atimes", Value::Has(true)),
    // Batch files are written and read by a client; the server has no batch mode.
    ("batchfiles", "batchfiles", Value::Has(false)),
    ("inplace", "inplace", Value::Has(true)),
    ("append", "append", Value::Has(true)),
    ("ACLs", "ACLs", Value::Has(ACLS)),
    // Stock's word for setting ACLs through descriptors, not racy paths: ours go
    // through the confined tree's descriptors.
    ("ACL-at", "ACL_at", Value::Has(ACLS)),
    ("xattrs", "xattrs", Value::Has(true)),
    ("secluded-args", "secluded_args", Value::Word("optional")),
    ("iconv", "iconv", Value::Has(false)),
    ("prealloc", "prealloc", Value::Has(false)),
    ("stop-at", "stop_at", Value::Has(false)),
    ("crtimes", "crtimes", Value::Has(false)),
];

/// Whether `-A` is carried out (it is: `protocol/acl`, `engine/tree/acls.rs`).
const ACLS: bool = true;

/// Stock's optimizations: none of them are ours (no SIMD or assembly rolling sums, no
/// OpenSSL).
const OPTIMIZATIONS: &[(&str, &str)] = &[
    ("SIMD-roll", "SIMD_roll"),
    ("asm-roll", "asm_roll"),
    ("openssl-crypto", "openssl_crypto"),
    ("asm-MD5", "asm_MD5"),
];

fn first_line() -> String {
    format!(
        "rsyncd-rs  version {}  protocol version {PROTOCOL}",
        env!("CARGO_PKG_VERSION")
    )
}

/// `--version` (and `-V`): stock's layout, lists wrapped at 72 columns.
pub fn text() -> String {
    let caps: Vec<String> = CAPABILITIES
        .iter()
        .map(|(name, _, v)| match v {
            Value::Bits(n) => format!("{n}-bit {name}"),
            Value::Has(true) => (*name).to_string(),
            Value::Has(false) => format!("no {name}"),
            Value::Word(w) => format!("{w} {name}"),
        })
        .collect();
    let opts: Vec<String> = OPTIMIZATIONS
        .iter()
        .map(|(n, _)| format!("no {n}"))
        .collect();
    let mut out = first_line();
    out.push_str(" (rsync 3.5.0 compatible, protocol versions 27-32)\n");
    for (title, items, sep) in [
        ("Capabilities", caps, ", "),
        ("Optimizations", opts, ", "),
        ("Checksum list", words(CHECKSUM_NAMES), " "),
        ("Compress list", words(COMPRESS_NAMES), " "),
        ("Daemon auth list", words(OUR_DIGESTS), " "),
    ] {
        out.push_str(title);
        out.push_str(":\n");
        wrap(&items, sep, &mut out);
    }
    out
}

/// `-VV`: stock's JSON object, with our values.
pub fn json() -> String {
    let mut caps = serde_json::Map::new();
    for (_, key, v) in CAPABILITIES {
        let value = match v {
            Value::Bits(n) => serde_json::Value::from(*n),
            Value::Has(b) => serde_json::Value::from(*b),
            Value::Word(w) => serde_json::Value::from(*w),
        };
        caps.insert((*key).to_string(), value);
    }
    let opts: serde_json::Map<String, serde_json::Value> = OPTIMIZATIONS
        .iter()
        .map(|(_, k)| ((*k).to_string(), serde_json::Value::from(false)))
        .collect();
    let doc = serde_json::json!({
        "program": "rsyncd-rs",
        "version": env!("CARGO_PKG_VERSION"),
        "protocol": format!("{PROTOCOL}.0"),
        "compatible": "rsync 3.5.0",
        "capabilities": caps,
        "optimizations": opts,
        "checksum_list": words(CHECKSUM_NAMES),
        "compress_list": words(COMPRESS_NAMES),
        "daemon_auth_list": words(OUR_DIGESTS),
    });
    let mut s = serde_json::to_string_pretty(&doc).unwrap_or_default();
    s.push('\n');
    s
}

fn words(list: &str) -> Vec<String> {
    list.split_whitespace().map(String::from).collect()
}

/// Items joined by `sep` on lines of at most 72 columns, each indented by four.
fn wrap(items: &[String], sep: &str, out: &mut String) {
    let sep_end = sep.trim_end();
    let mut line = String::from("   ");
    for (i, item) in items.iter().enumerate() {
        let last = i + 1 == items.len();
        let piece = if last {
            item.clone()
        } else {
            format!("{item}{sep_end}")
        };
        if line.len() + 1 + piece.len() > 72 && !line.trim().is_empty() {
            out.push_str(&line);
            out.push('\n');
            line = String::from("   ");
        }
        line.push(' ');
        line.push_str(&piece);
    }
    out.push_str(&line);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_lists_every_capability_as_stock_words_it() {
        let t = text();
        assert!(t.starts_with("rsyncd-rs  version "), "{t}");
        assert!(t.contains("protocol version 32"), "{t}");
        for want in [
            "64-bit files",
            "xattrs,",
            "no iconv",
            "optional secluded-args",
            "no crtimes",
        ] {
            assert!(t.contains(want), "{want} in {t}");
        }
        assert!(t.contains(if ACLS { " ACLs," } else { "no ACLs," }), "{t}");
        assert!(t.lines().skip(1).all(|l| l.len() <= 72), "{t}");
        assert!(
            t.contains("Checksum list:\n    xxh128 xxh3 xxh64 md5 md4 sha1 none\n"),
            "{t}"
        );
    }

    #[test]
    fn the_json_has_stocks_keys() {
        let v: serde_json::Value = serde_json::from_str(&json()).unwrap();
        let caps = &v["capabilities"];
        assert_eq!(caps["xattrs"], true);
        assert_eq!(caps["ACLs"], ACLS);
        assert_eq!(caps["file_bits"], 64);
        assert_eq!(caps["secluded_args"], "optional");
        assert_eq!(v["protocol"], "32.0");
        assert_eq!(v["compress_list"][0], "zstd");
        // Every key stock 3.5.0 prints under capabilities is there.
        for key in [
            "file_bits",
            "inum_bits",
            "timestamp_bits",
            "long_int_bits",
            "socketpairs",
            "symlinks",
            "symtimes",
            "hardlinks",
            "hardlink_specials",
            "hardlink_symlinks",
            "IPv6",
            "atimes",
            "batchfiles",
            "inplace",
            "append",
            "ACLs",
            "ACL_at",
            "xattrs",
            "secluded_args",
            "iconv",
            "prealloc",
            "stop_at",
            "crtimes",
        ] {
            assert!(!caps[key].is_null(), "{key}");
        }
    }
}
