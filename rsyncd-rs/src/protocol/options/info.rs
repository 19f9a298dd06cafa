//! The `--info` output levels: what a side mentions (skipped non-regular files, names,
//! deletions, ...). `-v` sets defaults and a client passes the words it changed as
//! `--info=...`. Upstream: options.c, info_words, info_verbosity, parse_output_words().

/// An `--info` word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Info {
    Backup,
    Copy,
    Del,
    Flist,
    Misc,
    Mount,
    Name,
    Nonreg,
    Progress,
    Remove,
    Skip,
    Stats,
    Symsafe,
}

const WORDS: [(&str, Info); 13] = [
    ("BACKUP", Info::Backup),
    ("COPY", Info::Copy),
    ("DEL", Info::Del),
    ("FLIST", Info::Flist),
    ("MISC", Info::Misc),
    ("MOUNT", Info::Mount),
    ("NAME", Info::Name),
    ("NONREG", Info::Nonreg),
    ("PROGRESS", Info::Progress),
    ("REMOVE", Info::Remove),
    ("SKIP", Info::Skip),
    ("STATS", Info::Stats),
    ("SYMSAFE", Info::Symsafe),
];

/// What each `-v` adds (upstream: info_verbosity).
const BY_VERBOSITY: [&str; 3] = [
    "NONREG",
    "COPY,DEL,FLIST,MISC,NAME,STATS,SYMSAFE",
    "BACKUP,MISC2,MOUNT,NAME2,REMOVE,SKIP",
];

/// The largest level a word takes.
const MAX_LEVEL: u8 = 4;

/// Levels of every word, with the priority that set each (a `--info` word beats `-v`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InfoLevels {
    levels: [u8; WORDS.len()],
    priority: [u8; WORDS.len()],
}

/// `-v` defaults.
const DEFAULT_PRIORITY: u8 = 0;
/// Words the client gave.
const USER_PRIORITY: u8 = 2;

impl InfoLevels {
    /// The level of `word`.
    pub fn get(&self, word: Info) -> u8 {
        WORDS
            .iter()
            .position(|(_, w)| *w == word)
            .map_or(0, |i| self.levels[i])
    }

    /// Whether `word` is at least `level`.
    pub fn at_least(&self, word: Info, level: u8) -> bool {
        self.get(word) >= level
    }

    /// Applies a `--info=` value from the client. Unknown words are ignored, as a server
    /// does (a newer client may know words we do not).
    pub fn apply_user(&mut self, words: &str) {
        self.apply(words, USER_PRIORITY);
    }

    /// Applies the defaults of `verbose` `-v`s (after any `--info`, which keeps priority).
    pub fn apply_verbosity(&mut self, verbose: u8) {
        for words in BY_VERBOSITY.iter().take(usize::from(verbose) + 1) {
            self.apply(words, DEFAULT_PRIORITY);
        }
    }

    /// Caps every word at what `level` `-v`s would give it: a daemon's `max verbosity`.
    /// Upstream: options.c, limit_output_verbosity().
    pub fn limit(&mut self, level: i32) {
        let Ok(level) = usize::try_from(level) else {
            self.levels = [0; WORDS.len()];
            return;
        };
        // Upstream's table runs to the debug table's MAX_VERBOSITY (5).
        if level > 5 {
            return;
        }
        let mut caps = InfoLevels::default();
        for words in BY_VERBOSITY.iter().take(level + 1) {
            caps.apply(words, DEFAULT_PRIORITY);
        }
        for (l, cap) in self.levels.iter_mut().zip(caps.levels) {
            *l = (*l).min(cap);
        }
    }

    fn apply(&mut self, text: &str, priority: u8) {
        for item in text.split(',').filter(|s| !s.is_empty()) {
            let digits = item.len() - item.bytes().rev().take_while(u8::is_ascii_digit).count();
            let (name, num) = if digits == 0 {
                (item, "")
            } else {
                item.split_at(digits)
            };
            let level = if num.is_empty() {
                1
            } else {
                num.parse::<u32>()
                    .map_or(MAX_LEVEL, |n| n.min(u32::from(MAX_LEVEL)) as u8)
            };
            let (name, level) = match name.to_ascii_uppercase().as_str() {
                "NONE" => ("", 0),
                "ALL" => ("", level),
                _ => (name, level),
            };
            for (i, (word, _)) in WORDS.iter().enumerate() {
                if name.is_empty() || word.eq_ignore_ascii_case(name) {
                    if priority >= self.priority[i] {
                        self.priority[i] = priority;
                        self.levels[i] = level;
                    }
                    if !name.is_empty() {
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn levels(user: &[&str], verbose: u8) -> InfoLevels {
        let mut l = InfoLevels::default();
        for u in user {
            l.apply_user(u);
        }
        l.apply_verbosity(verbose);
        l
    }

    #[test]
    fn verbosity_sets_upstream_defaults() {
        let quiet = levels(&[], 0);
        assert_eq!((quiet.get(Info::Nonreg), quiet.get(Info::Name)), (1, 0));
        let v = levels(&[], 1);
        assert_eq!(
            (v.get(Info::Name), v.get(Info::Del), v.get(Info::Skip)),
            (1, 1, 0)
        );
        let vv = levels(&[], 2);
        assert_eq!(
            (vv.get(Info::Name), vv.get(Info::Skip), vv.get(Info::Misc)),
            (2, 1, 2)
        );
    }

    #[test]
    fn max_verbosity_caps_what_a_client_asked_for() {
        let mut l = levels(&["skip2"], 2);
        l.limit(1);
        assert_eq!(
            (l.get(Info::Name), l.get(Info::Skip), l.get(Info::Nonreg)),
            (1, 0, 1)
        );
        let mut l = levels(&[], 2);
        l.limit(0);
        assert_eq!((l.get(Info::Name), l.get(Info::Nonreg)), (0, 1));
    }

    #[test]
    fn client_words_beat_verbosity() {
        assert_eq!(levels(&["nonreg0"], 0).get(Info::Nonreg), 0);
        assert_eq!(levels(&["name0,del"], 2).get(Info::Name), 0);
        assert_eq!(levels(&["NONE"], 1).get(Info::Del), 0);
        assert_eq!(levels(&["all3"], 0).get(Info::Backup), 3);
        assert_eq!(levels(&["name99"], 0).get(Info::Name), MAX_LEVEL);
        assert_eq!(levels(&["bogus,skip2"], 0).get(Info::Skip), 2);
    }
}
