//! Confinement on the read side: a pull never sends a byte from outside the module. The
//! module (with `use chroot = no`, the reference config's and the dangerous case) holds
//! planted symlinks leading out of it: to a directory and a file beside the module
//! holding a sentinel string, relative (`../outside`) and through a sub-directory, and
//! absolute to `/etc` and `/etc/passwd`. Pulls name paths through them, with `..`, via
//! `--files-from` with absolute and `../` names, and with the options that follow links
//! (`-L`, `-k`, `--copy-unsafe-links`). Each case is compared with stock (which refuses
//! or skips all of these), and on both sides no pulled file, and nothing the client
//! printed, may hold the sentinel or a line of `/etc/passwd`.

use std::path::Path;

use e2e::Fixture;
use e2e::tree::write_file;

use crate::pull::{Pair, Pull, Pulled, assert_same_pulls, pull, pull_differences};
use crate::pull_tree::pull_tree;
use crate::push::{T0, fix_dir_times, symlink};

/// What the file outside the module holds.
const SENTINEL: &str = "SENTINEL-OUTSIDE-THE-MODULE";

/// What `/etc/passwd` holds.
const PASSWD: &str = "root:x:0:0:";

/// The pull tree with the planted symlinks, a directory `outside` beside the module with
/// the sentinel file (readable by the daemon's user), and a module `plain` serving the
/// same directory without `fake super` (see `pull_options` for why `-L` needs it).
fn planted(f: &mut Fixture) {
    let m = f.module_dir();
    pull_tree(&m);
    write_file(
        &f.dir().join("outside"),
        "passwd",
        SENTINEL.as_bytes(),
        0o644,
        T0,
    );
    symlink("../outside", &m.join("secret"));
    symlink("../outside/passwd", &m.join("secret-file"));
    symlink("../../outside/passwd", &m.join("sub/deep-secret"));
    symlink("../../outside", &m.join("sub/deep-dir"));
    symlink("/etc", &m.join("etc"));
    symlink("/etc/passwd", &m.join("passwd"));
    fix_dir_times(&m, T0 + 100);
    let path = m.display().to_string();
    f.add_module("plain", &[("path", &path), ("fake super", "no")]);
    f.add_module(
        "nomunge",
        &[
            ("path", &path),
            ("fake super", "no"),
            ("munge symlinks", "no"),
        ],
    );
}

/// A `--files-from` list of names that lead outside.
fn escaping_list(client: &Path) {
    std::fs::write(
        client.join("list"),
        "/etc/passwd\n../outside/passwd\nsub/../../outside/passwd\nsecret/passwd\n1.txt\n",
    )
    .expect("write list");
}

/// Where on a side the sentinel or a line of `/etc/passwd` shows: pulled files (not
/// symlinks, whose targets may name the outside harmlessly) and the client's output.
fn leaks(p: &Pulled) -> Vec<String> {
    let mut found = Vec::new();
    for (name, e) in &p.tree {
        let text = String::from_utf8_lossy(&e.content);
        if e.kind != 'l' && (text.contains(SENTINEL) || text.contains(PASSWD)) {
            found.push(format!(
                "{:?}: {name} holds a file from outside the module",
                p.kind
            ));
        }
    }
    for out in [&p.outcome.stdout, &p.outcome.stderr] {
        if out.contains(SENTINEL) || out.contains(PASSWD) {
            found.push(format!(
                "{:?}: the client printed outside content: {out}",
                p.kind
            ));
        }
    }
    found
}

/// A pull that must leak nothing, compared with stock.
fn case(name: &str, opts: &[&str], src: &str, code: i32) -> Pull {
    let mut opts: Vec<&str> = opts.to_vec();
    opts.push("-i");
    pull(name, &opts, src).code(code)
}

/// How a case's two sides are held against each other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Held {
    /// Everything compared.
    Same,
    /// Only the leaks looked for.
    LeaksOnly,
    /// The documented difference (`docs/ARCHITECTURE.md`, "`-L` stays in the module"):
    /// where stock stats a link's target outside the module (then refuses to read it),
    /// rsyncd-rs never looks outside. The exit code must agree and rsyncd-rs must pull
    /// nothing stock does not.
    OutsideNeverLookedAt,
}

/// Runs each case: on both sides nothing leaks, and the sides agree as `Held` says.
fn run_safety(pair: &Pair, cases: Vec<(Pull, Held)>) {
    e2e::run_cases(cases.iter().map(|(p, held)| {
        (p.name.clone(), move || {
            let sides = pair.pull(p);
            let mut found: Vec<String> = sides.iter().flat_map(leaks).collect();
            match held {
                Held::Same => found.extend(pull_differences(p, &sides)),
                Held::LeaksOnly => {}
                Held::OutsideNeverLookedAt => {
                    let [stock, ours] = &sides;
                    if stock.outcome.code != ours.outcome.code {
                        found.push(format!(
                            "exit {} (stock) vs {} (ours): {:#?}",
                            stock.outcome.code, ours.outcome.code, ours.outcome
                        ));
                    }
                    for name in ours.tree.keys() {
                        if !stock.tree.contains_key(name) {
                            found.push(format!("{name}: pulled by ours only"));
                        }
                    }
                }
            }
            assert!(found.is_empty(), "{}", found.join("\n"));
        })
    }));
}

/// The cases, each held as `held`.
fn held(cases: Vec<Pull>, held: Held) -> Vec<(Pull, Held)> {
    cases.into_iter().map(|p| (p, held)).collect()
}

/// Paths through the planted links, `..` in the requested path, and `--files-from` with
/// names leading outside, without following links.
#[test]
fn paths_through_planted_links_and_dot_dots() {
    let pair = Pair::start(planted);
    let listed = |name: &str, code: i32| {
        Pull {
            opts: vec!["-a".into(), "-i".into(), "--files-from=list".into()],
            ..pull(name, &[], "backup/")
        }
        .prepare(escaping_list)
        .code(code)
    };
    let mut cases = held(
        vec![
            case(
                "a file through a dir link",
                &["-a"],
                "backup/secret/passwd",
                23,
            ),
            case("a dir link's contents", &["-a"], "backup/secret/", 23),
            case(
                "through a link in a sub-directory",
                &["-a"],
                "backup/sub/deep-dir/passwd",
                23,
            ),
            case("/etc through a link", &["-a"], "backup/etc/passwd", 23),
            case("the links themselves", &["-a"], "backup/", 0),
            case("-r without -l", &["-r"], "backup/", 0),
            case("backup/../", &["-a"], "backup/../", 0),
            case("backup/sub/../../x", &["-a"], "backup/sub/../../x", 23),
            case(
                "backup/../outside/passwd",
                &["-a"],
                "backup/../outside/passwd",
                23,
            ),
            case(
                "backup/sub/../../outside/",
                &["-a"],
                "backup/sub/../../outside/",
                23,
            ),
            case(
                "-R through a dir link",
                &["-a", "-R"],
                "backup/secret/passwd",
                23,
            ),
            case(
                "a wildcard through a dir link",
                &["-a"],
                "backup/secret/*",
                23,
            ),
            listed("--files-from with names leading outside", 23),
            Pull {
                opts: vec![
                    "-a".into(),
                    "-i".into(),
                    "-r".into(),
                    "--files-from=list".into(),
                ],
                ..listed("--files-from -r with names leading outside", 23)
            },
        ],
        Held::Same,
    );
    // Stock's glob stats each link's target, outside too, to tell directories.
    cases.extend(held(
        vec![case(
            "a wildcard over dir links",
            &["-a"],
            "backup/*/passwd",
            23,
        )],
        Held::OutsideNeverLookedAt,
    ));
    run_safety(&pair, cases);
}

/// The options that follow links: `-L`, `-k`, `--copy-unsafe-links`, on the module
/// without fake super (where stock follows links inside the module), and with munging
/// off as well; and `-L` on the reference module, where stock reports every file as
/// vanished (see `pull_options`): there only the absence of leaks is asserted. Links
/// that lead out of the module are where rsyncd-rs differs by design (it never stats
/// their targets), so these cases hold it to stock's exit code and to pulling nothing
/// stock does not.
#[test]
fn options_that_follow_links() {
    let pair = Pair::start(planted);
    let mut cases = Vec::new();
    for module in ["plain", "nomunge"] {
        let src = |path: &str| format!("{module}/{path}");
        let named = |what: &str| format!("{module}: {what}");
        cases.extend([
            case(&named("-L the module"), &["-a", "-L"], &src(""), 23),
            case(
                &named("-L a file through a dir link"),
                &["-a", "-L"],
                &src("secret/passwd"),
                23,
            ),
            case(
                &named("-L a file link"),
                &["-a", "-L"],
                &src("secret-file"),
                23,
            ),
            case(&named("-L /etc/passwd"), &["-a", "-L"], &src("passwd"), 23),
            case(&named("-L a deep link"), &["-a", "-L"], &src("sub/"), 23),
            case(
                &named("--copy-unsafe-links the module"),
                &["-a", "--copy-unsafe-links"],
                &src(""),
                23,
            ),
            case(
                &named("--copy-dirlinks -R"),
                &["-a", "-k", "-R"],
                &src("secret/passwd"),
                23,
            ),
        ]);
    }
    let reference = vec![
        case("-L on the reference module", &["-a", "-L"], "backup/", 23),
        case(
            "-L through a dir link on the reference module",
            &["-a", "-L"],
            "backup/secret/",
            23,
        ),
    ];
    let mut all = held(cases, Held::OutsideNeverLookedAt);
    all.extend(held(reference, Held::LeaksOnly));
    // With -k stock stats each link's target to learn whether it is a directory, outside
    // too: `etc -> /etc` becomes a directory whose listing then fails. rsyncd-rs asks the
    // kernel that one bit and nothing else (the directory gets the link's own times).
    for module in ["plain", "nomunge"] {
        all.push((
            case(
                &format!("{module}: -k the module"),
                &["-a", "-k"],
                &format!("{module}/"),
                23,
            ),
            Held::OutsideNeverLookedAt,
        ));
    }
    run_safety(&pair, all);
}

/// A symlink in the module retargeted at a file outside between two pulls of a tree
/// that holds it: the second pull, with `-L`, must not send the new target's bytes.
#[test]
fn a_link_retargeted_outside_between_pulls() {
    let pair = Pair::start(planted);
    let first = case("first", &["-a", "-L"], "plain/sub/dir/", 0);
    assert_same_pulls(&first, &pair.pull(&first));
    pair.each_module(|m| {
        symlink("../../../outside/passwd", &m.join("sub/dir/up-link"));
        fix_dir_times(m, T0 + 100);
    });
    let second = case("after the retarget", &["-a", "-L"], "plain/sub/dir/", 23);
    run_safety(&pair, held(vec![second], Held::OutsideNeverLookedAt));
}
