//! The receiving side of `-X`: the generator compares an entry's list with what is on
//! disk (ITEM_REPORT_XATTR, and which long values to ask for); the receiver applies the
//! list once the sender has answered.
//!
//! Upstream: generator.c, itemize() → xattr_diff() and send_xattr_request();
//! receiver.c, recv_files() → recv_xattr_request(); rsync.c, set_file_attrs() →
//! set_xattr().

use std::sync::Arc;

use super::Shared;
use crate::engine::exit::ExitCode;
use crate::engine::tree::{AttrTarget, RelPath};
use crate::engine::xattrs::{XattrRules, xattr_diff};
use crate::protocol::ndx::iflags as it;
use crate::protocol::xattr::{XattrList, encode_xattr_request};

/// Fetched long values: (wire number, value).
pub(super) type Fetched = Vec<(i32, Vec<u8>)>;

impl Shared {
    /// Whether xattrs travel in this session (`-X` at protocol 30+).
    pub fn xattrs_on(&self) -> bool {
        self.opts.preserve_xattrs > 0 && self.wire.protocol >= 30
    }

    /// Whether ACLs travel in this session (`-A` at protocol 30+).
    pub fn acls_on(&self) -> bool {
        self.opts.preserve_acls && self.wire.protocol >= 30
    }

    /// Whether long values are asked for and sent: xattrs on and not a dry run
    /// (upstream's `do_xfers`; the hard-link optimisation is never negotiated).
    pub fn xattr_exchange(&self) -> bool {
        self.xattrs_on() && !self.opts.dry_run
    }

    /// Runs `f` with this receiver's rules (upstream's `am_root`, `preserve_xattrs` and
    /// xattr filters).
    pub fn with_xattr_rules<R>(&self, f: impl FnOnce(&XattrRules<'_>) -> R) -> R {
        let filters = self
            .filters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let has_rules = filters.has_xattr_rules();
        let excluded = |n: &[u8]| filters.xattr_excluded(n);
        let rules = XattrRules {
            am_root: if self.policy.fake_super {
                -1
            } else {
                i8::from(self.policy.am_root)
            },
            preserve: self.opts.preserve_xattrs,
            filter: has_rules.then_some(&excluded as &dyn Fn(&[u8]) -> bool),
            keep_acls: self.acls_on(),
        };
        f(&rules)
    }

    /// Compares an entry's xattrs with those of `local` (`None`: nothing there yet):
    /// whether to report a difference, and the wire numbers of the long values to ask
    /// for. Upstream: xattrs.c, xattr_diff().
    pub fn xattr_item(
        &self,
        list: Option<&Arc<XattrList>>,
        local: Option<&RelPath>,
    ) -> (bool, Vec<i32>) {
        if !self.xattrs_on() {
            return (false, Vec::new());
        }
        let empty = XattrList::default();
        let list = list.map_or(&empty, |l| l.as_ref());
        // An unreadable destination compares as one without xattrs.
        let on_disk = local
            .map(|p| self.tree.list_xattrs(p).unwrap_or_default())
            .unwrap_or_default();
        self.with_xattr_rules(|r| {
            let recv = r.receiver_list(list);
            let local = r.local_list(on_disk);
            xattr_diff(&recv, &local)
        })
    }

    /// Appends the request for `todo` after an item record, when one is due.
    /// Upstream: xattrs.c, send_xattr_request() on the generator.
    pub fn put_xattr_request(&self, iflags: u32, todo: &[i32], out: &mut Vec<u8>) {
        if self.xattr_exchange() && iflags & it::REPORT_XATTR != 0 {
            encode_xattr_request(todo, out);
        }
    }

    /// Checks a response against the entry's list: each number names a long value.
    /// Upstream: xattrs.c, recv_xattr_request() ("could not find xattr", "internal
    /// abbrev error").
    pub fn check_xattr_response(
        &self,
        list: Option<&Arc<XattrList>>,
        fetched: &Fetched,
        name: &[u8],
    ) -> Result<(), super::RecvError> {
        let shown = String::from_utf8_lossy(name);
        for (num, _) in fetched {
            let x = usize::try_from(*num)
                .ok()
                .and_then(|n| n.checked_sub(1))
                .and_then(|i| list.and_then(|l| l.0.get(i)));
            match x {
                Some(x) if x.is_abbrev() => {}
                Some(x) => {
                    return Err(super::RecvError::fatal(
                        format!(
                            "[receiver] internal abbrev error on {shown} ({}, len={})!",
                            String::from_utf8_lossy(&x.name),
                            x.datum_len()
                        ),
                        ExitCode::PROTOCOL,
                    ));
                }
                None => {
                    return Err(super::RecvError::fatal(
                        format!("[receiver] could not find xattr #{num} for {shown}"),
                        ExitCode::PROTOCOL,
                    ));
                }
            }
        }
        Ok(())
    }

    /// Applies an entry's xattrs to `target`: values fetched from the sender, the other
    /// long ones from `basis` (kept as they are when the basis is the target itself),
    /// and names the sender lacks removed within our namespaces. Failures are reported
    /// as per-file errors (exit 23). Upstream: xattrs.c, set_xattr().
    pub fn apply_xattrs(
        &self,
        target: AttrTarget<'_>,
        shown: &RelPath,
        list: Option<&Arc<XattrList>>,
        fetched: &[(i32, Vec<u8>)],
        basis: Option<&RelPath>,
    ) {
        if !self.xattrs_on() || self.opts.dry_run {
            return;
        }
        let empty = XattrList::default();
        let list = list.map_or(&empty, |l| l.as_ref());
        let basis_is_target =
            matches!(target, AttrTarget::Path(_)) && basis.is_none_or(|b| b == shown);
        let file = shown.to_string();
        let read_basis =
            |name: &[u8]| basis.and_then(|b| self.tree.get_xattr(b, name).ok().flatten());
        let result = self.with_xattr_rules(|r| {
            let recv = r.receiver_list(list);
            let want = crate::engine::xattrs::want_from(
                &recv,
                fetched,
                &read_basis,
                basis_is_target,
                &file,
            )
            .map_err(|e| e.to_string())?;
            self.tree
                .apply_xattrs(target, &want, &|n| r.may_remove(n))
                .map_err(|e| format!("rsync_xal_set: {e}"))
        });
        if let Err(msg) = result {
            self.error(&msg);
        }
    }
}

/// Whether the receiver applies xattrs for an item that is not transferred: it
/// reported a difference and is not a hard-link follower or local copy (those share
/// the inode or were copied with their xattrs). Upstream: receiver.c, recv_files().
pub(super) fn applies_to_item(iflags: u32) -> bool {
    iflags & it::REPORT_XATTR != 0
        && iflags & (it::XNAME_FOLLOWS | it::LOCAL_CHANGE) != (it::XNAME_FOLLOWS | it::LOCAL_CHANGE)
}
