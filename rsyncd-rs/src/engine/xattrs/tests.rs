#![allow(clippy::unwrap_used)]

use super::*;

fn pairs(v: &[(&str, &str)]) -> Vec<XattrPair> {
    v.iter()
        .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
        .collect()
}

fn names(l: &XattrList) -> Vec<String> {
    l.0.iter()
        .map(|i| String::from_utf8(i.name.clone()).unwrap())
        .collect()
}

fn rules(am_root: i8, preserve: u8) -> XattrRules<'static> {
    XattrRules {
        am_root,
        preserve,
        filter: None,
        keep_acls: false,
    }
}

#[test]
fn fake_super_keeps_the_acl_xattrs_under_acls() {
    let keep = XattrRules {
        keep_acls: true,
        ..rules(-1, 1)
    };
    for name in [
        &b"user.rsync.%aacl"[..],
        b"user.rsync.%dacl",
        b"user.rsync.%stat",
    ] {
        assert!(!keep.may_remove(name));
    }
    assert!(keep.may_remove(b"user.other"));
    // Without -A they go as stock's removal loop lets them; as root nothing is fake.
    assert!(rules(-1, 1).may_remove(b"user.rsync.%aacl"));
}

const LOCAL: &[(&str, &str)] = &[
    ("user.b", "1"),
    ("system.posix_acl_access", "x"),
    ("security.selinux", "ctx"),
    ("user.rsync.%stat", "100644 0,0 0:0"),
    ("user.rsync.trusted.t", "tt"),
    ("user.a", "2"),
];

#[test]
fn sender_skips_system_and_internal_and_sorts() {
    // A sender (root or not) skips only system.* and, without -XX, user.rsync.%*.
    assert_eq!(
        names(&rules(0, 1).sender_list(pairs(LOCAL))),
        [
            "security.selinux",
            "user.a",
            "user.b",
            "user.rsync.trusted.t"
        ]
    );
    assert_eq!(
        names(&rules(1, 2).sender_list(pairs(LOCAL))),
        [
            "security.selinux",
            "user.a",
            "user.b",
            "user.rsync.%stat",
            "user.rsync.trusted.t"
        ]
    );
}

#[test]
fn fake_super_sender_unescapes_and_hides_stat() {
    let l = rules(-1, 1).sender_list(pairs(LOCAL));
    assert_eq!(
        names(&l),
        ["security.selinux", "user.a", "user.b", "trusted.t"]
    );
    assert_eq!(
        rules(-1, 1).sender_local_name(b"trusted.t"),
        b"user.rsync.trusted.t"
    );
    assert_eq!(rules(-1, 1).sender_local_name(b"user.a"), b"user.a");
}

#[test]
fn receiver_namespaces() {
    let wire = XattrList(
        [
            "user.a",
            "trusted.t",
            "user.rsync.%stat",
            "%stat",
            "security.s",
        ]
        .iter()
        .map(|n| XattrItem::new(n.as_bytes().to_vec(), b"v"))
        .collect(),
    );
    let got = |r: XattrRules<'_>| -> Vec<(i32, String)> {
        r.receiver_list(&wire)
            .into_iter()
            .map(|x| (x.num, String::from_utf8(x.name).unwrap()))
            .collect()
    };
    // A plain user keeps user.* only; the internal name is dropped without -XX.
    assert_eq!(got(rules(0, 1)), [(1, "user.a".into())]);
    // Fake super escapes other namespaces; %stat, bare or prefixed, never lands.
    assert_eq!(
        got(rules(-1, 1)),
        [
            (1, "user.a".to_string()),
            (5, "user.rsync.security.s".to_string()),
            (2, "user.rsync.trusted.t".to_string()),
        ]
    );
    // Root keeps every name as sent.
    assert_eq!(got(rules(1, 2)).len(), 5);
}

#[test]
fn removal_scope() {
    assert!(rules(0, 1).may_remove(b"user.x"));
    assert!(!rules(0, 1).may_remove(b"security.selinux"));
    assert!(rules(1, 1).may_remove(b"trusted.x"));
    assert!(!rules(1, 1).may_remove(b"system.posix_acl_access"));
    assert!(!rules(-1, 1).may_remove(b"user.rsync.%stat"));
    assert!(rules(-1, 1).may_remove(b"user.rsync.trusted.t"));
}

#[test]
fn diff_requests_only_long_values_that_differ() {
    let long = vec![b'L'; 100];
    let wire = XattrList(vec![
        XattrItem::new(b"user.equal".to_vec(), &long),
        XattrItem::new(b"user.new".to_vec(), &long),
        XattrItem::new(b"user.short".to_vec(), b"s"),
    ]);
    let recv = rules(0, 1).receiver_list(&wire);
    let local = vec![(b"user.equal".to_vec(), long.clone())];
    assert_eq!(xattr_diff(&recv, &local), (true, vec![2]));
    let all: Vec<XattrPair> = vec![
        (b"user.equal".to_vec(), long.clone()),
        (b"user.new".to_vec(), long.clone()),
        (b"user.short".to_vec(), b"s".to_vec()),
    ];
    assert_eq!(xattr_diff(&recv, &all), (false, vec![]));
    // An extra local name is a difference too.
    let mut more = all.clone();
    more.push((b"user.zz".to_vec(), vec![]));
    assert_eq!(xattr_diff(&recv, &more), (true, vec![]));
    // Fetched values fill in; unfetched come from a matching basis.
    let want = want_from(
        &recv,
        &[(2, long.clone())],
        &|_| Some(long.clone()),
        false,
        "f",
    )
    .unwrap();
    assert!(want.items.iter().all(|(_, v)| v.is_some()));
    assert!(want_from(&recv, &[], &|_| None, false, "f").is_err());
}
