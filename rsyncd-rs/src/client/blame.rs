//! Which entry a server's error line is about. A receiving server reports what went wrong
//! with a file only as text (`rsync: [receiver] mkstemp "/d/.f.Ab12Cd" (in backup) failed:
//! Permission denied (13)`); the protocol carries no index with it. The names in those
//! lines are the file-list names as the server sees them: quoted by upstream's
//! full_fname(), after the module-relative destination directory, or bare in the few lines
//! that do not quote (`could not make way for new regular file: f`). Upstream: util1.c,
//! full_fname(); receiver.c, open_tmpfile(); delete.c, delete_item().

use std::collections::BTreeMap;

/// The entry of `names` that `line` is about, if it names one: the quoted path with the
/// destination directory `dest` (the module path the client asked for) taken off its
/// front and a temporary file's name turned back into the file's, or a bare word equal to
/// a name. Where several names fit, the longest (the most specific) wins.
pub(super) fn blamed<'a, V>(
    line: &str,
    dest: &str,
    names: &'a BTreeMap<Vec<u8>, V>,
) -> Option<&'a [u8]> {
    let dest = dest.trim_matches('/');
    let mut best: Option<&[u8]> = None;
    let mut consider = |candidate: &str| {
        for c in candidates(candidate, dest) {
            if let Some((k, _)) = names.get_key_value(c.as_bytes())
                && best.is_none_or(|b| b.len() < k.len())
            {
                best = Some(k);
            }
        }
    };
    let quoted: Vec<&str> = line.split('"').skip(1).step_by(2).collect();
    if quoted.is_empty() {
        for word in line.split_whitespace() {
            consider(word.trim_end_matches([':', ',']));
        }
    } else {
        for q in quoted {
            consider(q);
        }
    }
    best
}

/// The names `path` may stand for: as given, without the destination directory, and with
/// a temporary name (`.NAME.XXXXXX`) turned back into NAME.
fn candidates(path: &str, dest: &str) -> Vec<String> {
    let bare = path.trim_start_matches('/');
    let mut out = vec![bare.to_string()];
    if !dest.is_empty()
        && let Some(rest) = bare.strip_prefix(dest)
        && let Some(rest) = rest.strip_prefix('/')
    {
        out.push(rest.to_string());
    }
    for p in out.clone() {
        let (dir, file) = match p.rsplit_once('/') {
            Some((d, f)) => (Some(d), f),
            None => (None, p.as_str()),
        };
        if let Some(inner) = file.strip_prefix('.')
            && let Some((name, random)) = inner.rsplit_once('.')
            && random.len() == 6
            && random.bytes().all(|b| b.is_ascii_alphanumeric())
            && !name.is_empty()
        {
            out.push(match dir {
                Some(d) => format!("{d}/{name}"),
                None => name.to_string(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> BTreeMap<Vec<u8>, ()> {
        list.iter().map(|n| (n.as_bytes().to_vec(), ())).collect()
    }

    #[test]
    fn quoted_temporary_names_lead_back_to_their_file() {
        let n = names(&["dir", "dir/a.txt", "a.txt"]);
        let line = "rsync: [receiver] mkstemp \"/dir/.a.txt.Ab12Cd\" (in backup) failed: \
                    Permission denied (13)";
        assert_eq!(blamed(line, "", &n), Some(&b"dir/a.txt"[..]));
        // Not chrooted, no leading slash; the destination directory comes off the front.
        let line = "rsync: [receiver] mkstemp \"sub/dir/.a.txt.Ab12Cd\" (in backup) failed";
        assert_eq!(blamed(line, "sub/", &n), Some(&b"dir/a.txt"[..]));
    }

    #[test]
    fn the_most_specific_name_wins_and_unknown_names_blame_nothing() {
        let n = names(&["dir", "dir/a.txt"]);
        let line = "rsync: [generator] failed to set times on \"/dir\" (in backup): \
                    Operation not permitted (1)";
        assert_eq!(blamed(line, "", &n), Some(&b"dir"[..]));
        let line = "rsync: [receiver] rename \"/x/.b.Ab12Cd\" -> \"x/b\": No space left";
        assert_eq!(blamed(line, "", &n), None);
        assert_eq!(
            blamed("rsync error: some files could not be transferred", "", &n),
            None
        );
    }

    #[test]
    fn unquoted_lines_name_the_entry_as_a_word() {
        let n = names(&["f", "dir/f"]);
        let line = "could not make way for new regular file: dir/f";
        assert_eq!(blamed(line, "", &n), Some(&b"dir/f"[..]));
    }
}
