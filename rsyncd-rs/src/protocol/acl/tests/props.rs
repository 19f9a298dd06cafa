//! Properties: encode then decode gives what the rules say; arbitrary bytes never panic and
//! never make more than the input can carry; cutting the input anywhere only delays.

use proptest::prelude::*;

use super::*;

fn id_access() -> impl Strategy<Value = IdAccess> {
    (any::<bool>(), any::<u32>(), 0u32..8).prop_map(|(is_user, id, perms)| IdAccess {
        kind: if is_user { IdKind::User } else { IdKind::Group },
        id,
        perms,
    })
}

fn slot() -> impl Strategy<Value = Option<u8>> {
    proptest::option::of(0u8..8)
}

/// Any ACL with valid perms (what a sender may hold, stripped or not).
fn any_acl() -> impl Strategy<Value = RsyncAcl> {
    (
        slot(),
        slot(),
        slot(),
        slot(),
        proptest::collection::vec(id_access(), 0..6),
    )
        .prop_map(
            |(user_obj, group_obj, mask_obj, other_obj, names)| RsyncAcl {
                user_obj,
                group_obj,
                mask_obj,
                other_obj,
                names,
            },
        )
}

/// An ACL as the kernel holds one: the three slots, a mask when there are names, named
/// entries sorted and unique.
fn kernel_acl() -> impl Strategy<Value = RsyncAcl> {
    (0u8..8, 0u8..8, slot(), 0u8..8, any_acl()).prop_map(|(u, g, mask, o, mut acl)| {
        acl.sort_names();
        acl.names.dedup_by_key(|e| (e.kind, e.id));
        RsyncAcl {
            user_obj: Some(u),
            group_obj: Some(g),
            mask_obj: if acl.names.is_empty() {
                mask
            } else {
                Some(mask.unwrap_or(7))
            },
            other_obj: Some(o),
            names: acl.names,
        }
    })
}

fn entry_mode() -> impl Strategy<Value = u32> {
    let types = [0o100000, 0o40000, 0o20000, 0o10000, 0o140000, 0o120000];
    (proptest::sample::select(types.to_vec()), 0u32..0o10000).prop_map(|(t, p)| t | p)
}

fn named(kind: IdKind, id: u32) -> Option<Vec<u8>> {
    (id % 3 == 0).then(|| format!("{kind:?}{id}").into_bytes())
}

proptest! {
    #[test]
    fn what_is_sent_is_what_is_held(
        entries in proptest::collection::vec(
            (entry_mode(), proptest::option::of(kernel_acl()), any_acl()), 1..12),
        inline in any::<bool>(),
        cut in any::<prop::sample::Index>(),
    ) {
        let names = if inline { AclNames::Inline } else { AclNames::Listed };
        let mut enc = AclEncoder::new(names);
        let mut seen = std::collections::HashSet::new();
        let mut first = |kind, id| if seen.insert((kind, id)) { named(kind, id) } else { None };
        let mut stream = Vec::new();
        let mut ends = Vec::new();
        for (m, access, default) in &entries {
            enc.encode(*m, access.as_ref(), Some(default), &mut first, &mut stream).unwrap();
            ends.push(stream.len());
        }
        let mut dec = AclDecoder::new(false);
        let mut names_seen = Vec::new();
        let mut map = |kind, id, name: Option<&[u8]>| {
            if let Some(n) = name {
                names_seen.push(n.to_vec());
                assert_eq!(Some(n.to_vec()), named(kind, id));
            }
            id
        };
        let mut at = 0;
        for ((m, access, default), end) in entries.iter().zip(&ends) {
            let Decoded::Done { value, used } = dec.decode(&stream[at..], *m, &mut map).unwrap()
            else {
                panic!("whole stream asked for more")
            };
            at += used;
            prop_assert_eq!(at, *end);
            let Some(got) = value else {
                prop_assert!(mode::is_lnk(*m));
                continue;
            };
            let full = access.clone().unwrap_or_else(|| RsyncAcl::from_mode(*m));
            let mut want = full.strip_access(*m);
            // Later hits hold the first literal's fill-in, whose mode may differ.
            let held = dec.access_acl(got.access).unwrap();
            want.mask_obj = want.mask_obj.or(held.mask_obj);
            prop_assert_eq!(held, &want);
            prop_assert!(want.names.is_empty() || held.mask_obj.is_some());
            // Sent unchanged, an ACL compares equal to itself on disk.
            if access.is_some() {
                let m = (*m & !0o777) | full.perms_mode().unwrap();
                let mut r = full.strip_access(m);
                r.fill_received_mask(AclKind::Access, m);
                prop_assert!(access_acl_equal_enough(&full, &r, m));
            }
            prop_assert_eq!(got.default.is_some(), mode::is_dir(*m));
            if let Some(d) = got.default {
                let mut want = default.clone();
                want.fill_received_mask(AclKind::Default, *m);
                prop_assert_eq!(dec.default_acl(d).unwrap(), &want);
            }
        }
        prop_assert!(inline || names_seen.is_empty());

        // Cut anywhere: whole entries before the cut decode the same, the one across it
        // asks for no more than the rest of the stream.
        let cut = cut.index(stream.len() + 1);
        let mut dec = AclDecoder::new(false);
        let mut at = 0;
        for ((m, ..), end) in entries.iter().zip(&ends) {
            match dec.decode(&stream[at..cut], *m, &mut super::same_id).unwrap() {
                Decoded::Done { used, .. } => {
                    at += used;
                    prop_assert_eq!(at, *end);
                }
                Decoded::Needed(n) => {
                    prop_assert!(*end > cut && n >= 1 && cut + n <= stream.len());
                    break;
                }
            }
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
        modes in proptest::collection::vec(entry_mode(), 1..8),
        fake_super in any::<bool>(),
    ) {
        let mut dec = AclDecoder::new(fake_super);
        let mut at = 0;
        let mut literals = 0;
        for m in modes {
            match dec.decode(&bytes[at..], m, &mut super::same_id) {
                Ok(Decoded::Done { value, used }) => {
                    prop_assert!(at + used <= bytes.len());
                    at += used;
                    if let Some(v) = value {
                        let a = dec.access_acl(v.access).unwrap();
                        // Two bytes at least per named entry.
                        prop_assert!(a.names.len() * 2 <= bytes.len());
                        literals += 1;
                        if !fake_super {
                            prop_assert!(a.names.iter().all(|e| e.perms < 8));
                        }
                    }
                }
                Ok(Decoded::Needed(n)) => {
                    prop_assert!(n >= 1);
                    break;
                }
                Err(_) => break,
            }
        }
        prop_assert!(literals <= 8);
        let _ = decode_kernel_acl(&bytes);
        let _ = decode_fake_super_acl(&bytes, 0o100644);
        if let Ok(a) = decode_kernel_acl(&bytes) {
            prop_assert!(a.names.len() * 8 < bytes.len().max(1));
            let _ = encode_kernel_acl(&a);
        }
    }

    #[test]
    fn kernel_values_round_trip(acl in kernel_acl()) {
        let v = encode_kernel_acl(&acl).unwrap();
        prop_assert_eq!(v.len(), 4 + 8 * (3 + usize::from(acl.mask_obj.is_some()) + acl.names.len()));
        prop_assert_eq!(decode_kernel_acl(&v).unwrap(), acl);
    }

    #[test]
    fn fake_super_values_round_trip(
        acl in any_acl(),
        slots in proptest::collection::vec(any::<u8>().prop_filter("NO_ENTRY", |&b| b != NO_ENTRY), 3),
        wide in proptest::collection::vec(0u32..0x8000_0000, 0..6),
    ) {
        let mut acl = RsyncAcl {
            user_obj: Some(slots[0]),
            group_obj: Some(slots[1]),
            other_obj: Some(slots[2]),
            ..acl
        };
        for (e, p) in acl.names.iter_mut().zip(wide) {
            e.perms = p;
        }
        let v = encode_fake_super_acl(&acl);
        prop_assert_eq!(v.len(), 16 + 8 * acl.names.len());
        prop_assert_eq!(decode_fake_super_acl(&v, 0).unwrap(), acl);
    }

    #[test]
    fn a_planned_write_is_the_acl_it_names(r in any_acl(), old in 0u32..0o10000, new in 0u32..0o10000) {
        let r = RsyncAcl { user_obj: None, other_obj: None, ..r };
        let mut r = r;
        r.sort_names();
        r.names.dedup_by_key(|e| (e.kind, e.id));
        r.fill_received_mask(AclKind::Access, new);
        let p = plan_access_acl(&r, 0o100000 | old, 0o100000 | new).unwrap();
        match &p.write {
            AclWrite::Set(v) => {
                let on_disk = decode_kernel_acl(v).unwrap();
                prop_assert_eq!(on_disk.perms_mode().unwrap(), p.mode_after_write & 0o777);
                prop_assert_eq!(&on_disk.names, &p.acl.names);
            }
            AclWrite::Remove => prop_assert!(!r.is_extended()),
        }
        // The chmod, if any, leaves the new mode.
        let end = p.chmod.unwrap_or(p.mode_after_write);
        prop_assert_eq!(end & 0o7777, new);
        prop_assert_eq!(p.acl.perms_mode().unwrap(), new & 0o777);
    }
}
