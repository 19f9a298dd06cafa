//! Rule syntax against upstream's parse_rule_tok()/parse_filter_str() behaviour. Where a
//! case is not spelt out in rsync.1.md it was checked against rsync 3.5.0, e.g.
//! `rsync -n -r --debug=FILTER2 --filter='RULE' src/ dst/`, which prints each
//! `add_rule(...)` with the prefix upstream stores.

use super::parse::BIGPATHBUFLEN;
use super::*;
use proptest::prelude::*;

/// A rule as `Action[modifiers] pattern`, the modifiers as upstream's letters plus `D`
/// for a trailing slash.
fn describe(rule: &FilterRule) -> String {
    let f = &rule.flags;
    let letters: String = [
        (f.abs_path, '/'),
        (f.negate, '!'),
        (f.cvs, 'C'),
        (f.no_inherit, 'n'),
        (f.word_split, 'w'),
        (f.exclude_self, 'e'),
        (f.xattr, 'x'),
        (f.sender_side, 's'),
        (f.receiver_side, 'r'),
        (f.perishable, 'p'),
        (f.dir_only, 'D'),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, c)| *c)
    .collect();
    let mods = if letters.is_empty() {
        String::new()
    } else {
        format!("[{letters}]")
    };
    format!(
        "{:?}{mods} {}",
        rule.action,
        String::from_utf8_lossy(&rule.pattern)
    )
}

fn parsed(text: &str, template: &RuleTemplate, xflags: XFlags) -> Vec<String> {
    match parse_rules(text.as_bytes(), template, xflags) {
        Ok(rules) => rules.iter().map(describe).collect(),
        Err(e) => vec![format!("error: {e}")],
    }
}

#[test]
fn filter_option_syntax() {
    let cases: &[(&str, &[&str])] = &[
        ("- *.o", &["Exclude *.o"]),
        ("+ sub/", &["Include[D] sub"]),
        ("+ a//", &["Include[D] a/"]),
        ("- /", &["Exclude /"]),
        ("-_foo", &["Exclude foo"]),
        ("- foo bar", &["Exclude foo bar"]),
        ("-  foo", &["Exclude  foo"]),
        ("exclude foo", &["Exclude foo"]),
        ("exclude_foo", &["Exclude foo"]),
        ("include foo", &["Include foo"]),
        ("hide foo", &["Hide[s] foo"]),
        ("show foo", &["Show[s] foo"]),
        ("protect foo", &["Protect[r] foo"]),
        ("risk foo", &["Risk[r] foo"]),
        ("H foo", &["Hide[s] foo"]),
        ("S foo", &["Show[s] foo"]),
        ("P foo", &["Protect[r] foo"]),
        ("R foo", &["Risk[r] foo"]),
        ("-s foo", &["Hide[s] foo"]),
        ("+r foo", &["Risk[r] foo"]),
        ("-sr foo", &["Exclude[sr] foo"]),
        ("P,/ x", &["Protect[/r] x"]),
        ("exclude,/ foo", &["Exclude[/] foo"]),
        ("-,!/ x", &["Exclude[/!] x"]),
        ("-/ /abs", &["Exclude[/] /abs"]),
        ("+! nope", &["Include[!] nope"]),
        ("-p perish", &["Exclude[p] perish"]),
        ("-x user.foo", &["Exclude[x] user.foo"]),
        ("merge /etc/rules", &["Merge(Prefixed) /etc/rules"]),
        (". /etc/rules", &["Merge(Prefixed) /etc/rules"]),
        (".+ list", &["Merge(Includes) list"]),
        ("dir-merge .rules", &["DirMerge(Prefixed) .rules"]),
        ("dir-merge,- .ex", &["DirMerge(Excludes) .ex"]),
        (":n- .ex", &["DirMerge(Excludes)[n] .ex"]),
        (":w .f", &["DirMerge(Prefixed)[w] .f"]),
        (":C", &["DirMerge(Excludes)[Cnw] .cvsignore"]),
        (": /.rsync-filter", &["DirMerge(Prefixed) /.rsync-filter"]),
        // `e` adds the exclude of the file's own name first and is then dropped.
        (
            ":e .rules",
            &["Exclude .rules", "DirMerge(Prefixed) .rules"],
        ),
        ("merge,e sub/.x", &["Exclude .x", "Merge(Prefixed) sub/.x"]),
        ("-C", &["Exclude[Cnw] "]),
        ("clear", &["Clear "]),
        ("!", &["Clear "]),
        ("!,", &["Clear "]),
    ];
    for (text, want) in cases {
        assert_eq!(
            parsed(text, &RuleTemplate::EXCLUDE, XFlags::NONE),
            *want,
            "rule {text:?}"
        );
    }
}

#[test]
fn errors_carry_upstream_texts() {
    let cases: &[(&str, &str)] = &[
        ("foo", "Unknown filter rule: foo"),
        ("cat x", "Unknown filter rule: cat x"),
        ("excludes x", "Unknown filter rule: excludes x"),
        ("- ", "unexpected end of filter rule: - "),
        ("+", "unexpected end of filter rule: +"),
        (
            "-q foo",
            "invalid modifier 'q' at position 1 in filter rule: -q foo",
        ),
        (
            "P/s foo",
            "invalid modifier 's' at position 2 in filter rule: P/s foo",
        ),
        (
            "-e foo",
            "invalid modifier 'e' at position 1 in filter rule: -e foo",
        ),
        (
            "-n foo",
            "invalid modifier 'n' at position 1 in filter rule: -n foo",
        ),
        (
            "-w foo",
            "invalid modifier 'w' at position 1 in filter rule: -w foo",
        ),
        (
            ".! x",
            "invalid modifier '!' at position 1 in filter rule: .! x",
        ),
        (
            ":+- x",
            "invalid modifier '-' at position 2 in filter rule: :+- x",
        ),
        (
            "-+ x",
            "invalid modifier '+' at position 1 in filter rule: -+ x",
        ),
        (
            "HC foo",
            "invalid modifier 'C' at position 1 in filter rule: HC foo",
        ),
        (
            ":C- x",
            "invalid modifier '-' at position 2 in filter rule: :C- x",
        ),
        ("! x", "'!' rule has trailing characters: ! x"),
        ("clear x", "'!' rule has trailing characters: clear x"),
    ];
    for (text, want) in cases {
        assert_eq!(
            parsed(text, &RuleTemplate::EXCLUDE, XFlags::NONE),
            vec![format!("error: {want}")],
            "rule {text:?}"
        );
    }
    let e = parse_rules(b"-q foo", &RuleTemplate::EXCLUDE, XFlags::NONE);
    assert!(e.as_ref().is_err_and(FilterError::is_syntax));
    let hidden = e.map_err(|e| e.from_file("/m/.rsync-filter line 3").to_string());
    assert_eq!(
        hidden,
        Err("invalid modifier in filter rule: <rule from /m/.rsync-filter line 3>".to_string())
    );
}

#[test]
fn old_prefixes_before_protocol_29_and_for_include_exclude_options() {
    let ex = &RuleTemplate::EXCLUDE;
    let inc = &RuleTemplate::INCLUDE;
    let old = XFlags::OLD_PREFIXES;
    let cases: &[(&RuleTemplate, &str, &[&str])] = &[
        (ex, "*.o", &["Exclude *.o"]),
        (ex, "+ sub/", &["Include[D] sub"]),
        (ex, "- dash", &["Exclude dash"]),
        (ex, "- - dash", &["Exclude - dash"]),
        (ex, "-foo", &["Exclude -foo"]),
        (ex, "P foo", &["Exclude P foo"]),
        (ex, "!", &["Clear "]),
        (ex, "!x", &["Exclude !x"]),
        (ex, "+ ", &["error: unexpected end of filter rule: + "]),
        (inc, "foo", &["Include foo"]),
        (inc, "- foo", &["Exclude foo"]),
        (inc, "foo bar", &["Include foo bar"]),
    ];
    for (template, text, want) in cases {
        assert_eq!(parsed(text, template, old), *want, "rule {text:?}");
    }
}

#[test]
fn delete_excluded_makes_plain_rules_sender_side() {
    let x = XFlags {
        delete_excluded: true,
        ..XFlags::NONE
    };
    let t = &RuleTemplate::EXCLUDE;
    assert_eq!(parsed("- foo", t, x), ["Hide[s] foo"]);
    assert_eq!(parsed("+ foo", t, x), ["Show[s] foo"]);
    assert_eq!(parsed("P foo", t, x), ["Protect[r] foo"]);
    assert_eq!(parsed(": .f", t, x), ["DirMerge(Prefixed) .f"]);
}

#[test]
fn daemon_parameters() {
    let d = |p: DaemonParam, text: &str| match parse_daemon_param(p, text.as_bytes()) {
        Ok(rules) => rules.iter().map(describe).collect::<Vec<_>>(),
        Err(e) => vec![format!("error: {e}")],
    };
    use DaemonParam::*;
    let cases: &[(DaemonParam, &str, &[&str])] = &[
        // rsyncd.conf.5: "- /foo  - /bar" is two rules.
        (
            Filter,
            "- /foo  - /bar",
            &["Exclude[/] /foo", "Exclude[/] /bar"],
        ),
        // A slash anywhere makes the rule module-relative, but a pattern without a
        // leading one still matches trailing components (see matcher_tests).
        (Filter, "- a/b", &["Exclude[/] a/b"]),
        // Dir excludes get "/***"; dir includes stay dir-only.
        (
            Filter,
            "- secret/ + keep/",
            &["Exclude secret/***", "Include[D] keep"],
        ),
        (Filter, "- /priv/", &["Exclude[/] /priv/***"]),
        // Parsed before the daemon knows its role, so sender-only rules are dropped:
        // checked with a 3.5.0 daemon, `filter = H secret P foo` still lists `secret` in
        // a pull and refuses a pushed `foo` ("daemon refused to receive file").
        (Filter, "H secret P foo", &["Protect[r] foo"]),
        (
            Filter,
            "-\tfoo",
            &["error: unexpected end of filter rule: -\tfoo"],
        ),
        (Exclude, "*.o *.tmp", &["Exclude *.o", "Exclude *.tmp"]),
        (Exclude, "- foo + bar", &["Exclude foo", "Include bar"]),
        (Exclude, "!", &["Clear "]),
        (Include, "a b/", &["Include a", "Include[D] b"]),
        (IncludeFrom, "x y", &["Include x y"]),
        (ExcludeFrom, "- /a/", &["Exclude[/] /a/***"]),
    ];
    for (param, text, want) in cases {
        assert_eq!(d(*param, text), *want, "{param:?} {text:?}");
    }
}

#[test]
fn per_directory_rules_anchor_at_their_directory() {
    let x = XFlags {
        anchored2abs: true,
        ..XFlags::NONE
    };
    let t = &RuleTemplate::EXCLUDE;
    let at = |text: &str, dir: &str| {
        parse_rules_in_dir(text.as_bytes(), t, x, dir.as_bytes())
            .map(|r| r.iter().map(describe).collect::<Vec<_>>())
            .unwrap_or_default()
    };
    assert_eq!(at("- /foo", "a/sub"), ["Exclude[/] /a/sub/foo"]);
    assert_eq!(at("- /foo", ""), ["Exclude[/] /foo"]);
    assert_eq!(at("- foo/bar", "a"), ["Exclude foo/bar"]);
    assert_eq!(at("-/ /foo", "a"), ["Exclude[/] /foo"]);
    // The receiver keeps its own side's rules and drops the sender's.
    assert_eq!(at("H x", "a"), Vec::<String>::new());
    assert_eq!(at("P x", "a"), ["Protect[r] x"]);
    let sender = XFlags {
        am_sender: true,
        ..x
    };
    let r = parse_rules_in_dir(b"P x", t, sender, b"").unwrap_or_default();
    assert!(r.is_empty());
}

#[test]
fn merge_file_templates() {
    let t = |rule: &str| {
        let r = parse_rules(rule.as_bytes(), &RuleTemplate::EXCLUDE, XFlags::NONE);
        let r = r
            .ok()
            .and_then(|mut v| v.pop())
            .unwrap_or_else(|| FilterRule::new(Action::Clear, b""));
        RuleTemplate::from_merge_rule(&r)
    };
    let x = XFlags::NONE;
    assert_eq!(parsed("foo", &t(":+ .f"), x), ["Include foo"]);
    assert_eq!(parsed("- foo", &t(":- .f"), x), ["Exclude - foo"]);
    assert_eq!(
        parsed("a  b\tc", &t(":C"), x),
        ["Exclude a", "Exclude b", "Exclude c"]
    );
    assert_eq!(parsed("!", &t(":C"), x), ["Clear "]);
    assert_eq!(parsed("!x", &t(":C"), x), ["Exclude !x"]);
    assert_eq!(
        parsed("- x + y", &t(":w .f"), x),
        ["Exclude x", "Include y"]
    );
    assert_eq!(parsed("- x", &t(":/ .f"), x), ["Exclude[/] x"]);
    assert_eq!(parsed("- x", &t(":p .f"), x), ["Exclude[p] x"]);
    assert_eq!(parsed("- x", &t(":s .f"), x), ["Hide[s] x"]);
    assert_eq!(
        parsed("P x", &t(":s .f"), x),
        ["error: specified-side merge file contains specified-side filter: P x"]
    );
}

#[test]
fn rule_files_split_into_lines_or_words() {
    let lines = |c: &[u8], w: bool, z: bool| {
        split_rule_file(c, w, z)
            .into_iter()
            .map(|(n, l)| (n, String::from_utf8_lossy(l).into_owned()))
            .collect::<Vec<_>>()
    };
    let s = |n: u32, t: &str| (n, t.to_string());
    assert_eq!(
        lines(b"a\r\nb\rc\n\n#x\n;y\nd", false, false),
        [s(1, "a"), s(2, "b"), s(3, "c"), s(7, "d")]
    );
    assert_eq!(
        lines(b"a b\tc\n #d", true, false),
        [s(0, "a"), s(0, "b"), s(0, "c"), s(0, "#d")]
    );
    assert_eq!(lines(b"a\0b\nc\0", false, true), [s(1, "a"), s(2, "b\nc")]);
    let long = [b'x'; BIGPATHBUFLEN];
    assert!(lines(&long, false, false).is_empty());
    assert_eq!(lines(&long[1..], false, false).len(), 1);

    let r = parse_rule_file(
        b"- a\n# c\n+ b/\n",
        &RuleTemplate::EXCLUDE,
        XFlags::NONE,
        b"",
        false,
        "f",
    );
    assert_eq!(
        r.map(|v| v.iter().map(describe).collect::<Vec<_>>()),
        Ok(vec!["Exclude a".into(), "Include[D] b".into()])
    );
    let r = parse_rule_file(
        b"- a\nsecret text\n",
        &RuleTemplate::EXCLUDE,
        XFlags::NONE,
        b"",
        false,
        "m/.f",
    );
    assert_eq!(
        r.map_err(|e| e.to_string()),
        Err("Unknown filter rule: <rule from m/.f line 2>".into())
    );
}

#[test]
fn over_long_patterns_are_discarded() {
    let mut text = b"- ".to_vec();
    text.extend_from_slice(&[b'a'; MAXPATHLEN]);
    assert_eq!(
        parse_rules(&text, &RuleTemplate::EXCLUDE, XFlags::NONE),
        Ok(vec![])
    );
    text.pop();
    assert_eq!(
        parse_rules(&text, &RuleTemplate::EXCLUDE, XFlags::NONE).map(|v| v.len()),
        Ok(1)
    );
    // Text ends at a NUL, as the C string upstream parses.
    assert_eq!(
        parsed("- a\0b", &RuleTemplate::EXCLUDE, XFlags::NONE),
        ["Exclude a"]
    );
}

proptest! {
    #[test]
    fn parse_rules_never_panics(
        text in proptest::collection::vec(any::<u8>(), 0..64),
        split in any::<bool>(),
        old in any::<bool>(),
        inc in any::<bool>(),
        daemon in any::<bool>(),
    ) {
        let mut t = if inc { RuleTemplate::INCLUDE } else { RuleTemplate::EXCLUDE };
        t.flags.word_split = split;
        let x = XFlags { old_prefixes: old, abs_if_slash: daemon, dir2wild3: daemon, ..XFlags::NONE };
        let _ = parse_rules(&text, &t, x);
        let _ = parse_rules_in_dir(&text, &t, XFlags { anchored2abs: true, ..x }, b"a/b");
        let _ = split_rule_file(&text, split, old);
    }

    #[test]
    fn prefixed_text_never_panics(
        prefix in "[-+.:!HSPRchdeimprsx]{1,2}[,/!Cenpwrsx+-]{0,4}[ _]?",
        rest in "[ -~]{0,12}",
    ) {
        let text = format!("{prefix}{rest}");
        let _ = parse_rules(text.as_bytes(), &RuleTemplate::EXCLUDE, XFlags::NONE);
        let _ = parse_rules(text.as_bytes(), &RuleTemplate::EXCLUDE.word_split(), XFlags::NONE);
    }
}
