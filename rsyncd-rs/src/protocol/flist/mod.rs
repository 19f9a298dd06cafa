//! The file-list entry codec (upstream: flist.c send_file_entry(), recv_file_entry(),
//! write_end_of_flist(); uidlist.c id lists) and the order both sides sort lists in
//! (flist.c f_name_cmp()).

mod decode;
mod encode;
mod sort;

pub use decode::{
    FlistDecoder, IdList, IdListDecoder, MAX_ID_LIST_ENTRIES, SYMLINK_PREFIX, decode_id_list,
};
pub use encode::{FlistEncoder, encode_id_list};
pub use sort::{compare_names, mark_duplicates, sort_and_clean};

/// `XMIT_*` flags of a file-list entry (upstream: rsync.h).
pub mod xmit {
    pub const TOP_DIR: u32 = 1 << 0;
    pub const SAME_MODE: u32 = 1 << 1;
    pub const EXTENDED_FLAGS: u32 = 1 << 2;
    pub const SAME_RDEV_PRE28: u32 = 1 << 2;
    pub const SAME_UID: u32 = 1 << 3;
    pub const SAME_GID: u32 = 1 << 4;
    pub const SAME_NAME: u32 = 1 << 5;
    pub const LONG_NAME: u32 = 1 << 6;
    pub const SAME_TIME: u32 = 1 << 7;
    pub const SAME_RDEV_MAJOR: u32 = 1 << 8;
    pub const NO_CONTENT_DIR: u32 = 1 << 8;
    pub const HLINKED: u32 = 1 << 9;
    pub const SAME_DEV_PRE30: u32 = 1 << 10;
    pub const USER_NAME_FOLLOWS: u32 = 1 << 10;
    pub const RDEV_MINOR_8_PRE30: u32 = 1 << 11;
    pub const GROUP_NAME_FOLLOWS: u32 = 1 << 11;
    pub const HLINK_FIRST: u32 = 1 << 12;
    pub const IO_ERROR_ENDLIST: u32 = 1 << 12;
    pub const MOD_NSEC: u32 = 1 << 13;
    pub const SAME_ATIME: u32 = 1 << 14;
    pub const CRTIME_EQ_MTIME: u32 = 1 << 17;
}

/// The longest path upstream accepts (MAXPATHLEN).
pub const MAXPATHLEN: usize = 4096;

/// io_error bits a sender may report (upstream: IOERR_VALID_MASK).
pub const IOERR_VALID_MASK: i32 = 0x7;

/// File type bits as they travel (Linux values, which upstream uses on the wire).
pub mod mode {
    pub const S_IFMT: u32 = 0o170_000;
    pub const S_IFSOCK: u32 = 0o140_000;
    pub const S_IFLNK: u32 = 0o120_000;
    pub const S_IFREG: u32 = 0o100_000;
    pub const S_IFBLK: u32 = 0o060_000;
    pub const S_IFDIR: u32 = 0o040_000;
    pub const S_IFCHR: u32 = 0o020_000;
    pub const S_IFIFO: u32 = 0o010_000;

    pub fn is_dir(m: u32) -> bool {
        m & S_IFMT == S_IFDIR
    }
    /// The letter `ls -l` and rsync's listings show for the type (`-` for a file).
    pub fn type_char(m: u32) -> char {
        match m & S_IFMT {
            S_IFDIR => 'd',
            S_IFLNK => 'l',
            S_IFCHR => 'c',
            S_IFBLK => 'b',
            S_IFIFO => 'p',
            S_IFSOCK => 's',
            _ => '-',
        }
    }
    pub fn is_reg(m: u32) -> bool {
        m & S_IFMT == S_IFREG
    }
    pub fn is_lnk(m: u32) -> bool {
        m & S_IFMT == S_IFLNK
    }
    pub fn is_device(m: u32) -> bool {
        matches!(m & S_IFMT, S_IFCHR | S_IFBLK)
    }
    pub fn is_special(m: u32) -> bool {
        matches!(m & S_IFMT, S_IFIFO | S_IFSOCK)
    }
    /// Whether the type bits name one of the seven file types.
    pub fn is_valid_type(m: u32) -> bool {
        matches!(
            m & S_IFMT,
            S_IFREG | S_IFDIR | S_IFLNK | S_IFCHR | S_IFBLK | S_IFIFO | S_IFSOCK
        )
    }
}

/// What both sides agreed that shapes the file list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FlistConfig {
    pub protocol: i32,
    /// CF_VARINT_FLIST_FLAGS.
    pub varint_flags: bool,
    pub inc_recurse: bool,
    /// Safe file lists (protocol 31+, or CF_SAFE_FLIST): an I/O error can end a list.
    pub safe_flist: bool,
    pub preserve_uid: bool,
    pub preserve_gid: bool,
    pub preserve_links: bool,
    pub preserve_devices: bool,
    pub preserve_specials: bool,
    pub preserve_hard_links: bool,
    pub preserve_atimes: bool,
    pub preserve_crtimes: bool,
    pub relative: bool,
    /// Bytes of the `--checksum` sum per regular file (0 without `-c`).
    pub flist_csum_len: usize,
    /// CF_ID0_NAMES: names of id 0 follow the id lists.
    pub id0_names: bool,
    /// `--delete-missing-args`: a mode of 0 marks a missing argument.
    pub missing_args_delete: bool,
    /// What becomes of received symlink targets.
    pub link_targets: LinkTargets,
    /// `-X` (protocol 30+): every entry ends with an xattr block.
    pub preserve_xattrs: bool,
    /// `-A` (protocol 30+): every entry but a symlink carries ACL blocks, before the
    /// xattr block.
    pub preserve_acls: bool,
    /// The receiver is fake super: received ACL perm bits are not range-checked (they
    /// are only stored). Upstream: acls.c, recv_acl_access() with am_root < 0.
    pub acl_fake_super: bool,
    /// `--numeric-ids` from the client: no id lists travel after a non-incremental list.
    pub numeric_ids: bool,
}

/// What a receiving daemon does to the symlink targets it is sent (upstream: flist.c
/// recv_file_entry(), by `munge_symlinks` and `sanitize_paths`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LinkTargets {
    /// Kept as sent: a client, a remote-shell server, a module chrooted at its root
    /// without munging.
    #[default]
    AsSent,
    /// `/rsyncd-munged/` goes in front (`munge symlinks`), whatever the target.
    Munged,
    /// Made relative and kept from climbing above the transfer root, as
    /// [`sanitize_path`](crate::protocol::sanitize::sanitize_path) does at the depth of
    /// the link's directory: a module not chrooted at its root, without munging.
    Sanitized,
}

/// How an entry belongs to a hard-link group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HardLink {
    /// Protocol 30+: the first of its group (its own index is the group number).
    First,
    /// Protocol 30+: a later member; the index of the group's first member.
    Follower(i32),
    /// Before protocol 30: the device and inode the sender saw.
    DevIno { dev: i64, ino: i64 },
}

/// One entry of a file list.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FileEntry {
    /// The full relative name, as sent (no trailing `/`).
    pub name: Vec<u8>,
    /// Type and permission bits.
    pub mode: u32,
    pub size: i64,
    pub mtime: i64,
    pub mtime_nsec: u32,
    pub atime: Option<i64>,
    pub crtime: Option<i64>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    /// Names the sender gave with the ids (inline names of incremental lists).
    pub user_name: Option<Vec<u8>>,
    pub group_name: Option<Vec<u8>>,
    /// Device numbers (major, minor) for devices (and dummies for specials before 31).
    pub rdev: Option<(u32, u32)>,
    pub link_target: Option<Vec<u8>>,
    pub hard_link: Option<HardLink>,
    /// The `--checksum` sum of a regular file.
    pub checksum: Option<Vec<u8>>,
    /// The raw XMIT flags as received (for directory scoping: TOP_DIR, NO_CONTENT_DIR).
    pub xflags: u32,
    /// With `-X`: the entry's xattrs as they travel (wire names, long values as
    /// digests), shared by every entry the session's cache gives the same list.
    pub xattrs: Option<std::sync::Arc<crate::protocol::xattr::XattrList>>,
    /// With `-A`: the entry's ACLs ([`crate::protocol::acl::FileAcls`] says which form on
    /// which side); `None` for a symlink.
    pub acls: Option<std::sync::Arc<crate::protocol::acl::FileAcls>>,
}

impl FileEntry {
    pub fn is_dir(&self) -> bool {
        mode::is_dir(self.mode)
    }

    /// A directory whose contents are part of the transfer (for `--delete`).
    pub fn is_content_dir(&self, protocol: i32) -> bool {
        self.is_dir() && (protocol < 30 || self.xflags & xmit::NO_CONTENT_DIR == 0)
    }

    /// A directory only sent as a parent of a `-R` path.
    pub fn is_implied_dir(&self, protocol: i32) -> bool {
        protocol >= 30
            && self.is_dir()
            && self.xflags & (xmit::TOP_DIR | xmit::NO_CONTENT_DIR)
                == (xmit::TOP_DIR | xmit::NO_CONTENT_DIR)
    }

    /// The name's final component.
    pub fn basename(&self) -> &[u8] {
        match self.name.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.name[i + 1..],
            None => &self.name,
        }
    }

    /// The directory part of the name (empty at top level).
    pub fn dirname(&self) -> &[u8] {
        match self.name.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.name[..i],
            None => &[],
        }
    }
}

/// What a decode step produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlistItem {
    Entry(Box<FileEntry>),
    /// The end of this list, with the sender's io_error bits (masked).
    End {
        io_error: i32,
    },
}

/// Why a file list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlistError {
    #[error("{0}")]
    Wire(#[from] super::WireError),
    #[error("ABORTING due to unsafe pathname from sender: {0}")]
    UnsafeName(String),
    #[error("invalid file mode 0{mode:o} for {name}")]
    BadMode { mode: u32, name: String },
    #[error("hard-link reference out of range: {0}")]
    BadHardLink(i32),
    /// A name whose kept prefix and new suffix reach MAXPATHLEN (upstream's
    /// recv_file_entry() guard, which ends the session as a buffer overflow).
    #[error("overflow: xflags=0x{xflags:x} l1={l1} l2={l2} lastname={lastname}")]
    NameOverflow {
        xflags: u32,
        l1: usize,
        l2: i64,
        lastname: String,
    },
    #[error("ERROR: rejecting non-directory transfer-root entry: {0}")]
    DotNotDir(String),
    #[error("Invalid flist flag: {0:x}")]
    BadFlags(u32),
    #[error("{0}")]
    Unsupported(&'static str),
    #[error("{0}")]
    Xattr(#[from] crate::protocol::xattr::XattrError),
    #[error("{0}")]
    Acl(#[from] crate::protocol::acl::AclError),
}

/// Cleans a received name as upstream's clean_fname(CFN_REFUSE_DOT_DOT_DIRS) does, and
/// refuses `..` components, an absolute name without `-R`, and names over MAXPATHLEN.
pub fn clean_received_name(name: &[u8], relative: bool) -> Result<Vec<u8>, FlistError> {
    let shown = || String::from_utf8_lossy(name).into_owned();
    if name.contains(&0) {
        return Err(FlistError::UnsafeName(shown()));
    }
    let absolute = name.first() == Some(&b'/');
    if absolute && !relative {
        return Err(FlistError::UnsafeName(shown()));
    }
    let mut parts: Vec<&[u8]> = Vec::new();
    for part in name.split(|&b| b == b'/') {
        match part {
            b"" | b"." => {}
            b".." => return Err(FlistError::UnsafeName(shown())),
            p => parts.push(p),
        }
    }
    let mut out = parts.join(&b'/');
    if out.is_empty() {
        out = b".".to_vec();
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_acls;
#[cfg(test)]
mod tests_links;
#[cfg(test)]
mod tests_xattrs;
