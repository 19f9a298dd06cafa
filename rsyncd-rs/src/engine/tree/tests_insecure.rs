//! `insecure_links` (a module's `insecure links = yes`): what the confined tree refuses
//! goes through the link, out of the root, and only with the option.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::Read;
use std::os::unix::fs::symlink;

use super::tests_util::{Scratch, rp};
use super::{FileKind, TreeOptions};

fn insecure() -> TreeOptions {
    TreeOptions {
        insecure_links: true,
        ..TreeOptions::default()
    }
}

#[test]
fn directory_links_lead_out_only_with_insecure_links() {
    let s = Scratch::new();
    symlink("../outside", s.at("rel")).unwrap();
    symlink(&s.outside, s.at("abs")).unwrap();
    for link in ["rel", "abs"] {
        let confined = s.tree(TreeOptions::default());
        assert!(confined.read_dir(&rp(link)).unwrap_err().is_confinement());
        assert!(
            confined
                .stat_target(&rp(link))
                .unwrap_err()
                .is_confinement()
        );
        let t = s.tree(insecure());
        let names = t.read_dir(&rp(link)).unwrap();
        assert!(names.contains(&b"secret".to_vec()), "{names:?}");
        let mut text = String::new();
        t.open_read(&rp(&format!("{link}/secret")))
            .unwrap()
            .read_to_string(&mut text)
            .unwrap();
        assert_eq!(text, "top secret");
        // The link itself is still described as a link, what it leads to on request.
        assert_eq!(t.lstat(&rp(link)).unwrap().unwrap().kind, FileKind::Symlink);
        assert_eq!(
            t.stat_target(&rp(link)).unwrap().unwrap().kind,
            FileKind::Dir
        );
        assert_eq!(
            t.resolve(&rp(&format!("{link}/x"))).unwrap(),
            rp(&format!("{link}/x"))
        );
        t.mkdir(&rp(&format!("{link}/made_{link}")), 0o755).unwrap();
        assert!(s.outside.join(format!("made_{link}")).is_dir());
    }
}

#[test]
fn a_final_link_is_read_through_only_when_asked() {
    let s = Scratch::new();
    symlink("../outside/secret", s.at("file")).unwrap();
    let t = s.tree(insecure());
    assert!(t.open_read(&rp("file")).is_err());
    let following = s.tree(TreeOptions {
        follow_read_links: true,
        ..insecure()
    });
    let mut text = String::new();
    following
        .open_read(&rp("file"))
        .unwrap()
        .read_to_string(&mut text)
        .unwrap();
    assert_eq!(text, "top secret");
    // Removing the name removes the link, never its target.
    following.unlink(&rp("file")).unwrap();
    assert_eq!(fs::read(s.outside.join("secret")).unwrap(), b"top secret");
}
