//! The itemized-change string (`%i`, `-i`) and the transfer-log line (upstream: log.c
//! log_formatted() `%i`, log_item(), maybe_log_item()).

use crate::protocol::flist::mode;
use crate::protocol::ndx::iflags as it;

/// What the `%i` string needs besides the item flags.
#[derive(Debug, Clone, Copy)]
pub struct ItemizeCtx {
    /// This side sends (`<`) rather than receives (`>`).
    pub sending: bool,
    pub preserve_mtimes: bool,
    /// The receiver can set symlink times.
    pub symlink_times: bool,
}

/// The eleven-character `YXcstpoguax` string. Upstream: log.c, log_formatted() `%i`.
pub fn itemize_string(iflags: u32, file_mode: u32, ctx: ItemizeCtx) -> String {
    if iflags & it::DELETED != 0 {
        return "*deleting  ".to_string();
    }
    let mut c = [b'.'; 11];
    c[0] = if iflags & it::LOCAL_CHANGE != 0 {
        if iflags & it::XNAME_FOLLOWS != 0 {
            b'h'
        } else {
            b'c'
        }
    } else if iflags & it::TRANSFER == 0 {
        b'.'
    } else if ctx.sending {
        b'<'
    } else {
        b'>'
    };
    let flag = |bit: u32, ch: u8| if iflags & bit != 0 { ch } else { b'.' };
    if mode::is_lnk(file_mode) {
        c[1] = b'L';
        c[3] = b'.';
        c[4] = if iflags & it::REPORT_TIME == 0 {
            b'.'
        } else if !ctx.preserve_mtimes || !ctx.symlink_times || iflags & it::REPORT_TIMEFAIL != 0 {
            b'T'
        } else {
            b't'
        };
    } else {
        c[1] = if mode::is_dir(file_mode) {
            b'd'
        } else if mode::is_special(file_mode) {
            b'S'
        } else if mode::is_device(file_mode) {
            b'D'
        } else {
            b'f'
        };
        c[3] = flag(it::REPORT_SIZE, b's');
        c[4] = if iflags & it::REPORT_TIME == 0 {
            b'.'
        } else if !ctx.preserve_mtimes {
            b'T'
        } else {
            b't'
        };
    }
    c[2] = flag(it::REPORT_CHANGE, b'c');
    c[5] = flag(it::REPORT_PERMS, b'p');
    c[6] = flag(it::REPORT_OWNER, b'o');
    c[7] = flag(it::REPORT_GROUP, b'g');
    c[8] = match (
        iflags & it::REPORT_ATIME != 0,
        iflags & it::REPORT_CRTIME != 0,
    ) {
        (false, false) => b'.',
        (true, true) => b'b',
        (true, false) => b'u',
        (false, true) => b'n',
    };
    c[9] = flag(it::REPORT_ACL, b'a');
    c[10] = flag(it::REPORT_XATTR, b'x');
    if iflags & (it::IS_NEW | it::MISSING_DATA) != 0 {
        let ch = if iflags & it::IS_NEW != 0 { b'+' } else { b'?' };
        c[2..].fill(ch);
    } else if matches!(c[0], b'.' | b'h' | b'c') && c[2..].iter().all(|&b| b == b'.') {
        c[2..].fill(b' ');
    }
    String::from_utf8_lossy(&c).into_owned()
}

/// Whether a non-transfer item is worth a record (upstream: SIGNIFICANT_ITEM_FLAGS).
pub fn is_significant(iflags: u32) -> bool {
    iflags & it::SIGNIFICANT != 0
}

#[cfg(test)]
mod tests {
    use super::*;

    const RECV: ItemizeCtx = ItemizeCtx {
        sending: false,
        preserve_mtimes: true,
        symlink_times: true,
    };
    const SEND: ItemizeCtx = ItemizeCtx {
        sending: true,
        preserve_mtimes: true,
        symlink_times: true,
    };

    #[test]
    fn strings_from_the_reference() {
        // TRANSFER.md 4.2 / 8.1, captured client views.
        assert_eq!(itemize_string(0x6000, 0o40755, RECV), "cd+++++++++");
        assert_eq!(itemize_string(0xa000, 0o100644, SEND), "<f+++++++++");
        assert_eq!(itemize_string(0xa000, 0o100644, RECV), ">f+++++++++");
        assert_eq!(itemize_string(0x6002, 0o120777, RECV), "cL+++++++++");
        assert_eq!(itemize_string(0x8008, 0o100644, SEND), "<f..t......");
        assert_eq!(itemize_string(0x800c, 0o100644, RECV), ">f.st......");
        assert_eq!(itemize_string(0x0068, 0o40755, RECV), ".d..t.og...");
        assert_eq!(itemize_string(0x7000, 0o100644, RECV), "hf+++++++++");
        assert_eq!(itemize_string(it::DELETED, 0o100644, RECV), "*deleting  ");
        assert_eq!(itemize_string(0, 0o100644, RECV), ".f         ");
        assert_eq!(
            itemize_string(it::LOCAL_CHANGE | it::XNAME_FOLLOWS, 0o100644, RECV),
            "hf         "
        );
    }
}
