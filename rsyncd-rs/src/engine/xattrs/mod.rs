//! Which xattrs a side sends, keeps, compares and removes (`-X`, `-XX`, fake super),
//! between the tree's raw name/value pairs and the wire lists of `protocol::xattr`.
//!
//! Upstream: xattrs.c, rsync_xal_get() (the per-name filter), send_xattr() (name
//! mapping), receive_xattr() (namespace mapping and the internal-attr guard),
//! xattr_diff() and rsync_xal_set() (the removal rule).

use crate::engine::tree::{XattrPair, XattrWant};
use crate::protocol::xattr::{XattrItem, XattrList, XattrValue};

/// The prefix fake super stores foreign namespaces under (Linux's RSYNC_PREFIX).
pub const RSYNC_PREFIX: &[u8] = b"user.rsync.";

/// `user.rsync.%…` names rsync keeps for itself under fake super.
const FAKE_SUPER_INTERNAL: [&[u8]; 3] = [
    b"user.rsync.%stat",
    b"user.rsync.%aacl",
    b"user.rsync.%dacl",
];

/// Whether an xattr name is excluded by the xattr filter rules.
pub type XattrExcluded<'a> = &'a dyn Fn(&[u8]) -> bool;

/// Who we are for the namespace rules: upstream's `am_root` (−1 fake super, 0 plain
/// user, 1 root) and `preserve_xattrs` (1 for `-X`, 2 for `-XX`).
#[derive(Clone, Copy)]
pub struct XattrRules<'a> {
    pub am_root: i8,
    pub preserve: u8,
    /// With xattr filter rules (`-f'-x NAME'`): whether a name is excluded; they then
    /// replace the namespace rules (upstream's `saw_xattr_filter`).
    pub filter: Option<XattrExcluded<'a>>,
    /// `-A` under fake super: `user.rsync.%aacl`/`%dacl` belong to the ACL step and are
    /// never removed here. Stock removes them (an xattr-only change then loses the
    /// stored ACL: its ACL step compares with what it read before); the spec's
    /// recommendation is followed instead.
    pub keep_acls: bool,
}

impl std::fmt::Debug for XattrRules<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XattrRules")
            .field("am_root", &self.am_root)
            .field("preserve", &self.preserve)
            .field("filter", &self.filter.is_some())
            .finish()
    }
}

/// A received element after the receiver's mapping: its final local name, its value
/// (full or still abbreviated) and its wire number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecvXattr {
    pub num: i32,
    pub name: Vec<u8>,
    pub value: XattrValue,
}

fn is_internal(name: &[u8]) -> bool {
    name.strip_prefix(RSYNC_PREFIX)
        .is_some_and(|rest| rest.first() == Some(&b'%'))
}

impl XattrRules<'_> {
    fn fake(&self) -> bool {
        self.am_root < 0
    }

    /// Whether a local name is listed at all (§3.1 step 2); `sender` for the sender's
    /// list, else a receiver's own.
    fn lists(&self, name: &[u8], sender: bool) -> bool {
        match self.filter {
            Some(excluded) => {
                if excluded(name) {
                    return false;
                }
            }
            None => {
                // A sender skips only system.* (ACLs never travel as xattrs); a plain
                // user's receiver sees only user.*.
                let user_only = !sender && self.am_root == 0;
                if user_only && !name.starts_with(b"user.") {
                    return false;
                }
                if name.starts_with(b"system.") {
                    return false;
                }
            }
        }
        if is_internal(name) {
            if sender && self.preserve < 2 {
                return false;
            }
            if self.fake() && FAKE_SUPER_INTERNAL.contains(&name) {
                return false;
            }
        }
        true
    }

    /// The sender's list of an entry: filtered, sorted by local name, names mapped for
    /// the wire (fake super sends `user.rsync.X` as `X`), long values abbreviated.
    /// Upstream: xattrs.c, rsync_xal_get() and send_xattr().
    pub fn sender_list(&self, mut local: Vec<XattrPair>) -> XattrList {
        local.retain(|(n, _)| self.lists(n, true));
        local.sort_by(|a, b| a.0.cmp(&b.0));
        let items = local
            .into_iter()
            .map(|(name, value)| {
                let name = match name.strip_prefix(RSYNC_PREFIX) {
                    Some(rest) if self.fake() && rest.first() != Some(&b'%') => rest.to_vec(),
                    _ => name,
                };
                XattrItem::new(name, &value)
            })
            .collect();
        XattrList(items)
    }

    /// The local name a sender reads a wire name's value from (the inverse of
    /// [`XattrRules::sender_list`]'s mapping).
    pub fn sender_local_name(&self, wire: &[u8]) -> Vec<u8> {
        if self.fake() && !wire.starts_with(b"user.") {
            [RSYNC_PREFIX, wire].concat()
        } else {
            wire.to_vec()
        }
    }

    /// A receiver's view of a received list: names filtered and mapped to local ones
    /// (a plain user keeps only `user.*`; fake super stores other namespaces under
    /// `user.rsync.`), internal `user.rsync.%…` names dropped unless `-XX`, sorted by
    /// final name with each element's wire number kept. Upstream: xattrs.c,
    /// receive_xattr().
    pub fn receiver_list(&self, wire: &XattrList) -> Vec<RecvXattr> {
        let mut out = Vec::with_capacity(wire.0.len());
        for (i, item) in wire.0.iter().enumerate() {
            let num = i32::try_from(i + 1).unwrap_or(i32::MAX);
            if self.filter.is_some_and(|excluded| excluded(&item.name)) {
                continue;
            }
            let mut name = item.name.clone();
            if self.am_root <= 0 && !name.starts_with(b"user.") {
                if self.am_root == 0 && self.filter.is_none() {
                    continue;
                }
                name = [RSYNC_PREFIX, &name].concat();
            }
            if self.preserve < 2 && is_internal(&name) {
                continue;
            }
            out.push(RecvXattr {
                num,
                name,
                value: item.value.clone(),
            });
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// What a receiver compares a received list with: its own xattrs of the entry under
    /// the receiver rules, sorted. Upstream: xattrs.c, rsync_xal_get() on the generator.
    pub fn local_list(&self, mut local: Vec<XattrPair>) -> Vec<XattrPair> {
        local.retain(|(n, _)| self.lists(n, false));
        local.sort_by(|a, b| a.0.cmp(&b.0));
        local
    }

    /// Whether a receiver may remove a present name the sender did not list: within the
    /// namespaces it manages (a plain user or fake super: `user.*`; root: all but
    /// `system.*`), never fake super's `%stat`. Upstream: xattrs.c, rsync_xal_set().
    pub fn may_remove(&self, name: &[u8]) -> bool {
        if self.fake() && name == b"user.rsync.%stat" {
            return false;
        }
        if self.fake()
            && self.keep_acls
            && (name == b"user.rsync.%aacl" || name == b"user.rsync.%dacl")
        {
            return false;
        }
        match self.filter {
            Some(excluded) => !excluded(name),
            None if self.am_root <= 0 => name.starts_with(b"user."),
            None => !name.starts_with(b"system."),
        }
    }
}

/// Compares a received list with the local one: whether they differ (ITEM_REPORT_XATTR)
/// and the wire numbers of the long values the receiver lacks, in its own order.
/// Upstream: xattrs.c, xattr_diff() with find_all.
pub fn xattr_diff(recv: &[RecvXattr], local: &[XattrPair]) -> (bool, Vec<i32>) {
    let mut differs = recv.len() != local.len();
    let mut todo = Vec::new();
    for x in recv {
        let same = local
            .iter()
            .find(|(n, _)| *n == x.name)
            .is_some_and(|(_, v)| value_matches(&x.value, v));
        if !same {
            differs = true;
            if matches!(x.value, XattrValue::Abbrev { .. }) {
                todo.push(x.num);
            }
        }
    }
    (differs, todo)
}

fn value_matches(want: &XattrValue, local: &[u8]) -> bool {
    XattrItem {
        name: Vec::new(),
        value: want.clone(),
    }
    .value_matches(local)
}

/// Why a received list cannot be applied.
#[derive(Debug, thiserror::Error)]
#[error("Missing abbreviated xattr value, {name}, for {file}")]
pub struct MissingValue {
    pub name: String,
    pub file: String,
}

/// The set to apply: fetched values filled in, and each long value that was not
/// fetched taken from the basis file when it still matches (`basis_is_target`: it is
/// there already and is kept). Upstream: xattrs.c, rsync_xal_set().
pub fn want_from(
    recv: &[RecvXattr],
    fetched: &[(i32, Vec<u8>)],
    basis: &dyn Fn(&[u8]) -> Option<Vec<u8>>,
    basis_is_target: bool,
    file: &str,
) -> Result<XattrWant, MissingValue> {
    let mut items = Vec::with_capacity(recv.len());
    for x in recv {
        let value = match &x.value {
            XattrValue::Full(v) => Some(v.clone()),
            XattrValue::Abbrev { .. } => {
                if let Some((_, v)) = fetched.iter().find(|(n, _)| *n == x.num) {
                    Some(v.clone())
                } else if basis_is_target {
                    None
                } else {
                    match basis(&x.name) {
                        Some(v) if value_matches(&x.value, &v) => Some(v),
                        _ => {
                            return Err(MissingValue {
                                name: String::from_utf8_lossy(&x.name).into_owned(),
                                file: file.to_string(),
                            });
                        }
                    }
                }
            }
        };
        items.push((x.name.clone(), value));
    }
    Ok(XattrWant { items })
}

#[cfg(test)]
mod tests;
