//! Compat flags and the checksum/compression name negotiation that follow the argument list
//! (upstream: compat.c setup_protocol(), negotiate_the_strings(), parse_negotiate_str()).

/// Incremental recursion allowed.
pub const CF_INC_RECURSE: u32 = 0x001;
/// The server can set symlink times.
pub const CF_SYMLINK_TIMES: u32 = 0x002;
/// The server was built with iconv.
pub const CF_SYMLINK_ICONV: u32 = 0x004;
/// The client handles the I/O-error flag at the end of a file list.
pub const CF_SAFE_FLIST: u32 = 0x008;
/// The client does not want the xattr hardlink optimisation.
pub const CF_AVOID_XATTR_OPTIM: u32 = 0x010;
/// The checksum seed goes before the data in MD5 block sums.
pub const CF_CHKSUM_SEED_FIX: u32 = 0x020;
/// `--inplace` with `--partial-dir` behaves as 3.2+ does.
pub const CF_INPLACE_PARTIAL_DIR: u32 = 0x040;
/// File-list flags are varints, and checksum/compression names are negotiated.
pub const CF_VARINT_FLIST_FLAGS: u32 = 0x080;
/// Names of uid 0 and gid 0 are sent in the id lists.
pub const CF_ID0_NAMES: u32 = 0x100;

/// Our checksum names in preference order, as 3.5.0 sends them (the server adds `none`).
pub const CHECKSUM_NAMES: &str = "xxh128 xxh3 xxh64 md5 md4 sha1 none";
/// Our compression names in preference order (the server adds `none`).
pub const COMPRESS_NAMES: &str = "zstd lz4 zlibx zlib none";

/// The longest negotiation string upstream reads (MAX_NSTR_STRLEN).
pub const MAX_NSTR_STRLEN: usize = 256;

/// Computes the compat flags a server sends, from the client's `-e` capability letters.
/// `inc_recurse` is whether this session may use incremental recursion.
/// Upstream: compat.c, setup_protocol().
pub fn server_compat_flags(client_info: &str, inc_recurse: bool) -> u32 {
    let mut flags = if inc_recurse { CF_INC_RECURSE } else { 0 };
    flags |= CF_SYMLINK_TIMES;
    for (letter, bit) in [
        ('f', CF_SAFE_FLIST),
        ('x', CF_AVOID_XATTR_OPTIM),
        ('C', CF_CHKSUM_SEED_FIX),
        ('I', CF_INPLACE_PARTIAL_DIR),
        ('u', CF_ID0_NAMES),
        ('v', CF_VARINT_FLIST_FLAGS),
    ] {
        if client_info.contains(letter) {
            flags |= bit;
        }
    }
    // A pre-release form of `v`: varint flist flags, but the compat flags go out as a byte
    // and nothing is negotiated.
    if client_info.contains('V') {
        flags |= CF_VARINT_FLIST_FLAGS;
    }
    flags
}

/// Whether the names are exchanged: only the `v` letter turns negotiation on.
pub fn negotiates_strings(client_info: &str) -> bool {
    client_info.contains('v')
}

/// Picks, from the peer's space-separated list, the name ranked best in `ours`.
/// Upstream: compat.c, parse_negotiate_str() (3.5.0: own preference order wins).
pub fn choose_name<'a>(ours: &'a str, peer_list: &str) -> Option<&'a str> {
    let peer: Vec<&str> = peer_list
        .split(' ')
        .filter(|s| !s.is_empty())
        .map(canonical_name)
        .collect();
    ours.split(' ').find(|name| peer.contains(name))
}

/// Maps aliases to the names in our lists.
fn canonical_name(name: &str) -> &str {
    match name {
        "xxhash" => "xxh64",
        "xxh3-64" | "xxh364" => "xxh3",
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn compat_flags_from_captures() {
        // a-push-p32: `e.iLsfxCIvu` with inc-recursion -> 0x1ff (no iconv in our build: 0x1fb).
        let f = server_compat_flags("iLsfxCIvu", true);
        assert_eq!(f | CF_SYMLINK_ICONV, 0x1ff);
        // a-listonly: no `i` -> no CF_INC_RECURSE.
        assert_eq!(
            server_compat_flags("LsfxCIvu", false) | CF_SYMLINK_ICONV,
            0x1fe
        );
        // rsync 3.1.2 sends `e.iLsfxC`: never the varint or id0 bits.
        assert_eq!(
            server_compat_flags("iLsfxC", true) & (CF_VARINT_FLIST_FLAGS | CF_ID0_NAMES),
            0
        );
        assert!(negotiates_strings("iLsfxCIvu"));
        assert!(!negotiates_strings("iLsfxC"));
    }

    #[test]
    fn name_choice() {
        assert_eq!(
            choose_name(CHECKSUM_NAMES, "xxh128 xxh3 xxh64 md5 md4 sha1"),
            Some("xxh128")
        );
        assert_eq!(
            choose_name(COMPRESS_NAMES, "zstd lz4 zlibx zlib"),
            Some("zstd")
        );
        // Our order wins over the peer's.
        assert_eq!(choose_name(CHECKSUM_NAMES, "md5 xxh64"), Some("xxh64"));
        assert_eq!(choose_name(CHECKSUM_NAMES, "xxhash"), Some("xxh64"));
        assert_eq!(choose_name(COMPRESS_NAMES, "brotli"), None);
        assert_eq!(choose_name(CHECKSUM_NAMES, ""), None);
    }

    proptest! {
        #[test]
        fn client_info_and_name_lists_never_panic(info in ".{0,40}", list in ".{0,300}", inc: bool) {
            let f = server_compat_flags(&info, inc);
            // Only the bits a 3.5.0 server can send.
            prop_assert_eq!(f & !0x1ff, 0);
            let _ = negotiates_strings(&info);
            for ours in [CHECKSUM_NAMES, COMPRESS_NAMES] {
                if let Some(name) = choose_name(ours, &list) {
                    prop_assert!(ours.split(' ').any(|n| n == name));
                }
            }
        }
    }
}
