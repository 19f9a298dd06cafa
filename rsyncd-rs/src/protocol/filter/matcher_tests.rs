//! Matching semantics, checked case by case against rsync 3.5.0 on a scratch tree:
//!
//! ```text
//! mkdir -p s/DIRS d; touch s/PATH            # or mkdir -p s/PATH for a directory
//! rsync -n -r --debug=FILTER --filter='RULE'... s/ d/
//! ```
//!
//! and reading `showing|hiding file|directory PATH because of pattern ...` (no line =
//! no rule matched). Where upstream would never reach a path because a parent is
//! excluded, an anchored include of the parent was put first to reach it (noted).

use super::*;

/// First-match over compiled rules, as upstream's check_filter() over a flat list:
/// `'I'` include, `'E'` exclude, `'-'` no rule matched.
fn first_match(rules: &[&str], path: &str, kind: NameKind, abs_prefix: &str) -> char {
    for text in rules {
        let parsed = parse_rules(text.as_bytes(), &RuleTemplate::EXCLUDE, XFlags::NONE);
        for rule in parsed.unwrap_or_default() {
            let c = CompiledRule::new(&rule);
            if c.matches(path.as_bytes(), kind, abs_prefix.as_bytes()) {
                return if c.is_include() { 'I' } else { 'E' };
            }
        }
    }
    '-'
}

const F: NameKind = NameKind::File;
const D: NameKind = NameKind::Dir;

#[test]
fn matches_like_upstream() {
    let cases: &[(&[&str], &str, NameKind, char)] = &[
        // No slash: the last component only.
        (&["- *.o"], "a.o", F, 'E'),
        (&["- *.o"], "sub/a.o", F, 'E'),
        (&["- *.o"], "a.c", F, '-'),
        (&["- *.o"], "x.o", D, 'E'),
        (&["- foo"], "foo", F, 'E'),
        (&["- foo"], "a/foo", F, 'E'),
        (&["- foo"], "afoo", F, '-'),
        (&["- FOO"], "foo", F, '-'),
        // A leading slash anchors at the transfer root.
        (&["- /foo"], "foo", F, 'E'),
        (&["- /foo"], "a/foo", F, '-'),
        (&["- /a/b"], "a/b", F, 'E'),
        (&["- /a/b"], "x/a/b", F, '-'),
        // A trailing slash matches directories only.
        (&["- foo/"], "foo", D, 'E'),
        (&["- foo/"], "foo", F, '-'),
        // An inner slash: the last slash-count-plus-one components.
        (&["- foo/bar"], "foo/bar", F, 'E'),
        (&["- foo/bar"], "x/foo/bar", F, 'E'),
        (&["- foo/bar"], "xfoo/bar", F, '-'),
        (&["- foo/bar"], "bar", F, '-'),
        (&["- a/b"], "x/a/b", F, 'E'),
        (&["- a/b"], "xa/b", F, '-'),
        (&["- a/b/c"], "a/b/c", F, 'E'),
        (&["- a/b/c"], "b/c", F, '-'),
        (&["- foo/*/bar"], "foo/x/bar", F, 'E'),
        (&["- foo/*/bar"], "a/foo/x/bar", F, 'E'),
        (&["- foo/*/bar"], "foo/x/y/bar", F, '-'),
        (&["- x/*.o"], "z/x/y.o", F, 'E'),
        // "**" crosses slashes; rsync.1.md: /foo/**/bar does not match /foo/bar.
        (&["- /foo/**/bar"], "foo/x/bar", F, 'E'),
        (&["- /foo/**/bar"], "foo/x/y/bar", F, 'E'),
        (&["- /foo/**/bar"], "foo/bar", F, '-'),
        (&["- /foo/**/bar"], "a/foo/x/bar", F, '-'),
        (&["- /a/*"], "a/x", F, 'E'),
        (&["+ /a/x/", "- /a/*"], "a/x/y", F, '-'),
        // A "**" not at the start may match after any slash.
        (&["+ /a/x/", "- a/**"], "a/x/y", F, 'E'),
        (&["- a/**"], "b/a/x", F, 'E'),
        (&["- a/**"], "a", D, '-'),
        (&["- a**"], "xa", F, '-'),
        (&["+ /b/ab/", "- a**"], "b/ab/c", F, 'E'),
        // A leading "**" may match from the start.
        (&["- **/foo"], "foo", F, 'E'),
        (&["- **/foo"], "a/b/foo", F, 'E'),
        (&["- **/foo"], "afoo", F, '-'),
        (&["- **foo"], "xfoo", F, 'E'),
        (&["- **foo"], "a/foo", F, 'E'),
        (&["- ***"], "x", F, 'E'),
        // A trailing "***" matches the directory and everything under it.
        (&["- dn/***"], "dn", D, 'E'),
        (&["- dn/***"], "dn", F, '-'),
        (&["+ /dn/", "- dn/***"], "dn/x", F, 'E'),
        (&["+ /dn/", "+ /dn/x/", "- dn/***"], "dn/x/y", F, 'E'),
        (&["- foo/**/"], "foo/x", D, 'E'),
        (&["- foo/**/"], "foo/x", F, '-'),
        // First match wins.
        (&["+ */", "+ *.c", "- *"], "a", D, 'I'),
        (&["+ */", "+ *.c", "- *"], "a/b.c", F, 'I'),
        (&["+ */", "+ *.c", "- *"], "a/b.h", F, 'E'),
        // Negation, including a dir-only rule against a non-directory.
        (&["-! */"], "a", F, 'E'),
        (&["-! */"], "a", D, '-'),
        (&["+! nope"], "x", F, 'I'),
        (&["+! nope"], "nope", F, '-'),
        (&["+ /a/", "+ /a/b/", "-! /a/*"], "a/b/c", F, 'E'),
        // Backslash escapes only where there is a wildcard.
        (&["- foo\\bar"], "foo\\bar", F, 'E'),
        (&["- foo\\*"], "foo*", F, 'E'),
        (&["- foo\\*"], "foox", F, '-'),
        (&["- [ab].o"], "a.o", F, 'E'),
        (&["- [ab].o"], "c.o", F, '-'),
        (&["- a?c"], "abc", F, 'E'),
        (&["- a?c"], "a/c", F, '-'),
    ];
    for (rules, path, kind, want) in cases {
        assert_eq!(
            first_match(rules, path, *kind, ""),
            *want,
            "{rules:?} {path} {kind:?}"
        );
    }
}

#[test]
fn xattr_rules_match_only_xattr_names() {
    assert_eq!(first_match(&["-x user.*"], "user.foo", F, ""), '-');
    assert_eq!(
        first_match(&["-x user.*"], "user.foo", NameKind::Xattr, ""),
        'E'
    );
    assert_eq!(
        first_match(&["- user.*"], "user.foo", NameKind::Xattr, ""),
        '-'
    );
}

#[test]
fn absolute_path_rules_see_the_path_from_the_module_root() {
    // `-/` rules (and the daemon's rules with a slash) get the transfer root's path
    // from the module root put in front of the name.
    assert_eq!(first_match(&["-/ /a/*"], "a/x", F, ""), 'E');
    assert_eq!(first_match(&["-/ /a/*"], "x", F, "a"), 'E');
    assert_eq!(first_match(&["-/ /a/*"], "x", F, "root"), '-');
    assert_eq!(first_match(&["-/ /a/*"], "a/x", F, "root"), '-');
    // Without a slash the rule still sees the last component only.
    assert_eq!(first_match(&["-/ x"], "x", F, "root"), 'E');
    // A name that starts with "/" is taken as already absolute.
    assert_eq!(first_match(&["-/ /a/*"], "/a/x", F, "root"), 'E');

    // The daemon's `exclude = a/b`: module-relative but not anchored, so checked with
    // a 3.5.0 daemon it also hides x/a/b.
    let daemon = |path: &str, prefix: &str| {
        let rules =
            parse_daemon_param(DaemonParam::Exclude, b"a/b /top secret/").unwrap_or_default();
        rules
            .iter()
            .map(CompiledRule::new)
            .find(|c| c.matches(path.as_bytes(), F, prefix.as_bytes()))
            .map(|c| c.pattern().to_vec())
    };
    assert_eq!(daemon("a/b", ""), Some(b"a/b".to_vec()));
    assert_eq!(daemon("x/a/b", ""), Some(b"a/b".to_vec()));
    assert_eq!(daemon("a/b", "up"), Some(b"a/b".to_vec()));
    assert_eq!(daemon("top", ""), Some(b"/top".to_vec()));
    assert_eq!(daemon("top", "up"), None);
    assert_eq!(daemon("secret/x", "up"), Some(b"secret/***".to_vec()));
}

#[test]
fn empty_names_never_match() {
    assert_eq!(first_match(&["-! x"], "", F, ""), '-');
    assert_eq!(first_match(&["- *"], "/", F, ""), '-');
}
