//! `--chmod` and the daemon's `incoming chmod`/`outgoing chmod`: permission changes
//! applied to modes as files are sent or received.
//!
//! Upstream: chmod.c, parse_chmod() and tweak_mode(); clientserver.c, rsync_module() for
//! the daemon's rules, which are appended after the client's so they win, and which a
//! receiver also applies on their own when the client did not ask for `--perms`.

/// The permission bits a rule may touch (upstream CHMOD_BITS).
const CHMOD_BITS: u32 = 0o7777;
const S_IFMT: u32 = 0o170000;
const S_IFDIR: u32 = 0o040000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Add,
    Sub,
    Eq,
    Set,
}

/// One clause, as the AND/OR masks upstream reduces it to.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Clause {
    and: u32,
    or: u32,
    /// Who to copy permission bits from (`g=u`), as `where` bits (0o100 u, 0o010 g,
    /// 0o001 o), who to copy them to, and the mask applied to the copy.
    copy_src: u32,
    copy_dst: u32,
    copy_and: u32,
    op: Op,
    dirs_only: bool,
    files_only: bool,
    /// `X`: execute only for directories or what is already executable by someone.
    x_keep: bool,
}

/// An ordered list of chmod clauses. Later clauses apply after earlier ones.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ChmodRules(Vec<Clause>);

/// A chmod string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid argument passed to --chmod ({text})")]
pub struct ChmodError {
    text: String,
}

impl ChmodError {
    /// The line the daemon logs for a bad `incoming chmod` (or `outgoing chmod`)
    /// parameter; upstream then goes on without the daemon's rules.
    pub fn daemon_log_line(&self, incoming: bool) -> String {
        let dir = if incoming { "incom" } else { "outgo" };
        format!("Invalid \"{dir}ing chmod\" directive: {}", self.text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    FirstHalf,
    SecondHalf,
    OctalNum,
    Error,
}

/// The special bit each `where` bit owns, for `=` with a copy (`g=u` clears setgid).
fn dest_special_bits(who: u32) -> u32 {
    let mut bits = 0;
    if who & 0o100 != 0 {
        bits |= 0o4000;
    }
    if who & 0o010 != 0 {
        bits |= 0o2000;
    }
    if who & 0o001 != 0 {
        bits |= 0o1000;
    }
    bits
}

/// The process umask. POSIX offers no way to read it but setting it, so it is set and put
/// back; call this once, before a session starts threads that create files (they would
/// see the temporary value).
pub fn process_umask() -> u32 {
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o022));
    nix::sys::stat::umask(old);
    old.bits()
}

/// Parses a chmod string: comma-separated clauses, each an optional `D` (directories
/// only) or `F` (files only), then either an octal mode, or `ugoa` letters, an
/// operator `+`, `-` or `=` and `rwxXst` letters or one of `ugo` to copy from. Without
/// `ugoa` the bits are masked by `umask`, as chmod(1) and upstream do (upstream uses
/// the process umask, so pass the daemon's).
///
/// Upstream: chmod.c, parse_chmod().
pub fn parse_chmod(text: &str, umask: u32) -> Result<ChmodRules, ChmodError> {
    let b = text.as_bytes();
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    let mut out = Vec::new();
    let mut state = State::FirstHalf;
    let (mut who, mut what, mut topbits, mut topoct, mut copybits) = (0u32, 0u32, 0u32, 0u32, 0u32);
    let mut op: Option<Op> = None;
    let (mut dirs_only, mut files_only, mut x_keep) = (false, false, false);
    let mut i = 0;
    while state != State::Error {
        let mut c = at(i);
        if c == 0 || c == b',' {
            let Some(this_op) = op else {
                state = State::Error;
                break;
            };
            let who_given = who != 0;
            let bits = if who_given {
                who * what
            } else {
                who = 0o111;
                (who * what) & !umask
            };
            let copy_and = if who_given { CHMOD_BITS } else { !umask };
            let (and, or, copy_src, copy_dst, copy_and) = match this_op {
                Op::Add => (CHMOD_BITS, bits + topoct, copybits, who, copy_and),
                Op::Sub => (CHMOD_BITS - bits - topoct, 0, copybits, who, copy_and),
                Op::Eq => {
                    let top = if topoct != 0 { topbits } else { 0 };
                    let special = if copybits != 0 {
                        dest_special_bits(who)
                    } else {
                        0
                    };
                    let and = CHMOD_BITS.saturating_sub(who * 7 + top + special);
                    (and, bits + topoct, copybits, who, copy_and)
                }
                Op::Set => (0, bits, 0, 0, CHMOD_BITS),
            };
            out.push(Clause {
                and,
                or,
                copy_src,
                copy_dst,
                copy_and,
                op: this_op,
                dirs_only,
                files_only,
                x_keep,
            });
            if c == 0 {
                break;
            }
            // Past the comma; the next clause starts at the following byte.
            i += 1;
            c = at(i);
            state = State::FirstHalf;
            (who, what, topbits, topoct, copybits) = (0, 0, 0, 0, 0);
            op = None;
            (dirs_only, files_only, x_keep) = (false, false, false);
        }
        state = match state {
            State::FirstHalf => match c {
                b'D' if !files_only => {
                    dirs_only = true;
                    state
                }
                b'F' if !dirs_only => {
                    files_only = true;
                    state
                }
                b'u' | b'g' | b'o' | b'a' => {
                    let (w, t) = match c {
                        b'u' => (0o100, 0o4000),
                        b'g' => (0o010, 0o2000),
                        b'o' => (0o001, 0),
                        // a+s sets both setuid and setgid, as chmod(1).
                        _ => (0o111, 0o6000),
                    };
                    who |= w;
                    topbits |= t;
                    state
                }
                b'+' | b'-' | b'=' => {
                    op = Some(match c {
                        b'+' => Op::Add,
                        b'-' => Op::Sub,
                        _ => Op::Eq,
                    });
                    State::SecondHalf
                }
                b'0'..=b'7' if who == 0 => {
                    op = Some(Op::Set);
                    who = 1;
                    what = u32::from(c - b'0');
                    State::OctalNum
                }
                _ => State::Error,
            },
            State::SecondHalf => match c {
                b'r' | b'w' | b'x' | b'X' | b's' | b't' if copybits != 0 => State::Error,
                b'r' => {
                    what |= 4;
                    state
                }
                b'w' => {
                    what |= 2;
                    state
                }
                b'x' | b'X' => {
                    x_keep |= c == b'X';
                    what |= 1;
                    state
                }
                b's' => {
                    // Without u or g (or with only o) it is setuid.
                    topoct = if topbits != 0 {
                        topoct | topbits
                    } else {
                        0o4000
                    };
                    state
                }
                b't' => {
                    topoct |= 0o1000;
                    state
                }
                b'u' | b'g' | b'o' if what != 0 || topoct != 0 || copybits != 0 => State::Error,
                b'u' => {
                    copybits = 0o100;
                    state
                }
                b'g' => {
                    copybits = 0o010;
                    state
                }
                b'o' => {
                    copybits = 0o001;
                    state
                }
                _ => State::Error,
            },
            State::OctalNum => match c {
                b'0'..=b'7' => {
                    what = what * 8 + u32::from(c - b'0');
                    if what > CHMOD_BITS {
                        State::Error
                    } else {
                        state
                    }
                }
                _ => State::Error,
            },
            State::Error => State::Error,
        };
        i += 1;
    }
    if state == State::Error {
        return Err(ChmodError {
            text: text.to_string(),
        });
    }
    Ok(ChmodRules(out))
}

impl ChmodRules {
    /// No changes.
    pub fn new() -> ChmodRules {
        ChmodRules::default()
    }

    /// Whether there are no clauses.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Appends `more` after these rules, so it has the last word (upstream appends each
    /// `--chmod`, then the daemon's `incoming chmod`, to one list).
    pub fn append(&mut self, more: ChmodRules) {
        self.0.extend(more.0);
    }

    /// The mode with the clauses applied in order; the file-type bits are kept, and
    /// `D`/`F` clauses apply to directories/non-directories only.
    ///
    /// Upstream: chmod.c, tweak_mode().
    pub fn apply(&self, mode: u32) -> u32 {
        let was_x = mode & 0o111 != 0;
        let non_perm = mode & !CHMOD_BITS;
        let is_dir = non_perm & S_IFMT == S_IFDIR;
        let mut mode = mode;
        for c in &self.0 {
            if (c.dirs_only && !is_dir) || (c.files_only && is_dir) {
                continue;
            }
            let copy = copy_bits(mode, c);
            mode &= c.and;
            mode |= if c.x_keep && !was_x && !is_dir {
                c.or & !0o111
            } else {
                c.or
            };
            if c.op == Op::Sub {
                mode &= CHMOD_BITS & !copy;
            } else {
                mode |= copy;
            }
        }
        mode | non_perm
    }
}

/// The permission bits `c` copies (from `u`, `g` or `o` of `mode`) to its targets.
fn copy_bits(mode: u32, c: &Clause) -> u32 {
    let mut bits = 0;
    if c.copy_src & 0o100 != 0 {
        bits |= (mode >> 6) & 7;
    }
    if c.copy_src & 0o010 != 0 {
        bits |= (mode >> 3) & 7;
    }
    if c.copy_src & 0o001 != 0 {
        bits |= mode & 7;
    }
    (c.copy_dst * bits) & c.copy_and
}

#[cfg(test)]
mod tests {
    //! Each case checked with rsync 3.5.0 under umask 022:
    //!
    //! ```text
    //! touch s/t (or mkdir s/t); chmod MODE s/t
    //! rsync -r --perms --chmod=SPEC s/ d/; stat -c %a d/t
    //! ```
    use super::*;
    use proptest::prelude::*;

    const FILE: u32 = 0o100000;
    const DIR: u32 = S_IFDIR;

    #[test]
    fn tweaks_like_upstream() {
        let cases: &[(&str, u32, u32, u32)] = &[
            // (spec, file type, mode before, mode after)
            ("u+x", FILE, 0o644, 0o744),
            ("+x", FILE, 0o644, 0o755),
            ("g+w", FILE, 0o644, 0o664),
            // Without ugoa the umask masks the bits.
            ("+w", FILE, 0o644, 0o644),
            ("-w", FILE, 0o666, 0o466),
            ("=w", FILE, 0o777, 0o200),
            ("a+w", FILE, 0o644, 0o666),
            ("o-r", FILE, 0o644, 0o640),
            ("go-rwx", FILE, 0o644, 0o600),
            ("u=rw,go=r", FILE, 0o777, 0o644),
            ("=r", FILE, 0o777, 0o444),
            ("=", FILE, 0o755, 0),
            ("755", FILE, 0o600, 0o755),
            ("0644", FILE, 0o777, 0o644),
            ("07777", FILE, 0, 0o7777),
            ("D755,F644", DIR, 0o700, 0o755),
            ("D755,F644", FILE, 0o600, 0o644),
            ("Dg+s", DIR, 0o755, 0o2755),
            ("Dg+s", FILE, 0o755, 0o755),
            ("F-w,D+t", FILE, 0o644, 0o444),
            ("+t", DIR, 0o755, 0o1755),
            ("a+X", FILE, 0o644, 0o644),
            ("a+X", FILE, 0o744, 0o755),
            ("a+X", DIR, 0o644, 0o755),
            ("+X", FILE, 0o700, 0o711),
            ("u+s", FILE, 0o755, 0o4755),
            ("g+s", FILE, 0o755, 0o2755),
            ("+s", FILE, 0o755, 0o4755),
            ("a+s", FILE, 0o755, 0o6755),
            ("o+s", FILE, 0o755, 0o4755),
            ("u-s", FILE, 0o4755, 0o755),
            ("g=u", FILE, 0o640, 0o660),
            ("g=u", FILE, 0o2750, 0o770),
            ("u=g", FILE, 0o4750, 0o550),
            ("o=g", FILE, 0o750, 0o755),
            ("=g", FILE, 0o750, 0o555),
            ("u+g", FILE, 0o460, 0o660),
            ("+g", FILE, 0o460, 0o664),
            ("go-u", FILE, 0o755, 0o700),
            ("-u", FILE, 0o777, 0o022),
            ("u+x,g-w", FILE, 0o664, 0o744),
            ("u+s,g+u", FILE, 0o644, 0o4664),
        ];
        for (spec, kind, before, after) in cases {
            let rules = parse_chmod(spec, 0o022);
            assert_eq!(
                rules.map(|r| r.apply(kind | before)),
                Ok(kind | after),
                "{spec} on {before:o}"
            );
        }
    }

    #[test]
    fn bad_strings_are_refused() {
        for spec in [
            "", "u", "u+q", "u+r,", ",u+r", "8", "u7", "u+ur", "u+ru", "17777", "DF+x", "FD+x",
            "u+x,,g+x", "g+us",
        ] {
            let e = parse_chmod(spec, 0o022);
            assert_eq!(
                e.map_err(|e| e.to_string()),
                Err(format!("Invalid argument passed to --chmod ({spec})")),
                "{spec:?}"
            );
        }
        let e = parse_chmod("x", 0).err().map(|e| e.daemon_log_line(true));
        assert_eq!(
            e.as_deref(),
            Some("Invalid \"incoming chmod\" directive: x")
        );
    }

    #[test]
    fn the_daemons_rules_come_last_and_win() {
        // --chmod=o+w from the client, `incoming chmod = o-w` in the module.
        let mut rules = parse_chmod("o+w", 0o022).unwrap_or_default();
        rules.append(parse_chmod("o-w", 0o022).unwrap_or_default());
        assert_eq!(rules.apply(FILE | 0o644), FILE | 0o644);
        assert!(ChmodRules::new().is_empty());
        assert_eq!(ChmodRules::new().apply(DIR | 0o2755), DIR | 0o2755);
    }

    proptest! {
        #[test]
        fn never_panics_and_keeps_the_file_type(spec in "[DFugoa+=,rwxXst0-9-]{0,12}", mode in any::<u32>(), umask in 0u32..0o1000) {
            if let Ok(rules) = parse_chmod(&spec, umask) {
                prop_assert_eq!(rules.apply(mode) & !CHMOD_BITS, mode & !CHMOD_BITS);
            }
        }
    }
}
