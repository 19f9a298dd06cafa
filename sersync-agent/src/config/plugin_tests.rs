//! `validate` on plugins, remotes and `-m`: what each mode requires.

use std::path::Path;

use super::*;

const SEED: &[u8] = include_bytes!("../../../../shared/fixtures/seed/confxml.xml");

fn xml(text: &str) -> AgentConfig {
    match parse(text.as_bytes(), Path::new("confxml.xml")) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    }
}

fn problems(c: &AgentConfig, only: Option<&str>) -> Vec<String> {
    match c.validate_for(only) {
        Ok(()) => Vec::new(),
        Err(p) => p.iter().map(ToString::to_string).collect(),
    }
}

/// A confxml with no remote, `plugins` at the top level and `turned_on` in `<sersync>`.
fn file(remote: &str, turned_on: &str, plugins: &str) -> String {
    format!(
        "<head>\n<sersync>\n<localpath watch=\"/w\">{remote}</localpath>\n\
         <rsync><commonParams params=\"-a\"/></rsync>\n{turned_on}\n</sersync>\n{plugins}\n</head>\n"
    )
}

const COMMAND: &str = "<plugin name=\"command\"><param prefix=\"/bin/echo\"/></plugin>";

#[test]
fn no_remote_is_a_problem_only_when_pushing() {
    let c = xml(&file("<!--<remote ip=\"h\" name=\"m\"/>-->", "", COMMAND));
    let found = problems(&c, None);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("confxml.xml:3: <localpath>: no remote to push to"),
        "{}",
        found[0]
    );
    assert_eq!(problems(&c, Some("command")), Vec::<String>::new());
}

#[test]
fn a_plugin_alone_needs_its_element_but_not_rsync() {
    let mut c = xml(&file("", "", COMMAND));
    c.rsync.params = "--frobnicate".into();
    c.rsync.ssh = true;
    assert_eq!(problems(&c, Some("command")), Vec::<String>::new());
    let found = problems(&c, Some("socket"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("no socket plugin to run"), "{}", found[0]);
}

#[test]
fn the_seed_file_passes_for_every_plugin() {
    let mut c = parse(SEED, Path::new("confxml.xml")).unwrap();
    c.rsync.auth = None;
    for only in [None, Some("command"), Some("socket"), Some("refreshCDN")] {
        assert_eq!(problems(&c, only), Vec::<String>::new(), "{only:?}");
    }
}

#[test]
fn plugin_settings_are_checked_at_their_lines() {
    let plugins = "<plugin name=\"command\">\n<param prefix=\"cd /x &amp;&amp; ./run\"/></plugin>\n\
                   <plugin name=\"refreshCDN\"><localpath watch=\"/w\">\n\
                   <cdninfo domainname=\"https://cdn.example/\" port=\"80\"/>\n\
                   <sendurl base=\"http://pic.example\"/></localpath></plugin>";
    let c = xml(&file("<remote ip=\"h\" name=\"m\"/>", "", plugins));
    let found = problems(&c, None);
    assert_eq!(found.len(), 2, "{found:?}");
    assert!(
        found[0].starts_with("confxml.xml:8: <param>: command plugin: '&'"),
        "{}",
        found[0]
    );
    assert!(
        found[1].starts_with("confxml.xml:10: <cdninfo>: refreshCDN plugin: ")
            && found[1].contains("https is not supported"),
        "{}",
        found[1]
    );
}

#[test]
fn a_plugin_beside_the_pushes_watches_inside_the_tree() {
    let socket = |watch: &str| {
        format!(
            "<plugin name=\"socket\"><localpath watch=\"{watch}\">\
             <deshost ip=\"127.0.0.1\" port=\"8009\"/></localpath></plugin>"
        )
    };
    let on = "<plugin start=\"true\" name=\"socket\"/>";
    let remote = "<remote ip=\"h\" name=\"m\"/>";
    for inside in ["/w", "/w/", "/w/site"] {
        let c = xml(&file(remote, on, &socket(inside)));
        assert_eq!(problems(&c, None), Vec::<String>::new(), "{inside}");
    }
    let c = xml(&file(remote, on, &socket("/opt/tongbu")));
    let found = problems(&c, None);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].contains("outside the agent's tree"),
        "{}",
        found[0]
    );
    // Alone it watches its own tree, as sersync's -m socket does; off, nothing runs it.
    assert_eq!(problems(&c, Some("socket")), Vec::<String>::new());
    let c = xml(&file(remote, "", &socket("/opt/tongbu")));
    assert_eq!(problems(&c, None), Vec::<String>::new());
}

#[test]
fn toml_plugin_problems_name_the_setting() {
    let text = "watch = '/w'\n[rsync]\nparams = '-a'\n[[plugin]]\nname = 'command'\n\
                [plugin.settings]\n'param.prefix' = '$HOME/x'\n'param.timeout' = '5'\n";
    let c = match parse(text.as_bytes(), Path::new("agent.toml")) {
        Ok(c) => c,
        Err(e) => panic!("{e}"),
    };
    let found = problems(&c, Some("command"));
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(
        found[0].starts_with("agent.toml:7: `plugin.settings.param.prefix`: command plugin: '$'"),
        "{}",
        found[0]
    );
    let found = problems(&c, None);
    assert!(
        found.iter().any(|e| e.contains("`remote`: no remote")),
        "{found:?}"
    );
    let bad = text.replace("'5'", "'0'");
    let e = parse(bad.as_bytes(), Path::new("agent.toml")).unwrap_err();
    assert!(e.to_string().contains("0 seconds"), "{e}");
}
