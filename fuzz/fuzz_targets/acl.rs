//! Arbitrary bytes as the ACL blocks of a run of file-list entries (what a receiver reads
//! after each entry under `-A`), and as the kernel's and fake super's ACL xattr values
//! (what a sender or receiver reads from disk). Nothing may panic; what decodes keeps
//! the receiver's bounds; a kernel value we read writes back as one that reads the same.
//! `cargo +nightly fuzz run acl`.
//!
//! Input: byte 0 bit 0 makes the receiver fake super; byte 1 gives the types of the
//! entries, two bits each (file, directory, symlink, device), cycling; the rest is the
//! stream, and also the xattr value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use rsyncd_rs::protocol::Decoded;
use rsyncd_rs::protocol::acl::{
    AclDecoder, IdKind, MAX_WIRE_ACL_COUNT, decode_fake_super_acl, decode_kernel_acl,
    encode_fake_super_acl, encode_kernel_acl,
};

const MODES: [u32; 4] = [0o100644, 0o40755, 0o120777, 0o20660];

fuzz_target!(|data: &[u8]| {
    let Some((&[flags, types], stream)) = data.split_first_chunk::<2>() else {
        return;
    };
    let fake_super = flags & 1 != 0;
    let mut dec = AclDecoder::new(fake_super);
    let mut map = |_: IdKind, id: u32, name: Option<&[u8]>| {
        assert!(name.is_none_or(|n| n.len() <= 255));
        id
    };
    let mut pos = 0;
    for i in 0.. {
        let m = MODES[usize::from(types >> (2 * (i % 4)) & 3)];
        match dec.decode(&stream[pos..], m, &mut map) {
            Ok(Decoded::Done { value, used }) => {
                assert!(pos + used <= stream.len());
                pos += used;
                let Some(e) = value else {
                    assert_eq!(used, 0);
                    // A run of symlinks would never end.
                    if i > 64 {
                        break;
                    }
                    continue;
                };
                assert!(used > 0);
                assert_eq!(e.default.is_some(), m == MODES[1]);
                let tables = [dec.access_acl(e.access), e.default.and_then(|d| dec.default_acl(d))];
                for acl in tables.into_iter().flatten() {
                    assert!(acl.names.len() <= MAX_WIRE_ACL_COUNT);
                    assert!(acl.names.len() * 2 <= stream.len());
                    assert!(acl.names.is_empty() || acl.mask_obj.is_some());
                    if !fake_super {
                        assert!(acl.names.iter().all(|n| n.perms < 8));
                        let slots = [acl.user_obj, acl.group_obj, acl.mask_obj, acl.other_obj];
                        assert!(slots.iter().flatten().all(|&v| v < 8));
                    }
                }
            }
            Ok(Decoded::Needed(n)) => {
                assert!(n > 0);
                break;
            }
            Err(_) => break,
        }
    }

    if let Ok(acl) = decode_kernel_acl(stream) {
        assert!(acl.names.len() * 8 < stream.len());
        let complete = acl.user_obj.is_some() && acl.group_obj.is_some() && acl.other_obj.is_some();
        if let (true, Ok(v)) = (complete, encode_kernel_acl(&acl)) {
            assert_eq!(decode_kernel_acl(&v).ok(), Some(acl));
        }
    }
    if let Ok(acl) = decode_fake_super_acl(stream, 0o100644) {
        assert_eq!(encode_fake_super_acl(&acl).len(), stream.len());
    }
});
