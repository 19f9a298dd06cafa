//! Tests of both readers, `to_toml` and `validate`, on the reference fixtures and on
//! small files with one fault each.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const SEED: &[u8] = include_bytes!("../../../../shared/fixtures/seed/confxml.xml");
const STOCK: &[u8] = include_bytes!("../../../../shared/fixtures/sersync/confxml.default.xml");
const EXAMPLE: &str = include_str!("../../../packaging/sersync-agent.toml");

fn xml(text: &str) -> Result<AgentConfig, ConfigError> {
    parse(text.as_bytes(), Path::new("confxml.xml"))
}

fn toml(text: &str) -> Result<AgentConfig, ConfigError> {
    parse(text.as_bytes(), Path::new("agent.toml"))
}

fn err_of(r: Result<AgentConfig, ConfigError>) -> ConfigError {
    match r {
        Ok(c) => panic!("expected an error, got {c:?}"),
        Err(e) => e,
    }
}

#[test]
fn seed_fixture_loads_with_its_values() {
    let c = parse(SEED, Path::new("seed/confxml.xml")).unwrap();
    assert_eq!(c.watch, PathBuf::from("/backup"));
    assert_eq!(
        c.remotes,
        vec![RemoteTarget {
            host: "10.0.0.10".into(),
            module: "backup".into()
        }]
    );
    assert_eq!(c.rsync.params, "-artuz");
    assert_eq!(
        c.rsync.auth,
        Some(Auth {
            user: "rsync_backup".into(),
            password_file: "/etc/rsync.password".into()
        })
    );
    assert_eq!(
        (c.rsync.port, c.rsync.timeout, c.rsync.ssh),
        (None, None, false)
    );
    let e = c.events;
    assert!(!e.delete && e.create_folder && !e.create_file && e.close_write);
    assert!(e.move_from && e.move_to && !e.attrib && !e.modify);
    assert!(c.filter.is_empty(), "filter start=false keeps no excludes");
    assert_eq!(
        c.fail_log,
        Some(FailLog {
            path: "/tmp/rsync_fail_log.sh".into(),
            every: Duration::from_secs(60 * 60)
        })
    );
    assert_eq!(c.crontab, None);
    assert_eq!(c.host, Some(("localhost".into(), 8008)));
    assert!(!c.debug && !c.xfs);
    assert_eq!(c.agent, AgentSettings::default());
    let names: Vec<(&str, bool)> = c
        .plugins
        .iter()
        .map(|p| (p.name.as_str(), p.enabled))
        .collect();
    assert_eq!(
        names,
        [("command", false), ("socket", false), ("refreshCDN", false)]
    );
    let command = &c.plugins[0].settings;
    let s = |k: &str, v: &str| (k.to_string(), v.to_string());
    assert_eq!(
        command,
        &vec![
            s("filter.start", "false"),
            s("filter/include.expression", r"(.*)\.php"),
            s("filter/include.expression", r"(.*)\.sh"),
            s("param.ignoreError", "true"),
            s("param.prefix", "/bin/sh"),
            s("param.suffix", ""),
        ]
    );
    assert!(
        c.plugins[1]
            .settings
            .contains(&s("localpath/deshost.port", "8009"))
    );
    assert!(
        c.plugins[2]
            .settings
            .contains(&s("localpath/cdninfo.domainname", "ccms.chinacache.com"))
    );
}

#[test]
fn stock_fixture_loads_with_its_values() {
    let c = parse(STOCK, Path::new("confxml.default.xml")).unwrap();
    assert_eq!(c.watch, PathBuf::from("/opt/tongbu"));
    assert_eq!(c.remotes.len(), 1, "commented-out remotes are comments");
    assert_eq!(c.remotes[0].module, "tongbu1");
    assert_eq!(c.rsync.auth, None, "auth start=false");
    assert_eq!(c.events, EventSwitches::default());
    assert_eq!(c.plugins.len(), 3);
}

#[test]
fn example_toml_is_the_seed_deployment() {
    let from_toml = toml(EXAMPLE).unwrap();
    let mut from_xml = parse(SEED, Path::new("x")).unwrap();
    from_xml.source = from_toml.source.clone();
    assert_eq!(from_toml, from_xml);
}

#[test]
fn to_toml_round_trips_both_fixtures() {
    for bytes in [SEED, STOCK] {
        let c = parse(bytes, Path::new("confxml.xml")).unwrap();
        let text = to_toml(&c);
        let mut back = toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        back.source = c.source.clone();
        assert_eq!(back, c, "{text}");
    }
}

#[test]
fn to_toml_round_trips_every_optional_setting() {
    let mut c = parse(STOCK, Path::new("confxml.xml")).unwrap();
    c.rsync.port = Some(874);
    c.rsync.timeout = Some(100);
    c.filter = vec![r"(.*)\.svn".into(), "it's".into(), "tab\there".into()];
    c.crontab = Some(Crontab {
        every: Duration::from_secs(600 * 60),
        excludes: vec!["*.php".into()],
    });
    c.plugins[0].enabled = true;
    let text = to_toml(&c);
    let mut back = toml(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    back.source = c.source.clone();
    assert_eq!(back, c, "{text}");
}

#[test]
fn latin1_file_is_read() {
    let mut bytes = STOCK.to_vec();
    // A Latin-1 "é" in a comment: not UTF-8, as the declaration allows.
    let at = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    bytes.splice(at..at, b"<!-- caf\xe9 -->\n".iter().copied());
    let c = parse(&bytes, Path::new("confxml.xml")).unwrap();
    assert_eq!(c.watch, PathBuf::from("/opt/tongbu"));

    let no_decl = b"<head>\xe9</head>";
    let e = err_of(parse(no_decl, Path::new("confxml.xml")));
    assert_eq!(e.kind, ErrorKind::Malformed);
}

#[test]
fn format_is_told_by_content() {
    assert!(looks_like_xml(b"\n  # a note\n<?xml"));
    assert!(looks_like_xml(b"\xEF\xBB\xBF<head>"));
    assert!(!looks_like_xml(b"# <head>\nwatch = '/x'"));
    assert!(!looks_like_xml(b""));
}

/// A minimal confxml with `body` inside `<sersync>` after line 3.
fn minimal(body: &str) -> String {
    format!(
        "<?xml version=\"1.0\"?>\n<head version=\"2.5\">\n<sersync>\n{body}\n</sersync>\n</head>\n"
    )
}

const GOOD_BODY: &str = "<localpath watch=\"/w\"><remote ip=\"h\" name=\"m\"/></localpath>\n\
                         <rsync><commonParams params=\"-a\"/></rsync>";

#[test]
fn minimal_confxml_takes_stock_defaults() {
    let c = xml(&minimal(GOOD_BODY)).unwrap();
    assert_eq!(c.events, EventSwitches::default());
    assert_eq!((c.fail_log, c.crontab, c.host), (None, None, None));
}

#[test]
fn confxml_errors_name_line_element_and_attribute() {
    let cases: &[(&str, u32, &str, ErrorKind, &str)] = &[
        (
            "<localpath watch=\"/w\">\n<remote ip=\"h\"/></localpath>",
            5,
            "<remote>",
            ErrorKind::Missing,
            "missing attribute \"name\"",
        ),
        (
            "<localpath>\n<remote ip=\"h\" name=\"m\"/></localpath>",
            4,
            "<localpath>",
            ErrorKind::Missing,
            "missing attribute \"watch\"",
        ),
        (
            "<localpath watch=\"/w\"><remote ip=\"h\" name=\"m\"/></localpath>\n<rsync/>",
            5,
            "<rsync>",
            ErrorKind::Missing,
            "missing element <commonParams>",
        ),
        (
            "<localpath watch=\"/w\"><remote ip=\"h\" name=\"m\" port=\"1\"/></localpath>",
            4,
            "<remote>",
            ErrorKind::Unknown,
            "unknown attribute \"port\"",
        ),
        (
            "<closewrite start=\"true\"/>",
            4,
            "<closewrite>",
            ErrorKind::Unknown,
            "unknown element inside <sersync>",
        ),
        (
            "<localpath watch=\"/w\"><remote ip=\"h\" name=\"m\"/></localpath>\n\
             <rsync><commonParams params=\"-a\"/>\n<ssh start=\"yes\"/></rsync>",
            6,
            "<ssh>",
            ErrorKind::BadValue,
            "attribute \"start\": \"yes\" is neither",
        ),
        (
            "<localpath watch=\"/w\"><remote ip=\"h\" name=\"m\"/></localpath>\n\
             <rsync><commonParams params=\"-a\"/></rsync>\n\
             <failLog path=\"/f\" timeToExecute=\"sixty\"/>",
            6,
            "<failLog>",
            ErrorKind::BadValue,
            "attribute \"timeToExecute\": \"sixty\" is not a number",
        ),
        (
            "<localpath watch=\"/w\"><remote ip=\"h\" name=\"m\"/></localpath>\n\
             <rsync><commonParams params=\"-a\"/>\n\
             <userDefinedPort start=\"true\" port=\"70000\"/></rsync>",
            6,
            "<userDefinedPort>",
            ErrorKind::BadValue,
            "\"70000\" is out of range",
        ),
        (
            "<localpath watch=\"/w\"><remote ip=\"h\" name=\"m\"/></localpath>\n\
             <rsync><commonParams params=\"-a\"/></rsync>\n<rsync/>",
            6,
            "<rsync>",
            ErrorKind::Duplicate,
            "given twice (first on line 5)",
        ),
        (
            "<localpath watch=\"/w\"><remote ip=\"h\" name=\"m\"/>\n<remote ip=\"h\"",
            0,
            "XML",
            ErrorKind::Malformed,
            "",
        ),
    ];
    for &(body, line, place, kind, words) in cases {
        let e = err_of(xml(&minimal(body)));
        if line == 0 {
            assert!(e.line > 4, "{e}");
        } else {
            assert_eq!(e.line, line, "{e}");
        }
        assert_eq!((e.place.as_str(), e.kind), (place, kind), "{e}");
        assert!(e.problem.contains(words), "{e}");
        assert!(e.to_string().starts_with("confxml.xml:"), "{e}");
    }
}

#[test]
fn confxml_error_display() {
    let body = "<localpath watch=\"/w\">\n<remote ip=\"h\"/></localpath>";
    let e = err_of(xml(&minimal(body)));
    assert_eq!(
        e.to_string(),
        "confxml.xml:5: <remote>: missing attribute \"name\""
    );
}

#[test]
fn confxml_plugin_errors() {
    let plugin = |p: &str| {
        format!(
            "<head>\n<sersync>{GOOD_BODY}<plugin start=\"true\" name=\"command\"/></sersync>\n{p}\n</head>"
        )
    };
    let e = err_of(xml(&plugin(
        "<plugin name=\"command\"><param prefix=\"x\" postfix=\"y\"/></plugin>",
    )));
    assert_eq!(
        (e.line, e.kind, e.place.as_str()),
        (4, ErrorKind::Unknown, "<param>"),
        "{e}"
    );
    let e = err_of(xml(&plugin("<plugin name=\"ftp\"/>")));
    assert_eq!((e.line, e.kind), (4, ErrorKind::BadValue), "{e}");
    let e = err_of(xml(&plugin("")));
    assert_eq!(
        (e.line, e.kind, e.place.as_str()),
        (3, ErrorKind::Missing, "<plugin>"),
        "{e}"
    );
    let ok = xml(&plugin(
        "<plugin name=\"command\"><param prefix=\"x\"/></plugin>",
    ))
    .unwrap();
    assert!(ok.plugins[0].enabled);
}

const GOOD_TOML: &str =
    "watch = '/w'\n[[remote]]\nhost = 'h'\nmodule = 'm'\n[rsync]\nparams = '-a'\n";

#[test]
fn toml_errors_name_line_and_key() {
    let cases: &[(&str, u32, &str, ErrorKind)] = &[
        (
            "[events]\nclose_wirte = true\n",
            8,
            "`events.close_wirte`",
            ErrorKind::Unknown,
        ),
        ("[rsync2]\n", 7, "`rsync2`", ErrorKind::Unknown),
        (
            "[fail_log]\npath = '/f'\nretry_minutes = 'sixty'\n",
            9,
            "`fail_log.retry_minutes`",
            ErrorKind::BadValue,
        ),
        (
            "[events]\ndelete = 'yes'\n",
            8,
            "`events.delete`",
            ErrorKind::BadValue,
        ),
        (
            "[host]\nip = 'x'\nport = 70000\n",
            9,
            "`host.port`",
            ErrorKind::BadValue,
        ),
        (
            "[fail_log]\npath = '/f'\n",
            7,
            "`fail_log`",
            ErrorKind::Missing,
        ),
        ("[agent\n", 7, "`agent`", ErrorKind::Malformed),
        (
            "[[plugin]]\nname = 'command'\n[plugin.settings]\n'param.postfix' = 'x'\n",
            10,
            "`plugin.settings.param.postfix`",
            ErrorKind::Unknown,
        ),
        (
            "[[plugin]]\nname = 'command'\n[plugin.settings]\n'param.ignoreError' = 'yes'\n",
            10,
            "`plugin.settings.param.ignoreError`",
            ErrorKind::BadValue,
        ),
    ];
    for &(extra, line, place, kind) in cases {
        let e = err_of(toml(&format!("{GOOD_TOML}{extra}")));
        assert_eq!(
            (e.line, e.place.as_str(), e.kind),
            (line, place, kind),
            "{e}"
        );
        assert!(
            e.to_string()
                .starts_with(&format!("agent.toml:{line}: {place}: ")),
            "{e}"
        );
    }
    let e = err_of(toml(&format!("{GOOD_TOML}user = 'u'\n")));
    assert_eq!((e.line, e.kind), (7, ErrorKind::Missing), "{e}");
    assert_eq!(e.place, "`rsync.user`");
    // No remote reads (`-m PLUGIN` needs none); `validate` reports it for the pushes.
    let c = toml("watch = '/w'\n[rsync]\nparams = '-a'\n").unwrap();
    let found = problems(&c);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].place, "`remote`");
    let e = err_of(toml("watch = '/w'\n[[remote]]\nhost = 'h'\nmodule = 'm'\n"));
    assert_eq!(e.kind, ErrorKind::Missing, "{e}");
    assert!(e.problem.contains("rsync"), "{e}");
}

#[test]
fn toml_defaults() {
    let c = toml(GOOD_TOML).unwrap();
    assert_eq!(c.events, EventSwitches::default());
    assert_eq!(c.agent, AgentSettings::default());
    assert_eq!((c.fail_log, c.crontab, c.debug), (None, None, false));
}

fn problems(c: &AgentConfig) -> Vec<ConfigError> {
    match c.validate() {
        Ok(()) => Vec::new(),
        Err(p) => p.0,
    }
}

#[test]
fn validate_reports_every_problem_at_its_line() {
    let body = "<localpath watch=\"relative\"><remote ip=\"h\" name=\"m\"/></localpath>\n\
                <rsync><commonParams params=\"-artuz --frobnicate\"/>\n\
                <userDefinedPort start=\"true\" port=\"0\"/></rsync>";
    let text = minimal(body).replace(
        "<sersync>",
        "<filter start=\"true\">\n<exclude expression=\"*.php\"/>\n<exclude expression=\"(.*)\\.gz\"/>\n</filter>\n<sersync>",
    );
    let c = xml(&text).unwrap();
    let found = problems(&c);
    let at: Vec<(u32, &str)> = found.iter().map(|e| (e.line, e.place.as_str())).collect();
    assert_eq!(
        at,
        [
            (4, "<exclude>"),
            (8, "<localpath>"),
            (9, "<commonParams>"),
            (10, "<userDefinedPort>")
        ],
        "{found:?}"
    );
    assert!(found.iter().all(|e| e.kind == ErrorKind::Invalid));
    assert!(found[2].problem.contains("frobnicate"), "{}", found[2]);
}

#[test]
fn fixtures_params_are_accepted_by_the_client() {
    for bytes in [SEED, STOCK] {
        let mut c = parse(bytes, Path::new("confxml.xml")).unwrap();
        c.rsync.auth = None;
        assert_eq!(problems(&c), vec![]);
    }
}

#[test]
fn password_file_must_not_be_other_readable() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rsync.password");
    std::fs::write(&file, "secret\n").unwrap();
    let text = format!(
        "{GOOD_TOML}user = 'u'\npassword_file = '{}'\n",
        file.display()
    );
    let c = toml(&text).unwrap();

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let found = problems(&c);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(
        (found[0].line, found[0].place.as_str()),
        (8, "`rsync.password_file`")
    );
    assert!(
        found[0].problem.contains("other-accessible"),
        "{}",
        found[0]
    );

    std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(problems(&c), vec![]);

    std::fs::remove_file(&file).unwrap();
    assert_eq!(problems(&c).len(), 1);
}

#[test]
fn filter_regexes_are_compiled_by_validate() {
    let mut c = toml(GOOD_TOML).unwrap();
    c.filter = vec![r"(.*)\.svn".into(), "^info/*".into(), "a{,2}".into()];
    let found = problems(&c);
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0].place, "`filter.exclude.2`");
    assert!(found[0].problem.contains("a{,2}"), "{}", found[0]);
}

#[test]
fn load_reads_from_disk_and_names_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let xml_file = dir.path().join("confxml.xml");
    std::fs::write(&xml_file, SEED).unwrap();
    let c = load(&xml_file).unwrap();
    assert_eq!(
        (c.source.as_path(), c.watch.as_path()),
        (xml_file.as_path(), Path::new("/backup"))
    );
    let toml_file = dir.path().join("agent.conf");
    std::fs::write(&toml_file, EXAMPLE).unwrap();
    assert_eq!(load(&toml_file).unwrap().watch, PathBuf::from("/backup"));
    let e = load(&dir.path().join("absent")).unwrap_err();
    assert_eq!((e.kind, e.line), (ErrorKind::Io, 0));
    assert!(e.to_string().contains("absent: file: "), "{e}");
}

#[test]
fn ssh_pushes_are_refused_by_validate() {
    let mut c = toml(GOOD_TOML).unwrap();
    c.rsync.ssh = true;
    let found = problems(&c);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].problem.contains("ssh"), "{}", found[0]);
}

#[test]
fn the_metrics_endpoint_is_read_and_written_back() {
    let text = format!("{GOOD_TOML}\n[agent]\nmetrics = \"127.0.0.1:9109\"\n");
    let c = toml(&text).unwrap();
    assert_eq!(c.agent.metrics, Some("127.0.0.1:9109".parse().unwrap()));
    assert!(to_toml(&c).contains("metrics = \"127.0.0.1:9109\""));
    let bad = format!("{GOOD_TOML}\n[agent]\nmetrics = \"localhost\"\n");
    assert!(toml(&bad).is_err());
}

#[test]
fn the_watcher_kind_is_read_and_written_back() {
    let c = toml(GOOD_TOML).unwrap();
    assert_eq!(c.agent.watcher, WatcherKind::Inotify);
    assert!(!to_toml(&c).contains("watcher"));
    let text = format!("{GOOD_TOML}\n[agent]\nwatcher = \"fanotify\"\n");
    let c = toml(&text).unwrap();
    assert_eq!(c.agent.watcher, WatcherKind::Fanotify);
    assert_eq!(
        toml(&to_toml(&c)).unwrap().agent.watcher,
        WatcherKind::Fanotify
    );
    let bad = format!("{GOOD_TOML}\n[agent]\nwatcher = \"kqueue\"\n");
    let e = toml(&bad).unwrap_err().to_string();
    assert!(e.contains("watcher") && e.contains("kqueue"), "{e}");
}
