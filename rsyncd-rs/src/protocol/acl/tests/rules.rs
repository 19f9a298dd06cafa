//! The rules around the wire: stripping, fill-in, rebuilding, comparing, the kernel and
//! fake-super formats, and the mode a write leaves (spec §6.4, §7.2, §7.3, §8).

use super::*;

fn full(user: u8, group: u8, mask: Option<u8>, other: u8, names: Vec<IdAccess>) -> RsyncAcl {
    RsyncAcl {
        user_obj: Some(user),
        group_obj: Some(group),
        mask_obj: mask,
        other_obj: Some(other),
        names,
    }
}

#[test]
fn stripping_leaves_what_the_mode_cannot_say() {
    // No mask: everything goes, whatever the group entry says.
    let plain = full(6, 4, None, 4, vec![]);
    assert_eq!(plain.strip_access(0o100600), RsyncAcl::default());
    // A mask equal to the group bits goes with named entries; a differing group stays.
    let acl = full(6, 4, Some(6), 4, vec![user(1000, 6)]);
    let s = acl.strip_access(0o100664);
    assert_eq!(
        s,
        RsyncAcl {
            group_obj: Some(4),
            names: vec![user(1000, 6)],
            ..RsyncAcl::default()
        }
    );
    // A group entry equal to the group bits goes.
    let acl = full(6, 6, Some(6), 4, vec![user(1000, 6)]);
    assert_eq!(acl.strip_access(0o100664).group_obj, None);
    // A mask without named entries stays (`setfacl -m m::r`).
    let acl = full(6, 6, Some(4), 4, vec![]);
    assert_eq!(
        acl.strip_access(0o100644),
        RsyncAcl {
            group_obj: Some(6),
            mask_obj: Some(4),
            ..RsyncAcl::default()
        }
    );
    // A mask that is not the group bits (a --chmod changed the mode) stays.
    let acl = full(6, 4, Some(6), 4, vec![group(5, 4)]);
    assert_eq!(acl.strip_access(0o100644).mask_obj, Some(6));
}

#[test]
fn receivers_fill_in_a_missing_mask() {
    let mut a = RsyncAcl {
        names: vec![user(1, 4)],
        ..RsyncAcl::default()
    };
    a.fill_received_mask(AclKind::Access, 0o100750);
    assert_eq!(a.mask_obj, Some(5));
    let mut d = RsyncAcl {
        group_obj: Some(1),
        names: vec![user(1, 4), group(2, 2)],
        ..RsyncAcl::default()
    };
    d.fill_received_mask(AclKind::Default, 0o40700);
    assert_eq!(d.mask_obj, Some(7));
    // No names: no mask added; a mask sent stays.
    let mut e = RsyncAcl::default();
    e.fill_received_mask(AclKind::Access, 0o100777);
    assert_eq!(e.mask_obj, None);
    let mut m = RsyncAcl {
        mask_obj: Some(1),
        names: vec![user(1, 7)],
        ..RsyncAcl::default()
    };
    m.fill_received_mask(AclKind::Default, 0);
    assert_eq!(m.mask_obj, Some(1));
}

#[test]
fn a_condensed_acl_expands_against_the_mode() {
    let r = RsyncAcl {
        group_obj: Some(4),
        mask_obj: Some(6),
        names: vec![user(1000, 6)],
        ..RsyncAcl::default()
    };
    assert_eq!(
        r.expand_access(0o100670),
        full(6, 4, Some(7), 0, vec![user(1000, 6)])
    );
    assert_eq!(
        RsyncAcl::default().expand_access(0o100751),
        full(7, 5, None, 1, vec![])
    );
    assert_eq!(r.expand_access(0o100670).perms_mode(), Some(0o670));
    assert_eq!(RsyncAcl::default().perms_mode(), None);
}

#[test]
fn equal_enough_ignores_what_the_chmod_sets() {
    // What the receiver's table holds: stripped by the sender, filled in on receipt.
    let received = |acl: &RsyncAcl, m| {
        let mut r = acl.strip_access(m);
        r.fill_received_mask(AclKind::Access, m);
        r
    };
    let local = full(6, 4, Some(6), 4, vec![user(1000, 6)]);
    let sent = received(&local, 0o100664);
    assert!(access_acl_equal_enough(&local, &sent, 0o100664));
    // Other owner/other/mask bits: still equal, the chmod does it.
    assert!(access_acl_equal_enough(&local, &sent, 0o100070));
    // A stripped group entry means the new mode's group bits.
    let sent = received(&full(6, 6, Some(6), 4, vec![user(1000, 6)]), 0o100664);
    assert_eq!(sent.group_obj, None);
    assert!(!access_acl_equal_enough(&local, &sent, 0o100664));
    assert!(access_acl_equal_enough(&local, &sent, 0o100644));
    // Mask on one side only; names differ in perms, id or order.
    assert!(!access_acl_equal_enough(
        &RsyncAcl::from_mode(0o644),
        &sent,
        0o100644
    ));
    let other_perm = RsyncAcl {
        names: vec![user(1000, 4)],
        ..sent.clone()
    };
    assert!(!access_acl_equal_enough(&local, &other_perm, 0o100644));
    let two = RsyncAcl {
        names: vec![user(1, 4), group(1, 4)],
        ..local.clone()
    };
    let swapped = RsyncAcl {
        names: vec![group(1, 4), user(1, 4)],
        ..two.clone()
    };
    assert!(!access_acl_equal_enough(&two, &swapped, 0o100664));
    // A plain file against an empty received ACL: nothing to write.
    assert!(access_acl_equal_enough(
        &RsyncAcl::from_mode(0o600),
        &RsyncAcl::default(),
        0o100777
    ));
    // Default ACLs compare exactly.
    let d = full(7, 5, Some(7), 5, vec![user(1000, 7)]);
    assert!(default_acl_equal(&d, &d.clone()));
    assert!(!default_acl_equal(
        &d,
        &full(7, 5, Some(7), 4, d.names.clone())
    ));
    assert!(default_acl_equal(
        &RsyncAcl::default(),
        &RsyncAcl::default()
    ));
}

#[test]
fn locally_read_names_sort_users_first_by_id() {
    let mut a = RsyncAcl {
        names: vec![group(1, 4), user(9, 4), group(0, 4), user(2, 4)],
        ..RsyncAcl::default()
    };
    a.sort_names();
    assert_eq!(a.names, [user(2, 4), user(9, 4), group(0, 4), group(1, 4)]);
}

#[test]
fn kernel_values_read_as_stock_reads_them() {
    // `setfacl -m u:1000:rw-` on a 0644 file, read with `getfattr -e hex` (this kernel).
    let v = h(
        "02000000 01000600ffffffff 02000600e8030000 04000400ffffffff \
               10000600ffffffff 20000400ffffffff",
    );
    let acl = decode_kernel_acl(&v).unwrap();
    assert_eq!(acl, full(6, 4, Some(6), 4, vec![user(1000, 6)]));
    assert_eq!(encode_kernel_acl(&acl).unwrap(), v);
    // What stock's receiver wrote is what we would write for the same ACL.
    for s in [F_KERNEL, G_KERNEL, D_DEFAULT_KERNEL] {
        let v = h(s);
        assert_eq!(
            encode_kernel_acl(&decode_kernel_acl(&v).unwrap()).unwrap(),
            v
        );
    }
    // Out of order, an unknown tag, a duplicate slot, stray perm bits: tolerated as 3.5.0
    // reads them (sorted first, first duplicate kept, perms masked to 0..=7).
    let v = h(
        "02000000 20000400ffffffff 40000700ffffffff 01000f00ffffffff \
               04000500ffffffff 01000100ffffffff 08000400 07000000",
    );
    assert_eq!(
        decode_kernel_acl(&v).unwrap(),
        full(7, 5, None, 4, vec![group(7, 4)])
    );
    // An empty body is an ACL with nothing in it; a bad header or length is refused.
    assert_eq!(decode_kernel_acl(&h("02000000")), Ok(RsyncAcl::default()));
    for bad in ["", "020000", "01000000", "02000000 01000600ffff"] {
        assert!(decode_kernel_acl(&h(bad)).is_err(), "{bad}");
    }
}

#[test]
fn kernel_values_are_written_in_canonical_order_or_refused() {
    let acl = full(
        7,
        5,
        Some(7),
        0,
        vec![group(3, 1), user(20, 2), user(10, 4)],
    );
    assert_eq!(
        encode_kernel_acl(&acl).unwrap(),
        h(
            "02000000 01000700ffffffff 02000400 0a000000 02000200 14000000 \
           04000500ffffffff 08000100 03000000 10000700ffffffff 20000000ffffffff"
        )
    );
    // Absent slots are packed as no perms.
    assert_eq!(
        encode_kernel_acl(&RsyncAcl::default()).unwrap(),
        h("02000000 01000000ffffffff 04000000ffffffff 20000000ffffffff")
    );
    let no_mask = full(7, 5, None, 0, vec![user(1, 7)]);
    let twice = full(7, 5, Some(7), 0, vec![user(1, 7), user(1, 4)]);
    let wide = full(7, 5, Some(7), 0, vec![user(1, 8)]);
    for bad in [no_mask, twice, wide] {
        assert!(matches!(encode_kernel_acl(&bad), Err(AclError::Invalid(_))));
    }
}

#[test]
fn writing_an_access_acl_plans_the_mode() {
    // `f` of the capture on a new 0600 file: set; the kernel leaves 0664, no chmod.
    let r = RsyncAcl {
        mask_obj: Some(6),
        names: vec![user(1000, 6)],
        ..RsyncAcl::default()
    };
    let p = plan_access_acl(&r, 0o100600, 0o100664).unwrap();
    assert_eq!(p.acl, full(6, 6, Some(6), 4, vec![user(1000, 6)]));
    assert_eq!(p.write, AclWrite::Set(h(F_KERNEL)));
    assert_eq!((p.mode_after_write, p.chmod), (0o100664, None));
    // Special bits still need the chmod.
    let p = plan_access_acl(&r, 0o100600, 0o102664).unwrap();
    assert_eq!((p.mode_after_write, p.chmod), (0o100664, Some(0o102664)));
    // setgid going off: group and other count as none until the chmod.
    let p = plan_access_acl(&r, 0o102664, 0o100664).unwrap();
    assert_eq!(
        p.write,
        AclWrite::Set(h("02000000 01000600ffffffff 02000600e8030000 \
                         04000000ffffffff 10000000ffffffff 20000000ffffffff"))
    );
    assert_eq!((p.mode_after_write, p.chmod), (0o102600, Some(0o100664)));
    assert_eq!(p.acl, full(6, 6, Some(6), 4, vec![user(1000, 6)]));
    // A directory's sticky bit going on, likewise; staying on, not.
    let p = plan_access_acl(&r, 0o40775, 0o41775).unwrap();
    assert_eq!((p.mode_after_write, p.chmod), (0o40700, Some(0o41775)));
    let p = plan_access_acl(&r, 0o41700, 0o41775).unwrap();
    assert_eq!((p.mode_after_write, p.chmod), (0o41775, None));
    // A group entry sent stays; the group bits go to the mask.
    let r = RsyncAcl {
        group_obj: Some(4),
        ..r
    };
    let p = plan_access_acl(&r, 0o100600, 0o100674).unwrap();
    assert_eq!(p.acl, full(6, 4, Some(7), 4, vec![user(1000, 6)]));
}

#[test]
fn an_acl_the_mode_says_is_removed() {
    let p = plan_access_acl(&RsyncAcl::default(), 0o100664, 0o100640).unwrap();
    assert_eq!(p.write, AclWrite::Remove);
    assert_eq!(p.acl, RsyncAcl::from_mode(0o640));
    assert_eq!((p.mode_after_write, p.chmod), (0o100664, Some(0o100640)));
    let p = plan_access_acl(&RsyncAcl::default(), 0o100640, 0o100640).unwrap();
    assert_eq!(p.chmod, None);
    // A default ACL: empty means remove; otherwise written as it came.
    assert_eq!(plan_default_acl(&RsyncAcl::default()), Ok(AclWrite::Remove));
    let d = decode_kernel_acl(&h(D_DEFAULT_KERNEL)).unwrap();
    assert_eq!(plan_default_acl(&d), Ok(AclWrite::Set(h(D_DEFAULT_KERNEL))));
}

#[test]
fn fake_super_values_are_stocks() {
    // What stock stored decodes to the received ACL, with the mode in the absent slots.
    let f = decode_fake_super_acl(&h(F_AACL), 0o100664).unwrap();
    assert_eq!(f, full(6, 6, Some(6), 4, vec![user(1000, 6)]));
    let d = decode_fake_super_acl(&h(D_DACL), DIR).unwrap();
    assert_eq!(d, full(7, 5, Some(7), 5, vec![user(1000, 7)]));
    let g = decode_fake_super_acl(&h(G_AACL), 0o100650).unwrap();
    assert_eq!(g.names, [user(1000, 4), group(1000, 5)]);
    assert_eq!(g.group_obj, Some(4));
    // The spec's example blob (§6.4): access [0x80, 4, 7, 0x80, 65534, user rwx].
    let blob = h("80000000 04000000 07000000 80000000 feff0000 07000080");
    let a = RsyncAcl {
        group_obj: Some(4),
        mask_obj: Some(7),
        names: vec![user(65534, 7)],
        ..RsyncAcl::default()
    };
    assert_eq!(encode_fake_super_acl(&a), blob);
    assert_eq!(fake_super_write(AclKind::Access, &a), AclWrite::Set(blob));
    assert_eq!(
        fake_super_write(AclKind::Default, &RsyncAcl::default()),
        AclWrite::Remove
    );
    // A stored mask of 0x80 is no mask; a slot keeps its low byte.
    let v = h("80010000 03000000 80000000 02000000");
    assert_eq!(
        decode_fake_super_acl(&v, 0o100751).unwrap(),
        full(7, 3, None, 2, vec![])
    );
    for bad in [
        "",
        "80000000 80000000 80000000",
        "80000000 80000000 80000000 80000000 01",
    ] {
        assert!(decode_fake_super_acl(&h(bad), 0).is_err(), "{bad}");
    }
}
