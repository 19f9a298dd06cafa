//! Tests of the whole parser: the reference config, syntax, sections, errors,
//! warnings, `--dparam`, and properties over arbitrary input.

#![allow(clippy::unwrap_used)] // Tests may panic.

use std::path::Path;

use proptest::prelude::*;

use super::*;

const SEED: &str = include_str!("../../../../tests/fixtures/seed/rsyncd.conf");

fn no_env(_: &str) -> Option<String> {
    None
}

fn try_parse(text: &str, dparams: &[&str]) -> Result<DaemonConfig, ConfigErrors> {
    let dparams: Vec<String> = dparams.iter().map(|s| s.to_string()).collect();
    DaemonConfig::parse_with_env(
        text,
        Path::new("/etc/rsyncd.conf"),
        &MemoryIncludes::new(),
        &dparams,
        &no_env,
    )
}

fn parse(text: &str) -> DaemonConfig {
    try_parse(text, &[]).unwrap()
}

fn errors(text: &str) -> Vec<(u32, String)> {
    let errs = try_parse(text, &[]).unwrap_err();
    errs.0.into_iter().map(|e| (e.line, e.key)).collect()
}

fn warning_lines(cfg: &DaemonConfig) -> Vec<u32> {
    cfg.warnings.iter().map(|w| w.location.line).collect()
}

#[test]
fn the_reference_config() {
    let cfg = parse(SEED);

    assert_eq!(cfg.warnings.len(), 1, "{:?}", cfg.warnings);
    let w = &cfg.warnings[0];
    assert_eq!(w.location.path, Path::new("/etc/rsyncd.conf"));
    assert_eq!(w.location.line, 8);
    assert_eq!(w.key.as_deref(), Some("ignore errors"));
    assert!(w.message.contains("no effect"), "{}", w.message);
    assert!(w.to_string().starts_with("/etc/rsyncd.conf:8: "), "{w}");

    assert_eq!(cfg.global.port, 873);
    let d = &cfg.defaults;
    assert_eq!(d.uid.as_deref(), Some("rsync"));
    assert_eq!(d.gid.as_deref(), Some("rsync"));
    assert!(d.fake_super);
    assert_eq!(d.use_chroot, Some(false));
    assert_eq!(d.max_connections, 200);
    assert_eq!(d.timeout, 600);
    assert!(!d.ignore_errors, "a line without `=` must not set it");
    assert!(!d.read_only);
    assert!(!d.list);
    assert_eq!(d.hosts_allow.as_deref(), Some("10.0.0.0/24"));
    assert_eq!(d.hosts_deny.as_deref(), Some("0.0.0.0/32"));
    assert_eq!(d.auth_users.as_deref(), Some("rsync_backup"));
    assert_eq!(d.secrets_file.as_deref(), Some("/etc/rsync.password"));
    assert_eq!(d.log_file.as_deref(), Some("/var/log/rsyncd.log"));

    assert_eq!(cfg.modules.len(), 1);
    let backup = cfg.module("backup").unwrap();
    assert_eq!(backup.location.line, 17);
    assert_eq!(
        backup.params.comment.as_deref(),
        Some("welcome to edu backup!")
    );
    assert_eq!(backup.params.path.as_deref(), Some("/backup"));
    // Everything else comes from the global section.
    let mut expected = d.clone();
    expected.comment.clone_from(&backup.params.comment);
    expected.path.clone_from(&backup.params.path);
    expected.name = Some("backup".to_owned());
    for (name, line) in [("comment", 18), ("path", 19)] {
        let at = Location {
            path: "/etc/rsyncd.conf".into(),
            line,
        };
        params::MarkSet::mark_set(&mut expected, name, at);
    }
    assert_eq!(backup.params, expected);

    let own: Vec<_> = backup
        .explicitly_set()
        .filter(|(_, at)| at.line >= backup.location.line)
        .map(|(name, _)| name)
        .collect();
    assert_eq!(own, ["comment", "path"]);
    let all: Vec<_> = backup.explicitly_set().map(|(name, _)| name).collect();
    assert_eq!(all.len(), 15, "{all:?}");
    let globals: Vec<_> = cfg.global.explicitly_set().collect();
    assert_eq!(globals.len(), 1);
    assert_eq!((globals[0].0, globals[0].1.line), ("port", 3));
}

#[test]
fn comments_blank_lines_and_trailing_text() {
    let cfg = parse("# a\n; b\n   # c\n\npath = /x # y\n[m] ; not part of the name\n");
    assert_eq!(cfg.defaults.path.as_deref(), Some("/x # y"));
    assert_eq!(cfg.modules[0].name, "m");
    assert!(cfg.warnings.is_empty());
}

#[test]
fn continuation_lines_join_and_keep_the_first_line_number() {
    let cfg = parse("[m]\ncomment = one \\\n two\n\nbad = \\\n x\n");
    assert_eq!(cfg.modules[0].params.comment.as_deref(), Some("one  two"));
    assert_eq!(warning_lines(&cfg), [5]);
}

#[test]
fn whitespace_around_names_and_values() {
    let cfg = parse("  \t Max   Connections\t=\t  7  \n[ my  mod ]\n\tpath=  /a b/  \n");
    assert_eq!(cfg.defaults.max_connections, 7);
    let m = cfg.module("my mod").unwrap();
    assert_eq!(m.params.path.as_deref(), Some("/a b"));
}

#[test]
fn only_the_first_equals_sign_counts() {
    let cfg = parse("refuse options = a=b = c\n");
    assert_eq!(cfg.defaults.refuse_options.as_deref(), Some("a=b = c"));
}

#[test]
fn synonyms_are_upstreams_only() {
    // daemon-parm.txt spells them `bind_address|address` and `rsync_port|port`; only
    // the second name of each pair is a parameter.
    let cfg = parse("address = ::1\nport = 10873\nbind address = 1.2.3.4\nrsync port = 1\n");
    assert_eq!(cfg.global.address.as_deref(), Some("::1"));
    assert_eq!(cfg.global.port, 10873);
    assert_eq!(warning_lines(&cfg), [3, 4]);
    assert!(cfg.warnings[0].message.contains("did you mean `address`"));
    assert!(cfg.warnings[1].message.contains("did you mean `port`"));
}

#[test]
fn booleans_and_three_state_booleans() {
    let cfg = parse(
        "read only = No\nlist = TRUE\n[a]\nuse chroot = yes\nnumeric ids = unset\n\
         [b]\nmunge symlinks = 0\nopen noatime = -1\n",
    );
    assert!(!cfg.defaults.read_only);
    assert!(cfg.defaults.list);
    let a = &cfg.module("a").unwrap().params;
    assert_eq!((a.use_chroot, a.numeric_ids), (Some(true), None));
    let b = &cfg.module("b").unwrap().params;
    assert_eq!((b.munge_symlinks, b.open_noatime), (Some(false), None));
    assert_eq!(b.use_chroot, None);
    assert_eq!(errors("list = unset\n"), [(1, "list".to_owned())]);
}

#[test]
fn global_values_are_defaults_that_modules_override() {
    let cfg = parse(
        "read only = no\ntimeout = 60\n[a]\ntimeout = 5\n[b]\n\
         [global]\nread only = yes\n[c]\n",
    );
    let p = |name| &cfg.module(name).unwrap().params;
    assert_eq!((p("a").read_only, p("a").timeout), (false, 5));
    assert_eq!((p("b").read_only, p("b").timeout), (false, 60));
    // [global] changes the defaults for the modules after it only.
    assert_eq!((p("c").read_only, p("c").timeout), (true, 60));
    assert!(cfg.defaults.read_only);
    let names: Vec<_> = cfg.modules.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(names, ["a", "b", "c"]);
}

#[test]
fn global_section_header_is_case_and_space_insensitive() {
    let cfg = parse("[m]\n[ Glo Bal ]\ntimeout = 9\n[n]\n");
    assert_eq!(cfg.modules.len(), 2);
    assert_eq!(cfg.module("n").unwrap().params.timeout, 9);
    assert_eq!(cfg.module("m").unwrap().params.timeout, 0);
}

/// As upstream 3.5.0 lists it: an unset string parameter of a module falls back on
/// the global value as it stands at the end of the file, even one set after the
/// module; other types keep the defaults of the module's header.
#[test]
fn unset_strings_take_the_final_global_value() {
    let cfg = parse("[m]\npath = /m\n[global]\ncomment = x\ntimeout = 9\n[n]\ncomment = own\n");
    let m = &cfg.module("m").unwrap().params;
    assert_eq!((m.comment.as_deref(), m.timeout), (Some("x"), 0));
    assert_eq!(m.set_location("comment").unwrap().line, 4);
    assert_eq!(m.set_location("timeout"), None);
    let n = &cfg.module("n").unwrap().params;
    assert_eq!((n.comment.as_deref(), n.timeout), (Some("own"), 9));
    // An &include's defaults are gone by the end, so they are not the final ones.
    let inc = MemoryIncludes::new().with_file("/i.conf", "comment = inc\n[i]\n");
    let cfg = DaemonConfig::parse_with_env(
        "[m]\n&include /i.conf\n",
        Path::new("x"),
        &inc,
        &[],
        &no_env,
    )
    .unwrap();
    assert_eq!(cfg.module("m").unwrap().params.comment, None);
    assert_eq!(
        cfg.module("i").unwrap().params.comment.as_deref(),
        Some("inc")
    );
}

#[test]
fn a_repeated_module_continues_the_first() {
    let cfg = parse("[m]\npath = /a\ncomment = one\n[x]\n[ M ]\ncomment = two\n");
    assert_eq!(cfg.modules.len(), 2);
    let m = cfg.module("m").unwrap();
    assert_eq!(m.location.line, 1);
    assert_eq!(m.params.path.as_deref(), Some("/a"));
    assert_eq!(m.params.comment.as_deref(), Some("two"));
    assert_eq!(warning_lines(&cfg), [5]);
}

#[test]
fn module_lookup_is_exact_and_a_name_parameter_renames() {
    let cfg = parse("[Data]\n[old]\nname = new\n");
    assert!(cfg.module("Data").is_some());
    assert!(cfg.module("data").is_none());
    assert!(cfg.module("old").is_none());
    assert_eq!(cfg.module("new").unwrap().location.line, 2);
}

#[test]
fn a_header_reopens_the_last_module_with_that_name_even_after_renames() {
    // [b] is renamed to "a"; the last header matches both modules and, as upstream
    // searches from the end, reopens the later-defined [a].
    let cfg = parse("[b]\n[a]\n[b]\nname = a\n[a]\ncomment = here\n");
    assert_eq!(cfg.modules.len(), 2);
    assert_eq!(cfg.modules[0].params.comment, None);
    assert_eq!(cfg.modules[1].params.comment.as_deref(), Some("here"));
    // A renamed module no longer answers to its header's name.
    let cfg = parse("[old]\nname = new\n[old]\npath = /o\n");
    assert_eq!(cfg.modules.len(), 2);
    assert_eq!(
        cfg.module("old").unwrap().params.path.as_deref(),
        Some("/o")
    );
    assert_eq!(cfg.module("new").unwrap().params.path, None);
}

#[test]
fn module_names_cannot_hold_a_slash_or_be_empty() {
    assert_eq!(
        errors("[a/b]\npath = /x\nport = 1\ntimeout = x\n[]\n[open\n"),
        [
            (1, "[a/b]".to_owned()),
            (4, "timeout".to_owned()),
            (5, "[]".to_owned()),
            (6, "[open".to_owned())
        ]
    );
}

#[test]
fn global_parameters_in_a_module_are_ignored_with_a_warning() {
    let cfg = parse("[m]\nport = 1\nmotd file = /x\n");
    assert_eq!(cfg.global.port, 0);
    assert_eq!(cfg.global.motd_file, None);
    assert_eq!(warning_lines(&cfg), [2, 3]);
    assert_eq!(cfg.warnings[0].key.as_deref(), Some("port"));
    assert!(cfg.warnings[0].message.contains("global parameter"));
}

#[test]
fn unknown_parameters_and_lines_without_equals_are_warnings() {
    let cfg = parse("frobnicate = 1\nmax_connections = 3\n[m]\nuse chroot\n");
    assert_eq!(warning_lines(&cfg), [1, 2, 4]);
    assert_eq!(cfg.warnings[0].key.as_deref(), Some("frobnicate"));
    assert!(
        cfg.warnings[1]
            .message
            .contains("did you mean `max connections`")
    );
    assert!(cfg.warnings[2].message.contains("use chroot = <value>"));
    assert_eq!(cfg.modules[0].params.use_chroot, None);
}

#[test]
fn every_error_is_reported_with_file_line_and_parameter() {
    let text = "timeout = soon\n= orphan\n[m]\nread only = perhaps\nmax verbosity = 2x\n\
                syslog facility = nope\n&bogus x\n";
    let errs = try_parse(text, &[]).unwrap_err();
    let shown = errs.to_string();
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 6, "{shown}");
    assert!(
        lines[0].starts_with("/etc/rsyncd.conf:1: `timeout`: "),
        "{shown}"
    );
    assert!(
        lines[1].starts_with("/etc/rsyncd.conf:2: `= orphan`: "),
        "{shown}"
    );
    assert!(
        lines[2].starts_with("/etc/rsyncd.conf:4: `read only`: "),
        "{shown}"
    );
    assert!(lines[3].starts_with("/etc/rsyncd.conf:5: `max verbosity`: "));
    assert!(lines[4].starts_with("/etc/rsyncd.conf:6: `syslog facility`: "));
    assert!(
        lines[5].starts_with("/etc/rsyncd.conf:7: `&bogus`: "),
        "{shown}"
    );
    assert_eq!(errs.0[0].path, Path::new("/etc/rsyncd.conf"));
}

#[test]
fn non_string_values_expand_the_environment_at_load() {
    let env = |n: &str| match n {
        "T" => Some("42".to_owned()),
        "RO" => Some("no".to_owned()),
        _ => None,
    };
    let cfg = DaemonConfig::parse_with_env(
        "timeout = %T%\nread only = %RO%\npath = /home/%T%\n",
        Path::new("x"),
        &MemoryIncludes::new(),
        &[],
        &env,
    )
    .unwrap();
    assert_eq!(cfg.defaults.timeout, 42);
    assert!(!cfg.defaults.read_only);
    // Strings stay raw for the session to expand.
    assert_eq!(cfg.defaults.path.as_deref(), Some("/home/%T%"));
    assert_eq!(
        expand_vars(cfg.defaults.path.as_deref().unwrap(), &env),
        "/home/42"
    );
}

#[test]
fn dparams_override_the_global_section() {
    let cfg = try_parse(
        "pid file = /a\nmotd file = /m\nread only = yes\n[x]\n[global]\npid file = /late\n",
        &["pidfile=/from/cli", "read only =  no", " Timeout=9"],
    )
    .unwrap();
    assert_eq!(cfg.global.pid_file.as_deref(), Some("/from/cli"));
    assert_eq!(cfg.global.motd_file.as_deref(), Some("/m"));
    let x = &cfg.module("x").unwrap().params;
    assert!(!x.read_only);
    assert_eq!(x.timeout, 9);
    assert_eq!(
        x.set_location("timeout").unwrap().path,
        Path::new("--dparam")
    );
    let at = cfg.global.set_location("pid file").unwrap();
    assert_eq!((at.path.to_str(), at.line), (Some("--dparam"), 0));
}

#[test]
fn dparams_apply_without_modules_too() {
    let cfg = try_parse("timeout = 1\n", &["timeout=2", "port=8873"]).unwrap();
    assert_eq!(cfg.defaults.timeout, 2);
    assert_eq!(cfg.global.port, 8873);
}

#[test]
fn dparam_values_keep_trailing_space() {
    let cfg = try_parse("", &["comment= padded  "]).unwrap();
    assert_eq!(cfg.defaults.comment.as_deref(), Some("padded  "));
}

#[test]
fn bad_dparams_are_errors() {
    let errs = try_parse(
        "timeout = x\n",
        &["motdfile", "nosuch=1", "timeout=never", "port=1"],
    )
    .unwrap_err();
    let got: Vec<_> = errs
        .0
        .iter()
        .map(|e| (e.path.to_str().unwrap(), e.line, e.key.as_str()))
        .collect();
    assert_eq!(
        got,
        [
            ("--dparam", 0, "motdfile"),
            ("--dparam", 0, "nosuch"),
            ("--dparam", 0, "timeout"),
            ("/etc/rsyncd.conf", 1, "timeout"),
        ]
    );
}

#[test]
fn nul_bytes_end_the_file() {
    let cfg = parse("timeout = 1\n\0timeout = 2\n");
    assert_eq!(cfg.defaults.timeout, 1);
    assert_eq!(warning_lines(&cfg), [2]);
}

#[test]
fn load_reads_from_disk() {
    let tmp = tempfile::tempdir().unwrap();
    let main = tmp.path().join("rsyncd.conf");
    let dir = tmp.path().join("rsyncd.d");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("one.conf"), "[one]\npath = /1\n").unwrap();
    std::fs::write(dir.join("g.inc"), "timeout = 7\n").unwrap();
    let text = format!("{SEED}[global]\n&merge {0}\n&include {0}\n", dir.display());
    std::fs::write(&main, text).unwrap();
    let cfg = DaemonConfig::load(&main, &["port=1873".to_owned()]).unwrap();
    assert_eq!(cfg.global.port, 1873);
    assert_eq!(cfg.module("one").unwrap().params.timeout, 7);
    assert_eq!(
        cfg.module("one").unwrap().location.path,
        dir.join("one.conf")
    );
    assert!(cfg.module("backup").is_some());

    let missing = tmp.path().join("nope.conf");
    let errs = DaemonConfig::load(&missing, &[]).unwrap_err();
    assert_eq!(errs.0.len(), 1);
    assert_eq!((errs.0[0].line, errs.0[0].key.as_str()), (0, "config file"));
    assert_eq!(errs.0[0].path, missing);
}

/// Lines that exercise most rules, for the generated configs below.
fn config_line() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("[m]".to_owned()),
        Just("[global]".to_owned()),
        Just("&include /inc/a.conf".to_owned()),
        Just("&merge /inc".to_owned()),
        Just("&include /inc".to_owned()),
        Just("ignore errors".to_owned()),
        Just("\\".to_owned()),
        "[a-z ]{0,12} ?= ?[ -~]{0,20}\\\\?",
        "(timeout|use chroot|port|list|syslog facility) = [-0-9a-z%]{0,6}",
        "[\\[\\]#;&=\\\\ a-z]{0,16}",
    ]
}

fn fuzz_includes() -> MemoryIncludes {
    MemoryIncludes::new()
        .with_file("/inc/a.conf", "[a]\n&include /inc/a.conf\ntimeout = 1\n")
        .with_file("/inc/b.inc", "&merge /inc\n&include /inc\n[b]\n")
        .with_file("/inc/c.conf", "&include /inc\nlist = no\n")
}

proptest! {
    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = try_parse(&text, &[]);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = try_parse(&text, &[]);
        parse_for_fuzzing(&bytes);
    }

    #[test]
    fn generated_configs_never_panic_and_are_reported_per_line(
        lines in proptest::collection::vec(config_line(), 0..30),
        dparams in proptest::collection::vec("[a-z ]{0,10}=?[a-z0-9]{0,4}", 0..3),
    ) {
        let text = lines.join("\n");
        let result = DaemonConfig::parse_with_env(
            &text,
            Path::new("/etc/rsyncd.conf"),
            &fuzz_includes(),
            &dparams,
            &no_env,
        );
        let line_count = u32::try_from(lines.len()).unwrap();
        match result {
            Ok(cfg) => {
                for w in &cfg.warnings {
                    if w.location.path == Path::new("/etc/rsyncd.conf") {
                        prop_assert!(w.location.line >= 1 && w.location.line <= line_count);
                    }
                }
            }
            Err(errs) => {
                prop_assert!(!errs.0.is_empty());
                for e in &errs.0 {
                    if e.path == Path::new("/etc/rsyncd.conf") {
                        prop_assert!(e.line >= 1 && e.line <= line_count, "{}", e);
                    }
                }
            }
        }
    }
}

/// Module names and comments as upstream 3.5.0 lists them (`rsync rsync://host/`)
/// for the same file, run against the reference binary.
#[test]
fn lexing_matches_upstreams_module_listing() {
    let text = "use chroot = no\n[m1]\npath = /tmp\ncomment = |one \\\n  two|\n\
                [m2]\npath = /tmp\ncomment = |x  \\\n   \n[m3]\npath = /tmp\n\\ comment = lead\n\
                [m4]\r\npath = /tmp\r\ncomment = crlf|\r\n[m5]\npath = /tmp\ncomment = \\\n   spaced|\n\
                [ my \t module ] junk\npath = /tmp\n[mo\\\n  d]\npath = /tmp\nMAXCONNECTIONS = 3\n\
                [m6]\npath=/tmp\ncomment = a\\b # c ; d\n";
    let cfg = parse(text);
    let listing: Vec<_> = cfg
        .modules
        .iter()
        .map(|m| (m.name.as_str(), m.params.comment.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        listing,
        [
            ("m1", "|one   two|"),
            ("m2", "|x  "),
            ("m3", "lead"),
            ("m4", "crlf|"),
            ("m5", "   spaced|"),
            ("my module", ""),
            ("mo d", ""),
            ("m6", "a\\b # c ; d"),
        ]
    );
    assert_eq!(cfg.module("mo d").unwrap().params.max_connections, 3);
    assert!(cfg.warnings.is_empty(), "{:?}", cfg.warnings);
}

/// As upstream 3.5.0 lists it: --dparam applies at the first module header, and a
/// later [global] section overrides it for the modules after it.
#[test]
fn dparams_then_a_later_global_section_as_upstream() {
    let text = "comment = g\n[m1]\npath = /tmp\n[global]\ncomment = g2\n[m2]\npath = /tmp\n";
    let cfg = try_parse(text, &["comment=D"]).unwrap();
    let comment = |m| cfg.module(m).unwrap().params.comment.as_deref();
    assert_eq!((comment("m1"), comment("m2")), (Some("D"), Some("g2")));
}
