//! sersync's plugins on the reference confxml.xml: the command plugin beside the pushes
//! and alone (`-m command`, no daemon, no remote), a hostile file name reaching the
//! command as one argument, the socket plugin's lines to a listener, refreshCDN's POST
//! to a small HTTP server (retried after a 500), and `-m` with a name there is not.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use e2e::agent::{Agent, eventually, reference_confxml, reference_confxml_on};
use e2e::{Daemon, Fixture, Server};

use crate::agent::{WAIT, exists, fixture};
use crate::push::src_dir;

/// The command plugin's element in the reference file.
const COMMAND_PARAM: &str = r#"<param prefix="/bin/sh" suffix="" ignoreError="true"/>"#;

/// The reference file for a plugin alone: no remote at all (sersync's `-m` reads
/// none), deletes on, the plugins' own watch paths on `src`.
fn alone(f: &Fixture, src: &Path) -> String {
    // Port 9 (discard): nothing is pushed, so nothing may connect there.
    reference_confxml_on(f, 9, src, true)
        .replace(r#"<remote ip="127.0.0.1" name="backup"/>"#, "")
        .replace(
            r#"<localpath watch="/opt/tongbu">"#,
            &format!(r#"<localpath watch="{}">"#, src.display()),
        )
        .replace(
            r#"<localpath watch="/data0/htdocs/cms.xoyo.com/site/">"#,
            &format!(r#"<localpath watch="{}/">"#, src.display()),
        )
}

/// A script that appends, per run, its argument count, its arguments and the
/// plugin's variables to `log`, each followed by a NUL byte.
fn recorder(f: &Fixture) -> (PathBuf, PathBuf) {
    let script = f.dir().join("record.sh");
    let log = f.dir().join("record.log");
    let text = format!(
        "#!/bin/sh\nprintf '%s\\0' \"$#\" \"$@\" \"$SERSYNC_EVENT\" \"$SERSYNC_PATH\" \
         \"$SERSYNC_REL\" \"$SERSYNC_FROM\" \"$SERSYNC_FROM_REL\" >> '{}'\n",
        log.display()
    );
    std::fs::write(&script, text).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    (script, log)
}

/// One run as the recorder logged it.
#[derive(Debug, PartialEq)]
struct Run {
    args: Vec<String>,
    event: String,
    path: String,
    rel: String,
    from: String,
    from_rel: String,
}

fn runs(log: &Path) -> Vec<Run> {
    let bytes = std::fs::read(log).unwrap_or_default();
    let fields: Vec<String> = bytes
        .split(|&b| b == 0)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let mut out = Vec::new();
    let mut rest = &fields[..];
    while let Some(n) = rest.first().and_then(|n| n.parse::<usize>().ok()) {
        let Some(record) = rest.get(1..1 + n + 5) else {
            break;
        };
        out.push(Run {
            args: record[..n].to_vec(),
            event: record[n].clone(),
            path: record[n + 1].clone(),
            rel: record[n + 2].clone(),
            from: record[n + 3].clone(),
            from_rel: record[n + 4].clone(),
        });
        rest = &rest[1 + n + 5..];
    }
    out
}

fn command_prefix(conf: String, script: &Path, extra: &str) -> String {
    conf.replace(
        COMMAND_PARAM,
        &format!(
            r#"<param prefix="{} first" suffix="--last" ignoreError="false"/>{extra}"#,
            script.display()
        ),
    )
}

/// `-m command`, with no daemon and no remote: a create, a rename and a delete each
/// run the command with the path as an argument and in the environment; nothing is
/// queued for any remote.
#[test]
fn command_plugin_alone_runs_for_create_rename_and_delete() {
    let f = fixture();
    let src = src_dir(&f);
    let (script, log) = recorder(&f);
    let conf = command_prefix(alone(&f, &src), &script, "");
    let agent = Agent::start(&f, &conf, &["-m", "command"]);
    let s = src.display().to_string();
    std::fs::write(src.join("a.txt"), b"a\n").unwrap();
    eventually("the command for a.txt", WAIT, || runs(&log).len() == 1);
    std::fs::rename(src.join("a.txt"), src.join("b.txt")).unwrap();
    eventually("the command for the rename", WAIT, || runs(&log).len() == 2);
    std::fs::remove_file(src.join("b.txt")).unwrap();
    eventually("the command for the delete", WAIT, || runs(&log).len() == 3);
    let run = |args: &[String], event: &str, rel: &str, from_rel: &str| Run {
        args: args.to_vec(),
        event: event.into(),
        path: format!("{s}/{rel}"),
        rel: rel.into(),
        from: if from_rel.is_empty() {
            String::new()
        } else {
            format!("{s}/{from_rel}")
        },
        from_rel: from_rel.into(),
    };
    let args = |rel: &str| vec!["first".to_string(), format!("{s}/{rel}"), "--last".into()];
    assert_eq!(
        runs(&log),
        [
            run(&args("a.txt"), "push", "a.txt", ""),
            run(&args("b.txt"), "rename", "b.txt", "a.txt"),
            run(&args("b.txt"), "delete", "b.txt", ""),
        ],
        "agent log:\n{}",
        agent.log()
    );
    let journals: Vec<_> = std::fs::read_dir(&agent.state_dir)
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".journal"))
        .collect();
    assert!(journals.is_empty(), "nothing queued: {journals:?}");
    assert!(agent.stop().is_some_and(|st| st.success()));
}

/// Turned on in `<sersync>`, the command runs beside the pushes, for the paths its
/// filter includes (a regex on the whole absolute path), while every change is pushed.
#[test]
fn command_plugin_beside_the_pushes_honours_its_filter() {
    let f = fixture();
    let src = src_dir(&f);
    let (script, log) = recorder(&f);
    let d = Daemon::start(Server::Ours, &f);
    let conf = reference_confxml(&f, &d, &src, false)
        .replace(
            r#"<plugin start="false" name="command"/>"#,
            r#"<plugin start="true" name="command"/>"#,
        )
        .replace(
            "<filter start=\"false\">\n\t    <include",
            "<filter start=\"true\">\n\t    <include",
        );
    let conf = command_prefix(conf, &script, "");
    assert!(conf.contains(r#"<filter start="true">"#), "{conf}");
    let agent = Agent::start(&f, &conf, &[]);
    std::fs::write(src.join("x.txt"), b"x\n").unwrap();
    std::fs::write(src.join("y.php"), b"<?php\n").unwrap();
    let m = f.module_dir();
    eventually("both files pushed", WAIT, || {
        exists(&m.join("x.txt")) && exists(&m.join("y.php"))
    });
    eventually("the command for y.php", WAIT, || runs(&log).len() == 1);
    std::thread::sleep(std::time::Duration::from_millis(300));
    let r = runs(&log);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].rel, "y.php");
    // The status file counts the plugin's runs beside the remote's pushes.
    agent.wait_for("the plugin's counters in the status", WAIT, |a| {
        a.status()
            .is_some_and(|s| s["plugins"][0]["plugin"] == "command" && s["plugins"][0]["done"] == 1)
    });
}

/// A file name with blanks, quotes, `$(...)`, shell operators and a newline reaches the
/// command as one argument, byte for byte: no shell ever reads it.
#[test]
fn a_hostile_name_reaches_the_command_as_one_argument() {
    let f = fixture();
    let src = src_dir(&f);
    let (script, log) = recorder(&f);
    let conf = command_prefix(alone(&f, &src), &script, "");
    let _agent = Agent::start(&f, &conf, &["-m", "command"]);
    let name = "a b \"dq\" 'sq' $(echo INJECTED) `echo X`; rm -rf x | cat &\nline2 >out";
    std::fs::write(src.join(name), b"x").unwrap();
    eventually("the command for the hostile name", WAIT, || {
        !runs(&log).is_empty()
    });
    let r = &runs(&log)[0];
    let abs = format!("{}/{name}", src.display());
    assert_eq!(
        r.args,
        ["first".to_string(), abs.clone(), "--last".into()],
        "{r:?}"
    );
    assert_eq!((r.path.as_str(), r.rel.as_str()), (abs.as_str(), name));
    assert!(!src.join("out").exists() && !f.dir().join("out").exists());
}

/// `-m socket`: each change as an `EVENT<TAB>PATH` line on one connection to the
/// configured listener.
#[test]
fn socket_plugin_sends_lines_to_its_listener() {
    let f = fixture();
    let src = src_dir(&f);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let conf = alone(&f, &src).replace(
        r#"<deshost ip="192.168.138.20" port="8009"/>"#,
        &format!(r#"<deshost ip="127.0.0.1" port="{port}"/>"#),
    );
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = lines.clone();
    std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        for l in BufReader::new(s).lines() {
            let Ok(l) = l else { break };
            seen.lock().unwrap().push(l);
        }
    });
    let agent = Agent::start(&f, &conf, &["-m", "socket"]);
    std::fs::write(src.join("f1"), b"1\n").unwrap();
    eventually("the line for f1", WAIT, || lines.lock().unwrap().len() == 1);
    std::fs::rename(src.join("f1"), src.join("f2")).unwrap();
    eventually("the line for the rename", WAIT, || {
        lines.lock().unwrap().len() == 2
    });
    std::fs::remove_file(src.join("f2")).unwrap();
    eventually("the line for the delete", WAIT, || {
        lines.lock().unwrap().len() == 3
    });
    let s = src.display();
    assert_eq!(
        *lines.lock().unwrap(),
        [
            format!("push\t{s}/f1"),
            format!("rename\t{s}/f2\t{s}/f1"),
            format!("delete\t{s}/f2"),
        ],
        "agent log:\n{}",
        agent.log()
    );
}

/// What the test's HTTP server saw: request line, headers and body of each request.
type Requests = Arc<Mutex<Vec<(String, String)>>>;

/// A server answering its requests with `statuses` in turn, one connection each.
fn http_server(statuses: Vec<u16>) -> (u16, Requests) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let seen: Requests = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for status in statuses {
            let Ok((mut s, _)) = l.accept() else { return };
            let mut reader = BufReader::new(s.try_clone().unwrap());
            let mut head = String::new();
            let mut len = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap();
                }
                head.push_str(&line);
            }
            let mut body = vec![0; len];
            reader.read_exact(&mut body).unwrap();
            log.lock()
                .unwrap()
                .push((head, String::from_utf8(body).unwrap()));
            let _ = write!(
                s,
                "HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
        }
    });
    (port, seen)
}

/// `-m refreshCDN`: a new file's URL (sersync's: base, then the path below the watch,
/// percent-encoded) is posted as a form to the interface, and posted again after a 500.
#[test]
fn refresh_cdn_posts_the_urls_and_retries_after_a_500() {
    let f = fixture();
    let src = src_dir(&f);
    let mut statuses = vec![200; 20];
    statuses[0] = 500;
    let (port, requests) = http_server(statuses);
    let conf = alone(&f, &src).replace(
        r#"<cdninfo domainname="ccms.chinacache.com" port="80""#,
        &format!(r#"<cdninfo domainname="127.0.0.1" port="{port}""#),
    );
    let agent = Agent::start(&f, &conf, &["-m", "refreshCDN"]);
    std::fs::write(src.join("a b.jpg"), b"jpg").unwrap();
    eventually("the request and its retry", WAIT, || {
        requests
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, body)| body.contains("a%2520b.jpg"))
            .count()
            == 2
    });
    let seen = requests.lock().unwrap();
    let (head, body) = seen
        .iter()
        .find(|(_, b)| b.contains("a%2520b.jpg"))
        .unwrap();
    assert!(head.starts_with("POST /index.jsp HTTP/1.1\r\n"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/x-www-form-urlencoded"),
        "{head}"
    );
    assert!(
        body.starts_with("user=xxxx&pswd=xxxx&ok=ok&"),
        "{body}\nagent log:\n{}",
        agent.log()
    );
    assert!(
        body.ends_with("&urls=http%3A%2F%2Fpic.xoyo.com%2Fcms%2Fa%2520b.jpg"),
        "{body}"
    );
}

/// `-m` with a name sersync's help lists but never had, or none at all: refused before
/// anything runs, naming the plugins there are.
#[test]
fn an_unknown_mode_is_refused_with_the_valid_names() {
    let f = fixture();
    let conf = f.dir().join("confxml.xml");
    std::fs::write(&conf, alone(&f, &src_dir(&f))).unwrap();
    for mode in ["http", "Command"] {
        let out = std::process::Command::new(e2e::agent::agent_bin())
            .args(["-m", mode, "-o"])
            .arg(&conf)
            .arg("--state-dir")
            .arg(f.dir().join("state"))
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("-m {mode}: no such plugin"))
                && err.contains("command, socket, refreshCDN"),
            "{err}"
        );
    }
}
