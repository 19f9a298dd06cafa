//! `--usermap` and `--groupmap` (and `--chown`, which a client sends as `*:USER` and
//! `*:GROUP` maps): which local id a sender's id or name becomes. Upstream: uidlist.c,
//! parse_name_map() and recv_add_id().

use std::fs::File;
use std::io::{Read, Write};

use crate::wildmatch::wildmatch;

/// What a map rule matches.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Match {
    /// The sender's name exactly.
    Name(Vec<u8>),
    /// The sender's name against a wildcard pattern (`*` matches a missing name too).
    Wild(Vec<u8>),
    /// The sender's id, or a range of them.
    Ids(u32, u32),
}

/// One `--usermap`/`--groupmap` list, in order (the first matching rule wins).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NameMap(Vec<(Match, u32)>);

/// A map text that does not parse (the session ends with a syntax error).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MapError(pub String);

impl NameMap {
    /// Parses `FROM:TO[,FROM:TO...]`: FROM a name, a wildcard pattern, an id or an id
    /// range `N-M`; TO a local name or id. A TO name this system does not know is
    /// reported through `unknown` and its rule dropped, as upstream does.
    pub fn parse(
        text: &str,
        users: bool,
        unknown: &mut dyn FnMut(String),
    ) -> Result<NameMap, MapError> {
        let which = if users { "user" } else { "group" };
        let mut rules = Vec::new();
        for item in text.split(',') {
            let Some((from, to)) = item.split_once(':') else {
                return Err(MapError(format!("No colon found in --{which}map: {item}")));
            };
            if to.is_empty() {
                return Err(MapError(format!(
                    "No name found after colon --{which}map: {item}"
                )));
            }
            let m = if from.starts_with(|c: char| c.is_ascii_digit()) {
                let bad = || MapError(format!("Invalid number in --{which}map: {from}"));
                if !from.bytes().all(|b| b.is_ascii_digit() || b == b'-') {
                    return Err(bad());
                }
                match from.split_once('-') {
                    Some((lo, hi)) if !hi.is_empty() && !hi.contains('-') => Match::Ids(
                        lo.parse().map_err(|_| bad())?,
                        hi.parse().map_err(|_| bad())?,
                    ),
                    Some(_) => return Err(bad()),
                    None => {
                        let id = from.parse().map_err(|_| bad())?;
                        Match::Ids(id, id)
                    }
                }
            } else if from.contains(['*', '[', '?']) {
                Match::Wild(from.as_bytes().to_vec())
            } else {
                Match::Name(from.as_bytes().to_vec())
            };
            match local_id(to, users) {
                Some(id) => rules.push((m, id)),
                None => unknown(format!("Unknown --{which}map name on receiver: {to}")),
            }
        }
        Ok(NameMap(rules))
    }

    /// The local id for the sender's `id` (and `name`, empty when it sent none).
    pub fn lookup(&self, id: u32, name: &[u8]) -> Option<u32> {
        self.0.iter().find_map(|(m, to)| {
            let hit = match m {
                Match::Name(n) => n == name,
                Match::Wild(p) => wildmatch(p, name),
                Match::Ids(lo, hi) => (*lo..=*hi).contains(&id),
            };
            hit.then_some(*to)
        })
    }
}

/// A daemon module's `name converter`: a program that answers one line per request line
/// (`usr NAME` and `grp NAME` for a name's id, `uid ID` and `gid ID` for an id's name).
/// Upstream: clientserver.c, namecvt_call().
#[derive(Debug)]
pub struct NameConverter {
    requests: File,
    answers: File,
}

/// The longest request or answer line, with its newline (upstream's buffer).
const NAMECVT_LINE_MAX: usize = 1024;

impl NameConverter {
    /// Talks to a converter through its standard input and output.
    pub fn new(requests: File, answers: File) -> NameConverter {
        NameConverter { requests, answers }
    }

    /// Asks for the id of `name` (`cmd` is `usr` or `grp`). `Ok(None)` when the converter
    /// does not know it or is gone (the caller keeps the sender's id); `Err` with the
    /// message to report when the name cannot be put on the converter's line at all.
    pub fn id_of(&mut self, cmd: &str, name: &[u8]) -> Result<Option<u32>, String> {
        // A control character (a newline above all) would let a sender forge requests.
        if name.iter().any(|&b| b < b' ' || b == 0x7f) {
            return Err(format!(
                "invalid name-converter token: {}",
                String::from_utf8_lossy(name)
            ));
        }
        let mut line = format!("{cmd} ").into_bytes();
        line.extend_from_slice(name);
        line.push(b'\n');
        if line.len() >= NAMECVT_LINE_MAX {
            return Err("namecvt_call() request was too large.".into());
        }
        if self.requests.write_all(&line).is_err() {
            return Ok(None);
        }
        let Some(answer) = self.read_line() else {
            return Ok(None);
        };
        // An empty or non-numeric answer means "unknown", never uid 0.
        if answer.is_empty() || !answer.iter().all(u8::is_ascii_digit) {
            return Ok(None);
        }
        Ok(std::str::from_utf8(&answer)
            .ok()
            .and_then(|t| t.parse::<u32>().ok()))
    }

    /// One answer line without its newline (and a CR before it); `None` at end of file or
    /// on a line longer than the buffer.
    fn read_line(&mut self) -> Option<Vec<u8>> {
        let mut line = Vec::new();
        let mut byte = [0u8; 1];
        loop {
            match self.answers.read(&mut byte) {
                Ok(1) if byte[0] == b'\n' => break,
                Ok(1) => {
                    if line.len() >= NAMECVT_LINE_MAX {
                        return None;
                    }
                    line.push(byte[0]);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                _ => return None,
            }
        }
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        Some(line)
    }
}

/// A name or number as a local id.
fn local_id(text: &str, users: bool) -> Option<u32> {
    if let Ok(n) = text.parse::<u32>() {
        return Some(n);
    }
    if users {
        uzers::get_user_by_name(text).map(|u| u.uid())
    } else {
        uzers::get_group_by_name(text).map(|g| g.gid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<NameMap, MapError> {
        NameMap::parse(text, false, &mut |_| {})
    }

    /// A converter answering `usr alice` with 1234, `usr root0` with a non-number and
    /// everything else with an empty line; it logs each request to `log`.
    fn converter(log: &std::path::Path) -> (NameConverter, std::process::Child) {
        use std::os::fd::OwnedFd;
        use std::process::{Command, Stdio};
        let script = format!(
            "while read c n; do echo \"$c $n\" >> '{}'; case \"$c $n\" in 'usr alice') echo 1234 ;; 'usr root0') echo 0x1 ;; *) echo ;; esac; done",
            log.display()
        );
        let mut child = Command::new("/bin/sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn sh");
        let req = File::from(OwnedFd::from(child.stdin.take().expect("stdin")));
        let ans = File::from(OwnedFd::from(child.stdout.take().expect("stdout")));
        (NameConverter::new(req, ans), child)
    }

    #[test]
    fn the_converter_answers_names_and_refuses_control_characters() {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = dir.path().join("asked");
        let (mut c, mut child) = converter(&log);
        assert_eq!(c.id_of("usr", b"alice"), Ok(Some(1234)));
        assert_eq!(c.id_of("grp", b"alice"), Ok(None));
        assert_eq!(c.id_of("usr", b"root0"), Ok(None));
        assert_eq!(
            c.id_of("usr", b"bad\nname"),
            Err("invalid name-converter token: bad\nname".to_string())
        );
        assert_eq!(
            c.id_of("usr", &[b'x'; 2000]),
            Err("namecvt_call() request was too large.".to_string())
        );
        drop(c);
        child.wait().expect("wait");
        // The refused names never reached the converter.
        assert_eq!(
            std::fs::read_to_string(&log).expect("log"),
            "usr alice\ngrp alice\nusr root0\n"
        );
    }

    #[test]
    fn the_first_matching_rule_wins() {
        let m = parse("0-9:5,wheel:6,w*:7,*:8").unwrap_or_default();
        assert_eq!(m.lookup(3, b"x"), Some(5));
        assert_eq!(m.lookup(100, b"wheel"), Some(6));
        assert_eq!(m.lookup(100, b"web"), Some(7));
        assert_eq!(m.lookup(100, b""), Some(8));
        assert_eq!(
            parse("*:0").unwrap_or_default().lookup(42, b"anything"),
            Some(0)
        );
    }

    #[test]
    fn malformed_maps_name_the_problem() {
        assert_eq!(
            parse("abc"),
            Err(MapError("No colon found in --groupmap: abc".into()))
        );
        assert_eq!(
            parse("abc:"),
            Err(MapError(
                "No name found after colon --groupmap: abc:".into()
            ))
        );
        assert_eq!(
            parse("1-2-3:0"),
            Err(MapError("Invalid number in --groupmap: 1-2-3".into()))
        );
        let mut unknown = Vec::new();
        let m = NameMap::parse("*:no-such-group-here", false, &mut |t| unknown.push(t));
        assert_eq!(m, Ok(NameMap::default()));
        assert_eq!(
            unknown,
            ["Unknown --groupmap name on receiver: no-such-group-here"]
        );
    }
}
