//! Tests of `&include` and `&merge`, of files and of directories.

#![allow(clippy::unwrap_used)] // Tests may panic.

use std::path::Path;

use super::*;

fn try_load(
    text: &str,
    includes: &MemoryIncludes,
    dparams: &[&str],
) -> Result<DaemonConfig, ConfigErrors> {
    let dparams: Vec<String> = dparams.iter().map(|s| s.to_string()).collect();
    DaemonConfig::parse_with_env(
        text,
        Path::new("/etc/rsyncd.conf"),
        includes,
        &dparams,
        &|_| None,
    )
}

fn load(text: &str, includes: &MemoryIncludes) -> DaemonConfig {
    try_load(text, includes, &[]).unwrap()
}

fn timeout(cfg: &DaemonConfig, module: &str) -> i32 {
    cfg.module(module).unwrap().params.timeout
}

#[test]
fn an_included_file_starts_from_the_defaults_and_leaves_them_unchanged() {
    let inc = MemoryIncludes::new().with_file(
        "/etc/rsyncd.d/a.conf",
        "timeout = 2\nmotd file = /inc\n[a]\npath = /a\n",
    );
    let cfg = load(
        "timeout = 1\nlist = no\n&include /etc/rsyncd.d/a.conf\n[b]\n",
        &inc,
    );
    let a = &cfg.module("a").unwrap().params;
    assert_eq!((a.timeout, a.list), (2, false));
    assert_eq!(a.path.as_deref(), Some("/a"));
    assert_eq!(timeout(&cfg, "b"), 1);
    assert_eq!(cfg.defaults.timeout, 1);
    assert_eq!(cfg.global.motd_file, None);
    let a = cfg.module("a").unwrap();
    assert_eq!(a.location.path, Path::new("/etc/rsyncd.d/a.conf"));
    assert_eq!(a.location.line, 3);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

#[test]
fn a_merged_file_is_read_in_place() {
    let inc = MemoryIncludes::new()
        .with_file("/g.inc", "timeout = 2\nmotd file = /m\n")
        .with_file("/mod.inc", "read only = no\n");
    let cfg = load("&merge /g.inc\n[a]\n&merge = /mod.inc\n[b]\n", &inc);
    assert_eq!(cfg.global.motd_file.as_deref(), Some("/m"));
    assert_eq!(cfg.defaults.timeout, 2);
    let a = &cfg.module("a").unwrap().params;
    assert_eq!((a.timeout, a.read_only), (2, false));
    assert!(cfg.module("b").unwrap().params.read_only);
}

#[test]
fn a_directory_include_reads_its_conf_files_in_name_order_each_from_the_same_defaults() {
    let inc = MemoryIncludes::new()
        .with_file("/d/b.conf", "timeout = 3\n[b]\n")
        .with_file("/d/a.conf", "list = no\n[a]\n")
        .with_file("/d/c.conf", "[c]\n")
        .with_file("/d/skip.inc", "[never]\n")
        .with_file("/d/a.conf~", "[never2]\n")
        .with_file("/d/.conf", "[dot]\n");
    let cfg = load("timeout = 1\n&include /d\n[after]\n", &inc);
    let names: Vec<_> = cfg.modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["dot", "a", "b", "c", "after"]);
    assert!(!cfg.module("a").unwrap().params.list);
    assert!(cfg.module("b").unwrap().params.list);
    assert_eq!(timeout(&cfg, "b"), 3);
    assert_eq!(timeout(&cfg, "c"), 1);
    assert_eq!(timeout(&cfg, "after"), 1);
    assert!(cfg.module("after").unwrap().params.list);
}

#[test]
fn a_directory_merge_reads_its_inc_files_in_name_order_cumulatively() {
    let inc = MemoryIncludes::new()
        .with_file("/d/2.inc", "timeout = 2\n")
        .with_file("/d/1.inc", "timeout = 1\nlist = no\n")
        .with_file("/d/x.conf", "timeout = 99\n");
    let cfg = load("&merge /d\n[m]\n", &inc);
    assert_eq!(timeout(&cfg, "m"), 2);
    assert!(!cfg.module("m").unwrap().params.list);
}

#[test]
fn manual_example_merge_then_include_the_same_directory() {
    let inc = MemoryIncludes::new()
        .with_file("/etc/rsyncd.d/globals.inc", "motd file = /etc/motd\n")
        .with_file("/etc/rsyncd.d/foo.conf", "[foo]\npath = /foo\n")
        .with_file("/etc/rsyncd.d/bar.conf", "[bar]\npath = /bar\n");
    let cfg = load(
        "port = 873\nlog file = /var/log/rsync.log\n\n&merge /etc/rsyncd.d\n&include /etc/rsyncd.d\n",
        &inc,
    );
    assert_eq!(cfg.global.motd_file.as_deref(), Some("/etc/motd"));
    let names: Vec<_> = cfg.modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["bar", "foo"]);
    let foo = &cfg.module("foo").unwrap().params;
    assert_eq!(foo.log_file.as_deref(), Some("/var/log/rsync.log"));
}

#[test]
fn an_empty_directory_changes_nothing() {
    let mut inc = MemoryIncludes::new();
    inc.add_dir("/empty");
    let cfg = load("[m]\n&include /empty\ntimeout = 4\n", &inc);
    // No file was read, so the module section goes on.
    assert_eq!(timeout(&cfg, "m"), 4);
    assert!(cfg.warnings.is_empty());
}

#[test]
fn after_an_include_inside_a_module_the_parent_is_back_in_the_global_section() {
    let inc = MemoryIncludes::new().with_file("/x.conf", "# nothing\n");
    let cfg = load("[m]\n&include /x.conf\ntimeout = 5\nlist = no\n[n]\n", &inc);
    assert_eq!(timeout(&cfg, "m"), 0);
    assert_eq!(timeout(&cfg, "n"), 5);
    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    assert_eq!(cfg.warnings[0].location.line, 3);
    assert!(cfg.warnings[0].message.contains("[m]"));
}

#[test]
fn problems_in_included_files_name_those_files() {
    let inc = MemoryIncludes::new()
        .with_file("/a.conf", "\n\ntimeout = never\n")
        .with_file("/b.inc", "what\n")
        .with_file("/c.inc", b"comment = caf\xe9\n".to_vec());
    let errs = try_load(
        "&include /a.conf\n&merge /b.inc\n&merge /c.inc\n",
        &inc,
        &[],
    )
    .unwrap_err();
    assert_eq!(errs.0.len(), 1);
    assert_eq!(errs.0[0].path, Path::new("/a.conf"));
    assert_eq!((errs.0[0].line, errs.0[0].key.as_str()), (3, "timeout"));

    let inc = inc.with_file("/a.conf", "");
    let cfg = load("&include /a.conf\n&merge /b.inc\n&merge /c.inc\n", &inc);
    let places: Vec<_> = cfg
        .warnings
        .iter()
        .map(|w| (w.location.path.to_str().unwrap(), w.location.line))
        .collect();
    assert_eq!(places, [("/b.inc", 1), ("/c.inc", 1)]);
    assert_eq!(cfg.defaults.comment.as_deref(), Some("caf\u{fffd}"));
}

#[test]
fn include_failures_are_errors_at_the_directive() {
    let mut inc = MemoryIncludes::new()
        .with_file("/self.conf", "&include /self.conf\n")
        .with_file("/ping.conf", "\n&merge /pong.inc\n")
        .with_file("/pong.inc", "&include /ping.conf\n");
    inc.add_dir("/d/sub.conf");
    let text = "&include /missing\n&merge\n&include /self.conf\n&include /ping.conf\n\
                &Include /d\n&nope /x\n";
    let errs = try_load(text, &inc, &[]).unwrap_err();
    let got: Vec<_> = errs
        .0
        .iter()
        .map(|e| (e.path.to_str().unwrap(), e.line, e.key.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("/etc/rsyncd.conf", 1, "&include"),
            ("/self.conf", 1, "&include"),
            ("/pong.inc", 1, "&include"),
            ("/etc/rsyncd.conf", 6, "&nope"),
        ]
    );
    assert!(errs.0[1].problem.contains("includes itself"));
    // `&merge` with no path has no `=` and no space: upstream ignores such a line.
    let cfg = load("&merge\n&include /d\n", &inc);
    assert_eq!(cfg.warnings.len(), 2, "{:?}", cfg.warnings);
}

#[test]
fn includes_cannot_nest_without_bound() {
    let mut inc = MemoryIncludes::new();
    for i in 0..40 {
        inc.add_file(
            format!("/n/{i}.conf"),
            format!("&include /n/{}.conf\n", i + 1),
        );
    }
    let errs = try_load("&include /n/0.conf\n", &inc, &[]).unwrap_err();
    assert_eq!(errs.0.len(), 1);
    assert!(errs.0[0].problem.contains("nested"), "{}", errs.0[0]);

    // Each file includes the next twice: 2^15 reads unless capped.
    let mut inc = MemoryIncludes::new();
    for i in 0..15 {
        let next = format!("&merge /f/{}.inc\n", i + 1);
        inc.add_file(format!("/f/{i}.inc"), next.repeat(2));
    }
    inc.add_file("/f/15.inc", "");
    let errs = try_load("&merge /f/0.inc\n", &inc, &[]).unwrap_err();
    assert_eq!(errs.0.len(), 1);
    assert!(
        errs.0[0].problem.contains("config files read"),
        "{}",
        errs.0[0]
    );
}

#[test]
fn dparams_apply_at_the_first_module_even_inside_an_include() {
    // Upstream applies --dparam at the first module header while still in the
    // global section; inside an &include that is the included file's scope, which is
    // discarded afterwards. Global-only values still win for the listener.
    let inc = MemoryIncludes::new().with_file("/first.conf", "[first]\n");
    let cfg = try_load(
        "timeout = 1\n&include /first.conf\n[later]\n",
        &inc,
        &["timeout=5", "port=2"],
    )
    .unwrap();
    assert_eq!(timeout(&cfg, "first"), 5);
    assert_eq!(timeout(&cfg, "later"), 1);
    assert_eq!(cfg.global.port, 2);
}

/// Module names and comments as upstream 3.5.0 lists them (`rsync rsync://host/`)
/// for the same files, run against the reference binary: a repeated header continues
/// the first module, `name` renames, each `*.conf` of a directory starts afresh, an
/// unlisted module is hidden, and a line after an `&include` inside [q] sets the
/// defaults of [r] and [after] instead of [q].
#[test]
fn includes_match_upstreams_module_listing() {
    let inc = MemoryIncludes::new()
        .with_file("/up/d/x.conf", "[x]\ncomment = x\n")
        .with_file("/up/d/y.conf", "list = no\n[y]\ncomment = y\n")
        .with_file("/up/d/z.conf", "[z]\ncomment = z\n")
        .with_file("/up/e.conf", "# empty\n");
    let text = "use chroot = no\npid file = /tmp/up/pid\nbind address = 1.2.3.4\n\
                [b]\ncomment = B\npath = /tmp\n[a]\ncomment = A\npath = /tmp\n\
                [old]\nname = new\ncomment = renamed\npath = /tmp\n[ A ]\ncomment = A2\n\
                &include /up/d\n[q]\ncomment = q\npath = /tmp\n&include /up/e.conf\n\
                comment = q2\n[r]\npath = /tmp\n[after]\npath = /tmp\n";
    let cfg = load(text, &inc);
    let listing: Vec<_> = cfg
        .modules
        .iter()
        .filter(|m| m.params.list)
        .map(|m| (m.name.as_str(), m.params.comment.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        listing,
        [
            ("b", "B"),
            ("a", "A2"),
            ("new", "renamed"),
            ("x", "x"),
            ("z", "z"),
            ("q", "q"),
            ("r", "q2"),
            ("after", "q2"),
        ]
    );
    assert!(!cfg.module("y").unwrap().params.list);
    // Upstream logs "Unknown Parameter encountered: \"bind address\"".
    assert_eq!(cfg.warnings[0].key.as_deref(), Some("bind address"));
}
