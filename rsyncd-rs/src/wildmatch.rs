//! rsync's wildcard matcher (upstream: lib/wildmatch.c), shared by host patterns,
//! `auth users` and filter rules.
#![forbid(unsafe_code)]

/// Matches `text` against `pattern` (`*`, `?`, `[...]`).
pub fn wildmatch(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            wildmatch(&pattern[1..], text) || (!text.is_empty() && wildmatch(pattern, &text[1..]))
        }
        (Some(b'?'), Some(_)) => wildmatch(&pattern[1..], &text[1..]),
        (Some(b'['), Some(&c)) => match pattern.iter().position(|&b| b == b']') {
            Some(end) if end > 1 => {
                let set = &pattern[1..end];
                let (neg, set) = match set.first() {
                    Some(b'!' | b'^') => (true, &set[1..]),
                    _ => (false, set),
                };
                let mut hit = false;
                let mut i = 0;
                while i < set.len() {
                    if i + 2 < set.len() && set[i + 1] == b'-' {
                        hit |= set[i] <= c && c <= set[i + 2];
                        i += 3;
                    } else {
                        hit |= set[i] == c;
                        i += 1;
                    }
                }
                hit != neg && wildmatch(&pattern[end + 1..], &text[1..])
            }
            _ => c == b'[' && wildmatch(&pattern[1..], &text[1..]),
        },
        (Some(&p), Some(&t)) => p == t && wildmatch(&pattern[1..], &text[1..]),
        _ => false,
    }
}
