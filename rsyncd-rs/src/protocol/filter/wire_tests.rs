//! The filter list codec against bytes stock rsync 3.5.0 sent.
//!
//! The non-empty lists were captured for this module (the `b-*` captures all carry empty
//! lists) with a 3.5.0 client talking to `rsync --server --daemon` through
//! `RSYNC_CONNECT_PROG` and a relay that logged the client's bytes:
//!
//! ```text
//! RSYNC_CONNECT_PROG=relay rsync -a [--protocol=N] --delete OPTIONS src/ rsync://localhost/m/d1/
//! ```
//!
//! Each constant is the data-stream bytes (multiplex headers removed) from the first
//! rule's length to the terminating zero, with the options given in its comment.

use super::*;
use crate::protocol::Decoded;
use crate::protocol::testutil::deframe;
use proptest::prelude::*;

fn unhex(lines: &[&str]) -> Vec<u8> {
    let s: String = lines.concat();
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// Protocol 32 push, frame at c2s@121: `--exclude='*.o' --filter='P keep' -FF
/// --include='sub/' --filter='-/ /abs' --filter='+! nope' --filter='R risky'
/// --filter=':n- .ex' --filter='-p perish' --filter='-x user.foo'
/// --filter='merge,e /dev/null'`.
const P32: &[&str] = &[
    "050000002d202a2e6f070000002d72206b656570100000003a202f2e7273796e632d66696c7465720f000000",
    "2d202e7273796e632d66696c746572060000002b207375622f070000002d2f202f616273070000002b21206e",
    "6f7065080000002b72207269736b79070000003a6e2d202e6578090000002d70207065726973680b0000002d",
    "7820757365722e666f6f060000002d206e756c6c00000000",
];

/// Protocol 29 push, raw at c2s@79: the same without `+!`, `-p`, `-x` and the merge.
const P29: &[&str] = &[
    "050000002d202a2e6f070000002d72206b656570100000003a202f2e7273796e632d66696c7465720f000000",
    "2d202e7273796e632d66696c746572060000002b207375622f070000002d2f202f616273080000002b722072",
    "69736b79070000003a6e2d202e657800000000",
];

/// Protocol 28 push, raw at c2s@79: `--exclude='*.o' --include='sub/' --exclude='- dash'
/// --exclude='+ plus'`.
const P28: &[&str] =
    &["030000002a2e6f060000002b207375622f0400000064617368060000002b20706c757300000000"];

/// Protocol 28 push, raw at c2s@79: `--filter='P keep'` (the side cannot be said).
const P28_PROTECT: &[&str] = &["040000006b65657000000000"];

/// Protocol 32 push with `-C`, frame at c2s@122.
const CVS32: &[&str] = &[
    "0d0000003a43202e63767369676e6f7265060000002d7020524353070000002d702053434353060000002d70",
    "204356530a0000002d70204356532e61646d090000002d70205243534c4f470b0000002d70206376736c6f67",
    "2e2a070000002d702074616773070000002d7020544147530e0000002d70202e6d616b652e73746174650f00",
    "00002d70202e6e73655f646570696e666f050000002d70202a7e050000002d7020232a060000002d70202e23",
    "2a050000002d70202c2a060000002d70205f242a050000002d70202a24080000002d70202a2e6f6c64080000",
    "002d70202a2e62616b080000002d70202a2e42414b090000002d70202a2e6f726967080000002d70202a2e72",
    "656a090000002d70202e64656c2d2a060000002d70202a2e61080000002d70202a2e6f6c62060000002d7020",
    "2a2e6f080000002d70202a2e6f626a070000002d70202a2e736f080000002d70202a2e657865060000002d70",
    "202a2e5a080000002d70202a2e656c63070000002d70202a2e6c6e070000002d7020636f7265080000002d70",
    "202e73766e2f080000002d70202e6769742f070000002d70202e68672f080000002d70202e627a722f000000",
    "00",
];

/// Protocol 29 push with `-C`, raw at c2s@80: the CVS patterns are not perishable.
const CVS29: &[&str] = &[
    "0d0000003a43202e63767369676e6f7265050000002d20524353060000002d2053434353050000002d204356",
    "53090000002d204356532e61646d080000002d205243534c4f470a0000002d206376736c6f672e2a06000000",
    "2d2074616773060000002d20544147530d0000002d202e6d616b652e73746174650e0000002d202e6e73655f",
    "646570696e666f040000002d202a7e040000002d20232a050000002d202e232a040000002d202c2a05000000",
    "2d205f242a040000002d202a24070000002d202a2e6f6c64070000002d202a2e62616b070000002d202a2e42",
    "414b080000002d202a2e6f726967070000002d202a2e72656a080000002d202e64656c2d2a050000002d202a",
    "2e61070000002d202a2e6f6c62050000002d202a2e6f070000002d202a2e6f626a060000002d202a2e736f07",
    "0000002d202a2e657865050000002d202a2e5a070000002d202a2e656c63060000002d202a2e6c6e06000000",
    "2d20636f7265070000002d202e73766e2f070000002d202e6769742f060000002d202e68672f070000002d20",
    "2e627a722f00000000",
];

/// Protocol 32 pull, frame at c2s@119: `rsync -a -C --filter='H hid' --filter='S shown'
/// --filter='P prot' --exclude='both' rsync://localhost/m/ pulled/`.
const PULL32: &[&str] =
    &["060000002d7320686964080000002b732073686f776e060000002d20626f746800000000"];

fn rules_of(options: &[(&str, &str)]) -> Vec<FilterRule> {
    let mut out = Vec::new();
    for (kind, text) in options {
        let (t, x) = match *kind {
            "filter" => (RuleTemplate::EXCLUDE, XFlags::NONE),
            "exclude" => (RuleTemplate::EXCLUDE, XFlags::OLD_PREFIXES),
            "include" => (RuleTemplate::INCLUDE, XFlags::OLD_PREFIXES),
            _ => continue,
        };
        let rules = parse_rules(text.as_bytes(), &t, x).unwrap_or_default();
        // A `.` merge is read by the client; /dev/null adds nothing.
        out.extend(
            rules
                .into_iter()
                .filter(|r| !matches!(r.action, Action::Merge(_))),
        );
    }
    out
}

fn decoded(bytes: &[u8], protocol: i32) -> Vec<FilterRule> {
    match decode_filter_list(bytes, protocol) {
        Ok(Decoded::Done { value, used }) => {
            assert_eq!(used, bytes.len());
            value
        }
        other => panic!("decode failed: {other:?}"),
    }
}

fn encoded(
    rules: &[FilterRule],
    protocol: i32,
    for_receiver: bool,
) -> Result<Vec<u8>, FilterError> {
    let mut out = Vec::new();
    encode_filter_list(rules, protocol, for_receiver, &mut out).map(|()| out)
}

const P32_OPTIONS: &[(&str, &str)] = &[
    ("exclude", "*.o"),
    ("filter", "P keep"),
    ("filter", ": /.rsync-filter"), // -F
    ("filter", "- .rsync-filter"),  // the second -F
    ("include", "sub/"),
    ("filter", "-/ /abs"),
    ("filter", "+! nope"),
    ("filter", "R risky"),
    ("filter", ":n- .ex"),
    ("filter", "-p perish"),
    ("filter", "-x user.foo"),
    ("filter", "merge,e /dev/null"),
];

#[test]
fn stock_client_lists_decode_to_the_rules_it_was_given() {
    let want = rules_of(P32_OPTIONS);
    assert_eq!(decoded(&unhex(P32), 32), want);
    assert_eq!(decoded(&unhex(P32), 32)[1].action, Action::Protect);

    let p29: Vec<_> = want
        .iter()
        .filter(|r| {
            !(r.flags.negate || r.flags.perishable || r.flags.xattr || r.pattern == b"null")
        })
        .cloned()
        .collect();
    assert_eq!(decoded(&unhex(P29), 29), p29);

    let old = rules_of(&[
        ("exclude", "*.o"),
        ("include", "sub/"),
        ("exclude", "dash"),
        ("include", "plus"),
    ]);
    assert_eq!(decoded(&unhex(P28), 28), old);
    // `P keep` went out as a bare exclude, which is what the server sees.
    assert_eq!(
        decoded(&unhex(P28_PROTECT), 28),
        rules_of(&[("filter", "- keep")])
    );

    let mut cvs = rules_of(&[("filter", ":C")]);
    cvs.extend(cvs_rules(&rules_of(&[("filter", "-C")])[0], 32));
    assert_eq!(decoded(&unhex(CVS32), 32), cvs);
    assert_eq!(cvs.len(), 37);
    assert!(
        cvs[1..]
            .iter()
            .all(|r| r.flags.perishable && r.action == Action::Exclude)
    );

    let pull = rules_of(&[
        ("filter", "H hid"),
        ("filter", "S shown"),
        ("exclude", "both"),
    ]);
    assert_eq!(decoded(&unhex(PULL32), 32), pull);
}

#[test]
fn encoder_writes_what_a_stock_client_writes() {
    let p32 = rules_of(P32_OPTIONS);
    assert_eq!(encoded(&p32, 32, true), Ok(unhex(P32)));
    let p29 = rules_of(
        &P32_OPTIONS[..6]
            .iter()
            .chain(&P32_OPTIONS[7..9])
            .copied()
            .collect::<Vec<_>>(),
    );
    assert_eq!(encoded(&p29, 29, true), Ok(unhex(P29)));
    let p28 = rules_of(&[
        ("exclude", "*.o"),
        ("include", "sub/"),
        ("exclude", "- dash"),
        ("exclude", "+ plus"),
    ]);
    assert_eq!(encoded(&p28, 28, true), Ok(unhex(P28)));
    assert_eq!(
        encoded(&rules_of(&[("filter", "P keep")]), 28, true),
        Ok(unhex(P28_PROTECT))
    );

    // A pushing client adds ":C" and "-C" and sends "-C" as the patterns.
    let cvs = rules_of(&[("filter", ":C"), ("filter", "-C")]);
    assert_eq!(encoded(&cvs, 32, true), Ok(unhex(CVS32)));
    assert_eq!(encoded(&cvs, 29, true), Ok(unhex(CVS29)));

    // A pulling client keeps its receiver-only rules.
    let pull = rules_of(&[
        ("filter", "H hid"),
        ("filter", "S shown"),
        ("filter", "P prot"),
        ("exclude", "both"),
    ]);
    assert_eq!(encoded(&pull, 32, false), Ok(unhex(PULL32)));
}

#[test]
fn rules_too_modern_for_the_protocol_are_refused() {
    // Checked: `rsync -a --protocol=29 --delete --filter='-p keep' src/ rsync://…` ends
    // with "filter rules are too modern for remote rsync." (exit 2).
    let refused: &[(&str, i32)] = &[
        ("-p keep", 29),
        (": .f", 28),
        ("-/ x", 28),
        ("+! x", 28),
        ("-x a", 28),
    ];
    for (rule, protocol) in refused {
        let r = rules_of(&[("filter", rule)]);
        assert_eq!(
            encoded(&r, *protocol, true),
            Err(FilterError::TooModern),
            "{rule}"
        );
    }
    // A receiver sending a perishable rule to an old sender just drops the `p`.
    assert_eq!(
        encoded(&rules_of(&[("filter", "-p keep")]), 29, false),
        Ok(unhex(&["060000002d206b65657000000000"]))
    );
    let merge = rules_of(&[])
        .into_iter()
        .chain([FilterRule::new(Action::Merge(MergeLines::Prefixed), b"x")])
        .collect::<Vec<_>>();
    assert!(matches!(
        encoded(&merge, 32, true),
        Err(FilterError::UnexpandedMerge { .. })
    ));
}

#[test]
fn empty_lists_in_the_b_captures() {
    // b-f-pull-p32: frames from c2s@131, list at @135; b-g-push-delete: frames from
    // @131, list at @135; b-j-push-R-artuz-delete: frames from @153, list at @157.
    let cases: &[(&[u8], usize)] = &[
        (
            include_bytes!("../../../testdata/captures/b-f-pull-p32-c2s.bin"),
            131,
        ),
        (
            include_bytes!("../../../testdata/captures/b-g-push-delete-c2s.bin"),
            131,
        ),
        (
            include_bytes!("../../../testdata/captures/b-j-push-R-artuz-delete-c2s.bin"),
            153,
        ),
    ];
    for (stream, frame) in cases {
        let data = deframe(stream, *frame);
        assert_eq!(
            decode_filter_list(&data, 32),
            Ok(Decoded::Done {
                value: vec![],
                used: 4
            })
        );
    }
}

#[test]
fn partial_input_asks_for_more() {
    let bytes = unhex(P32);
    for cut in 0..bytes.len() {
        match decode_filter_list(&bytes[..cut], 32) {
            Ok(Decoded::Needed(n)) => assert!(n > 0 && cut + n <= bytes.len(), "cut {cut}"),
            other => panic!("cut {cut}: {other:?}"),
        }
    }
}

#[test]
fn bounds_and_clears() {
    let too_long = (MAX_WIRE_RULE_LEN as i32 + 1).to_le_bytes();
    assert!(matches!(
        decode_filter_list(&too_long, 32),
        Err(FilterError::Wire(_))
    ));
    assert!(matches!(
        decode_filter_list(&(-1i32).to_le_bytes(), 32),
        Err(FilterError::Wire(_))
    ));
    // A "!" from the peer empties the list so far.
    let list = unhex(&["030000002d2061010000002100000000"]);
    assert_eq!(
        decode_filter_list(&list, 32),
        Ok(Decoded::Done {
            value: vec![],
            used: 16
        })
    );
    // More rules than MAX_WIRE_RULES, or more bytes than MAX_WIRE_LIST_BYTES, are refused
    // while they arrive, before the end of the list.
    let mut many = Vec::new();
    for _ in 0..=MAX_WIRE_RULES {
        many.extend_from_slice(&[3, 0, 0, 0, b'-', b' ', b'a']);
    }
    let mut big = Vec::new();
    while big.len() <= MAX_WIRE_LIST_BYTES {
        big.extend_from_slice(&(MAX_WIRE_RULE_LEN as i32).to_le_bytes());
        big.extend_from_slice(b"- ");
        big.resize(big.len() + MAX_WIRE_RULE_LEN - 2, b'a');
    }
    for (list, what) in [(&many, "filter rule count"), (&big, "filter list")] {
        for got in [decode_filter_list(list, 32), stepped(list, 32)] {
            assert!(
                matches!(&got, Err(FilterError::Wire(WireError::TooLarge { what: w, .. })) if *w == what),
                "{what}: {got:?}"
            );
        }
    }
    let bad = unhex(&["040000002d71206100000000"]);
    assert_eq!(
        decode_filter_list(&bad, 32).map_err(|e| e.to_string()),
        Err("invalid modifier 'q' at position 1 in filter rule: -q a".into())
    );
}

/// Found by the filter_list fuzz target: a rule that does not parse ("-r" with no
/// pattern) before a length over the bound. Upstream parses each rule as it reads it, so
/// the parse error is the one reported; the whole-list decoder used to report the bound
/// found by its walk.
#[test]
fn a_bad_rule_before_a_bound_error_is_the_error() {
    let list: &[u8] = &[
        5, 0, 0, 0, 45, 32, 42, 46, 111, 7, 0, 0, 0, 45, 114, 0, 0, 45, 114, 32, 107, 101, 101,
        112, 16, 0, 0, 0, 58, 32, 47, 46, 114, 115, 121, 110, 99, 45, 102, 105, 108, 116, 101, 114,
        15, 0, 0, 0, 45, 32, 46, 114, 115, 121, 110, 99, 45, 102, 105, 108, 116, 101, 114, 6, 0, 0,
        0, 43, 32, 115, 117, 98, 47, 7, 0, 0, 0, 45, 47, 32, 47, 97, 98, 115, 43, 114, 32, 114,
        105, 115, 107, 121, 7, 0, 0, 0, 58, 110, 45, 32, 46, 101, 120, 0, 0, 0, 0,
    ];
    let want = Err(FilterError::UnexpectedEnd {
        rule: "-r".to_string(),
    });
    assert_eq!(decode_filter_list(list, 29), want);
    assert_eq!(stepped(list, 29), want);
    // With the bad rule dropped, the bound error stands.
    let mut rest = list[..5 + 4].to_vec();
    rest.extend_from_slice(&list[5 + 4 + 11..]);
    assert!(matches!(
        decode_filter_list(&rest, 29),
        Err(FilterError::Wire(WireError::TooLarge { .. }))
    ));
}

/// Rules that survive a trip through the wire at `protocol`: what the parser can
/// produce, minus `e` (consumed when parsed) and what the protocol cannot say.
fn wire_rule(protocol: i32) -> impl Strategy<Value = FilterRule> {
    let pattern = proptest::collection::vec(
        prop_oneof![
            Just(b'a'),
            Just(b'/'),
            Just(b'*'),
            Just(b' '),
            Just(b'-'),
            Just(b'+'),
            Just(b'!'),
            Just(b'_'),
            any::<u8>().prop_filter("no NUL", |b| *b != 0)
        ],
        1..12,
    );
    let kind = 0u8..9;
    (pattern, kind, any::<[bool; 8]>()).prop_filter_map("valid", move |(pat, kind, b)| {
        // Before 29 only plain includes and excludes can be said at all.
        let (kind, b) = if protocol < 29 {
            (kind % 2, [false; 8])
        } else {
            (kind, b)
        };
        let text = match kind {
            0..=5 => {
                let prefix = ["+", "-", "H", "S", "P", "R"][kind as usize];
                let mods: String = [(b[0], '/'), (b[1], '!'), (b[2], 'p'), (b[3], 'x')]
                    .iter()
                    .filter(|(on, _)| *on)
                    .map(|(_, c)| *c)
                    .collect();
                let mut t = format!("{prefix}{mods} ").into_bytes();
                t.extend_from_slice(&pat);
                t
            }
            6 => b"-C".to_vec(),
            _ => {
                let mods: String = [
                    (b[4], 'n'),
                    (b[5], 'w'),
                    (b[6], '-'),
                    (b[2], 'p'),
                    (b[7], 's'),
                ]
                .iter()
                .filter(|(on, _)| *on)
                .map(|(_, c)| *c)
                .collect();
                let mut t = format!(":{mods} ").into_bytes();
                t.extend_from_slice(&pat);
                t
            }
        };
        let mut rules = parse_rules(&text, &RuleTemplate::EXCLUDE, XFlags::NONE).ok()?;
        let rule = rules.pop()?;
        let expressible = rule_prefix(&rule, protocol, true).is_some();
        // Before 29 a side cannot be said (the rule goes as a plain one) and a bare
        // exclude of "!" reads back as a clear, as with upstream.
        let old_ok = protocol >= 29
            || (!rule.flags.sender_side && !rule.flags.receiver_side && rule.pattern != b"!");
        (rules.is_empty() && expressible && old_ok && !rule.is_cvs_list()).then_some(rule)
    })
}

/// Runs the rule-at-a-time decoder over `bytes` as a reader does.
fn stepped(bytes: &[u8], protocol: i32) -> Result<Decoded<Vec<FilterRule>>, FilterError> {
    let mut dec = FilterListDecoder::new(protocol);
    let mut pos = 0;
    loop {
        match dec.decode(&bytes[pos..])? {
            Decoded::Done {
                value: Some(rules),
                used,
            } => {
                return Ok(Decoded::Done {
                    value: rules,
                    used: pos + used,
                });
            }
            Decoded::Done { value: None, used } => pos += used,
            Decoded::Needed(n) => return Ok(Decoded::Needed(n)),
        }
    }
}

/// Length-prefixed rule texts, some of them prefix soup, some empty, sometimes ended.
fn arb_list_bytes() -> impl Strategy<Value = Vec<u8>> {
    let text = prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..40),
        "[-+:.!PRHSC/,_ a-z*]{0,30}".prop_map(String::into_bytes),
    ];
    (proptest::collection::vec(text, 0..8), any::<bool>()).prop_map(|(texts, ended)| {
        let mut out = Vec::new();
        for t in texts.iter().filter(|t| !t.is_empty()) {
            out.extend_from_slice(&(t.len() as i32).to_le_bytes());
            out.extend_from_slice(t);
        }
        if ended {
            out.extend_from_slice(&[0; 4]);
        }
        out
    })
}

proptest! {
    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256), p in 26i32..=32) {
        let _ = decode_filter_list(&bytes, p);
        let _ = stepped(&bytes, p);
    }

    #[test]
    fn stepped_decoder_agrees(bytes in arb_list_bytes(), p in 26i32..=32) {
        // Once the list is complete both give the same rules or the same error; before,
        // both wait (the whole-list decoder does not parse until the end is there).
        let whole = decode_filter_list(&bytes, p);
        match (whole, stepped(&bytes, p)) {
            (Ok(Decoded::Needed(_)), Ok(Decoded::Needed(_)) | Err(_)) => {}
            (whole, step) => prop_assert_eq!(whole, step),
        }
    }

    #[test]
    fn decode_of_encode_is_identity(
        rules in proptest::collection::vec(wire_rule(32), 0..8),
        for_receiver in any::<bool>(),
    ) {
        // Rules for our side only stay here, so compare with what is sent.
        let sent: Vec<_> = rules.iter().filter(|r| {
            let (s, r) = (r.flags.sender_side, r.flags.receiver_side);
            !(s != r && s == for_receiver)
        }).cloned().collect();
        let mut out = Vec::new();
        prop_assert!(encode_filter_list(&rules, 32, for_receiver, &mut out).is_ok());
        prop_assert_eq!(decode_filter_list(&out, 32), Ok(Decoded::Done { value: sent, used: out.len() }));
    }

    #[test]
    fn old_protocol_round_trip(rules in proptest::collection::vec(wire_rule(28), 0..8)) {
        let mut out = Vec::new();
        prop_assert!(encode_filter_list(&rules, 28, true, &mut out).is_ok());
        prop_assert_eq!(decode_filter_list(&out, 28), Ok(Decoded::Done { value: rules, used: out.len() }));
    }

    #[test]
    fn split_input_gives_the_same_result(cut in 0usize..200) {
        let bytes = unhex(P32);
        let whole = decode_filter_list(&bytes, 32);
        let cut = cut.min(bytes.len());
        if let Ok(Decoded::Needed(n)) = decode_filter_list(&bytes[..cut], 32) {
            prop_assert!(cut + n <= bytes.len());
        }
        prop_assert_eq!(decode_filter_list(&bytes, 32), whole);
    }
}

#[test]
fn when_the_list_is_sent_and_server_cvs_rules() {
    // (server sends, prune, delete, delete-excluded, protocol)
    assert!(filter_list_expected(true, false, false, false, 32));
    assert!(!filter_list_expected(false, false, false, false, 32)); // b-a-push-p32
    assert!(filter_list_expected(false, false, true, false, 32)); // b-g-push-delete
    assert!(filter_list_expected(false, true, false, false, 27));
    assert!(filter_list_expected(false, false, true, true, 29));
    assert!(!filter_list_expected(false, false, true, true, 28));

    let names = |v: Vec<FilterRule>| {
        v.iter()
            .map(|r| (r.action, r.pattern.clone()))
            .collect::<Vec<_>>()
    };
    let dir = (
        Action::DirMerge(MergeLines::Excludes),
        b".cvsignore".to_vec(),
    );
    let list = (Action::Exclude, Vec::new());
    assert_eq!(names(server_cvs_rules(true, 32)), [dir.clone(), list]);
    assert_eq!(names(server_cvs_rules(false, 32)), []);
    assert_eq!(names(server_cvs_rules(false, 28)), [dir]);
}
