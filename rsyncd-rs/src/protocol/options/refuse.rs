//! `refuse options`: which rows of the option table a daemon module refuses
//! (upstream: options.c set_refuse_options(), parse_one_refuse_match()).

use super::table::{OPTIONS, OptDef};
use crate::wildmatch::wildmatch;

/// The refusal state of every row of [`OPTIONS`].
#[derive(Debug, Clone)]
pub struct Refusals {
    refused: Vec<bool>,
    /// `refuse options` tokens that matched no option (upstream logs them).
    pub unmatched: Vec<String>,
}

impl Refusals {
    /// Nothing refused: what a non-daemon server uses.
    pub fn none() -> Refusals {
        Refusals {
            refused: vec![false; OPTIONS.len()],
            unmatched: Vec::new(),
        }
    }

    /// Builds the refusals of a daemon module from its `refuse options` value. On top of
    /// the module's list a daemon always refuses `--copy-devices` and `--write-devices`
    /// (unless negated), `--log-file*`, `--insecure-links`, `--iconv` (we have no charset
    /// support) and `--crtimes` (Linux cannot set creation times).
    pub fn for_daemon(refuse_options: &str) -> Refusals {
        let mut r = Refusals::none();
        r.apply(false, "copy-devices");
        r.apply(false, "write-devices");
        for token in refuse_options.split(' ').filter(|t| !t.is_empty()) {
            match token.strip_prefix('!') {
                Some(rest) if !rest.is_empty() => r.apply(true, rest),
                _ => r.apply(false, token),
            }
        }
        for forced in ["iconv", "log-file*", "insecure-links", "crtimes"] {
            r.apply(false, forced);
        }
        r
    }

    /// Whether row `i` is refused.
    pub fn is_refused(&self, i: usize) -> bool {
        self.refused.get(i).copied().unwrap_or(false)
    }

    /// The first refused row whose key is `key`, if any (for the implied refusals such as
    /// `compress` refusing `--new-compress`).
    pub fn refused_key(&self, key: &str) -> Option<usize> {
        OPTIONS
            .iter()
            .enumerate()
            .position(|(i, o)| o.key == key && self.is_refused(i))
    }

    /// Whether any row with a short letter in `letters` is refused; returns the first.
    pub fn refused_short(&self, letters: &str) -> Option<usize> {
        OPTIONS
            .iter()
            .enumerate()
            .find(|(i, o)| o.short.is_some_and(|c| letters.contains(c)) && self.is_refused(*i))
            .map(|(i, _)| i)
    }

    /// Applies one token. Upstream: options.c, parse_one_refuse_match().
    fn apply(&mut self, negated: bool, token: &str) {
        let (pattern, mut is_wild) = (token, token.contains(['*', '?', '[']));
        let pattern = if pattern == "a" || pattern == "archive" {
            is_wild = true;
            "[ardlptgoD]"
        } else {
            pattern
        };
        let mut found = false;
        let mut exact_match = None;
        for (i, o) in OPTIONS.iter().enumerate() {
            if !matches_row(pattern, o) {
                continue;
            }
            found = true;
            if !o.exact_only || !is_wild {
                self.refused[i] = !negated;
            }
            if !is_wild {
                exact_match = Some(i);
                break;
            }
        }
        // An exact name refuses the capability, whatever its spelling.
        if let Some(m) = exact_match {
            let key = OPTIONS[m].key;
            for (i, o) in OPTIONS.iter().enumerate() {
                if i != m && o.key == key {
                    self.refused[i] = !negated;
                }
            }
        }
        if !found {
            self.unmatched.push(token.to_string());
        }
    }
}

fn matches_row(pattern: &str, o: &OptDef) -> bool {
    let by_long = o
        .long
        .is_some_and(|l| wildmatch(pattern.as_bytes(), l.as_bytes()));
    let by_short = o.short.is_some_and(|c| {
        let mut b = [0u8; 4];
        wildmatch(pattern.as_bytes(), c.encode_utf8(&mut b).as_bytes())
    });
    by_long || by_short
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::options::table::{by_long, by_short};

    fn refused(r: &Refusals, long: &str) -> bool {
        r.is_refused(by_long(long).unwrap())
    }

    #[test]
    fn daemon_defaults() {
        let r = Refusals::for_daemon("");
        assert!(refused(&r, "copy-devices"));
        assert!(refused(&r, "write-devices"));
        assert!(refused(&r, "log-file"));
        assert!(refused(&r, "log-file-format"));
        assert!(!refused(&r, "delete"));
        let r = Refusals::for_daemon("!copy-devices");
        assert!(!refused(&r, "copy-devices"));
    }

    #[test]
    fn exact_names_refuse_every_spelling() {
        let r = Refusals::for_daemon("delete-during");
        assert!(refused(&r, "delete-during"));
        assert!(refused(&r, "del"));
        assert!(!refused(&r, "delete"));
        let r = Refusals::for_daemon("checksum-choice");
        assert!(refused(&r, "cc"));
    }

    #[test]
    fn wildcards_and_archive() {
        let r = Refusals::for_daemon("delete*");
        assert!(refused(&r, "delete"));
        assert!(refused(&r, "delete-after"));
        assert!(!refused(&r, "del"));
        let r = Refusals::for_daemon("a");
        for c in "rdlptgoD".chars() {
            assert!(r.is_refused(by_short(c).unwrap()), "{c}");
        }
        // Wildcards never reach exact-only rows.
        let r = Refusals::for_daemon("*");
        assert!(!refused(&r, "server"));
        assert!(!refused(&r, "dry-run"));
        assert!(refused(&r, "verbose"));
        let r = Refusals::for_daemon("nosuchoption");
        assert_eq!(r.unmatched, ["nosuchoption"]);
    }
}
