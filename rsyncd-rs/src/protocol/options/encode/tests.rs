//! The encoder against stock rsync's lists and against the parser.

use super::*;
use crate::protocol::options::{Refusals, parse_server_args};
use proptest::prelude::*;

fn parse(args: &[String]) -> Options {
    parse_server_args(args, &Refusals::none())
        .unwrap_or_else(|e| panic!("{args:?} does not parse: {e}"))
}

fn words(s: &str) -> Vec<String> {
    s.split(' ').map(str::to_string).collect()
}

/// What stock rsync 3.5.0 sent over a remote shell (`scripts/capture-server-args.sh`):
/// re-encoding the options read from each list gives the list back, letter for letter.
#[test]
fn stock_remote_shell_lists() {
    let data = include_str!("../../../../testdata/server-args.txt");
    let mut cases = 0;
    for line in data.lines().filter(|l| !l.starts_with('#')) {
        let [protocol, command, sent] = line.split('\t').collect::<Vec<_>>()[..] else {
            panic!("bad line {line:?}");
        };
        let sent = words(sent);
        let protocol: i32 = protocol.parse().unwrap();
        assert_eq!(
            server_args(&parse(&sent), protocol),
            sent,
            "rsync {command}"
        );
        cases += 1;
    }
    assert!(cases >= 60);
}

/// The server arguments in a daemon capture (after the module line), and the
/// protocol both sides agreed in their greetings.
fn daemon_args(c2s: &[u8], s2c: &[u8]) -> (Vec<String>, i32) {
    let start = c2s.windows(8).position(|w| w == b"--server").unwrap();
    // Before protocol 30 each argument ends in a newline, from 30 on in a NUL.
    let sep = c2s[start + 8];
    let args: Vec<String> = c2s[start..]
        .split(|&b| b == sep)
        .take_while(|a| !a.is_empty())
        .map(|a| String::from_utf8(a.to_vec()).unwrap())
        .collect();
    let greeting = |b: &[u8]| -> i32 {
        let at = b.windows(9).position(|w| w == b"@RSYNCD: ").unwrap() + 9;
        let digits = b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
        std::str::from_utf8(&b[at..at + digits])
            .unwrap()
            .parse()
            .unwrap()
    };
    (args, greeting(c2s).min(greeting(s2c)))
}

/// The lists stock clients sent stock daemons in the captures, protocols 27 to 32.
#[test]
fn stock_daemon_lists() {
    macro_rules! capture {
        ($c2s:literal, $s2c:literal) => {
            (
                $c2s,
                include_bytes!(concat!("../../../../testdata/captures/", $c2s)).as_slice(),
                include_bytes!(concat!("../../../../testdata/captures/", $s2c)).as_slice(),
            )
        };
    }
    let captures = [
        capture!("a-push-p27.c2s.bin", "a-push-p27.s2c.bin"),
        capture!("a-push-p29.c2s.bin", "a-push-p29.s2c.bin"),
        capture!("a-push-p30.c2s.bin", "a-push-p30.s2c.bin"),
        capture!("a-push-p32.c2s.bin", "a-push-p32.s2c.bin"),
        capture!("a-pull.c2s.bin", "a-pull.s2c.bin"),
        capture!("a-listonly.c2s.bin", "a-listonly.s2c.bin"),
        capture!("a-refused.c2s.bin", "a-refused.s2c.bin"),
        capture!("b-b-push-p29-c2s.bin", "b-b-push-p29-s2c.bin"),
        capture!("b-c-delta-p31-md5-c2s.bin", "b-c-delta-p31-md5-s2c.bin"),
        capture!("b-d-delta-zlib-c2s.bin", "b-d-delta-zlib-s2c.bin"),
        capture!("b-d-delta-zlibx-c2s.bin", "b-d-delta-zlibx-s2c.bin"),
        capture!("b-d-push-lz4-c2s.bin", "b-d-push-lz4-s2c.bin"),
        capture!(
            "b-e-push-hardlinks-p28-c2s.bin",
            "b-e-push-hardlinks-p28-s2c.bin"
        ),
        capture!("b-f-pull-p32-c2s.bin", "b-f-pull-p32-s2c.bin"),
        capture!("b-h-push-p27-c2s.bin", "b-h-push-p27-s2c.bin"),
        capture!(
            "b-j-push-R-artuz-delete-c2s.bin",
            "b-j-push-R-artuz-delete-s2c.bin"
        ),
    ];
    for (name, c2s, s2c) in captures {
        let (sent, protocol) = daemon_args(c2s, s2c);
        assert_eq!(server_args(&parse(&sent), protocol), sent, "{name}");
    }
}

/// The reference deployment's push, built by hand as a client would: `rsync -artuz
/// -R --delete ./ rsync://host/backup/` (a-push-p32, and a-push-p29 without `-e`).
#[test]
fn reference_push_from_scratch() {
    let mut o = Options {
        server: true,
        update_only: true,
        preserve_links: true,
        preserve_uid: true,
        preserve_gid: true,
        preserve_devices: true,
        preserve_specials: true,
        preserve_mtimes: true,
        preserve_perms: true,
        recurse: true,
        xfer_dirs: true,
        relative: true,
        compress: 1,
        delete: DeleteWhen::During,
        delete_when_default: true,
        args: words(". backup/"),
        ..Options::default()
    };
    o.client_info = client_info(&o, STOCK_CAPABILITIES);
    assert_eq!(
        server_args(&o, 32),
        words("--server -ulogDtprRze.iLsfxCIvu --delete . backup/")
    );
    assert_eq!(
        server_args(&o, 29),
        words("--server -ulogDtprRz --delete . backup/")
    );
}

#[test]
fn capability_letters_follow_the_options() {
    let recursive = Options {
        recurse: true,
        ..Options::default()
    };
    assert_eq!(client_info(&recursive, STOCK_CAPABILITIES), "iLsfxCIvu");
    // A listing (no -r), a pull that prunes, and --no-i-r: no incremental recursion.
    assert_eq!(
        client_info(&Options::default(), STOCK_CAPABILITIES),
        "LsfxCIvu"
    );
    let pruning_pull = Options {
        am_sender: true,
        prune_empty_dirs: true,
        ..recursive.clone()
    };
    assert_eq!(client_info(&pruning_pull, "iLsfxCIvu"), "LsfxCIvu");
    let pushing_prune = Options {
        am_sender: false,
        ..pruning_pull
    };
    assert_eq!(client_info(&pushing_prune, "Lsf"), "iLsf");
    let no_ir = Options {
        allow_inc_recurse: false,
        ..recursive
    };
    assert_eq!(client_info(&no_ir, STOCK_CAPABILITIES), "LsfxCIvu");
}

#[test]
fn every_cluster_key_has_a_letter() {
    for (key, _) in CLUSTER {
        assert!(letter(key).is_some(), "{key}");
    }
    assert_eq!(letter("shell_cmd"), Some('e'));
    assert_eq!(letter("OPT_BLOCK_SIZE"), Some('B'));
    assert_eq!(letter("OPT_MODIFY_WINDOW"), Some('@'));
}

/// How a client asks for compression, as the server then sees it.
fn arb_compression() -> impl Strategy<Value = (u8, Option<String>, Option<i32>)> {
    let choice = prop_oneof![
        Just((0, None)),
        Just((1, None)),
        // `--compress-choice=zlib` rides as `-z --old-compress`, `-zz` as
        // `--new-compress`; the others by name.
        Just((1, Some("zlib"))),
        Just((0, Some("zlibx"))),
        Just((0, Some("zstd"))),
        Just((0, Some("lz4"))),
        Just((0, Some("none"))),
    ];
    (choice, proptest::option::of(-1..=22i32)).prop_map(|((n, c), level)| {
        // A level is only sent with compression on.
        let on = n > 0 || c.is_some_and(|c| c != "none");
        (n, c.map(str::to_string), level.filter(|_| on))
    })
}

fn arb_delete() -> impl Strategy<Value = (DeleteWhen, bool, bool)> {
    let when = prop_oneof![
        Just((DeleteWhen::Never, false)),
        Just((DeleteWhen::During, true)),
        Just((DeleteWhen::Before, false)),
        Just((DeleteWhen::During, false)),
        Just((DeleteWhen::Delay, false)),
        Just((DeleteWhen::After, false)),
    ];
    (when, any::<bool>()).prop_map(|((when, default), excluded)| match when {
        // `--delete-excluded` alone is a `--delete`.
        DeleteWhen::Never if excluded => (DeleteWhen::During, true, true),
        _ => (when, default, excluded),
    })
}

fn arb_path() -> impl Strategy<Value = String> {
    "[a-z.][a-z0-9./]{0,8}"
}

/// `--timeout`, `--bwlimit`, `-B`, `--max-delete`, `--modify-window`,
/// `--checksum-seed`, `--min-size`, `--max-size`.
type Numbers = (
    Option<i32>,
    Option<u64>,
    Option<u32>,
    Option<i32>,
    Option<i32>,
    Option<i32>,
    Option<i64>,
    Option<i64>,
);

/// Everything a generated case draws, before the rules that tie the fields together.
#[derive(Debug, Clone)]
struct Draw {
    pull: bool,
    protocol: i32,
    verbose: u8,
    quiet: u8,
    /// Switches sent in both directions.
    both: [bool; 20],
    /// Switches only one direction sends (or whose meaning depends on it).
    sided: [bool; 20],
    /// -H, -x, -U, -X, -y, `--append`, `--remove-*-files`, `--*-missing-args`.
    counts: [u8; 8],
    /// -i, partial mode, basis dir kind, files-from mode.
    modes: [u8; 4],
    compression: (u8, Option<String>, Option<i32>),
    delete: (DeleteWhen, bool, bool),
    numbers: Numbers,
    checksum_choice: Option<&'static str>,
    dirs: Vec<String>,
    paths: Vec<String>,
}

fn arb_draw() -> impl Strategy<Value = Draw> {
    let head = (
        any::<bool>(),
        27..=32i32,
        0..=9u8,
        0..=1u8,
        any::<[bool; 20]>(),
        any::<[bool; 20]>(),
        any::<[u8; 8]>(),
        any::<[u8; 4]>(),
    );
    let size = || proptest::option::of(0..(1i64 << 52));
    let numbers = (
        proptest::option::of(1..=100_000i32),
        proptest::option::of(1..=1_000_000u64),
        proptest::option::of(1..=(1u32 << 17)),
        proptest::option::of(-1..=1000i32),
        proptest::option::of(any::<i32>()),
        proptest::option::of(any::<i32>().prop_filter("seed 0 is no seed", |&s| s != 0)),
        size(),
        size(),
    );
    let tail = (
        arb_compression(),
        arb_delete(),
        numbers,
        proptest::option::of(prop::sample::select(vec!["md5", "xxh128", "md4,md5"])),
        prop::collection::vec(arb_path(), 1..3),
        prop::collection::vec(arb_path(), 0..3),
    );
    (head, tail).prop_map(|(head, tail)| {
        let (pull, protocol, verbose, quiet, both, sided, counts, modes) = head;
        let (compression, delete, numbers, checksum_choice, dirs, paths) = tail;
        Draw {
            pull,
            protocol,
            verbose,
            quiet,
            both,
            sided,
            counts,
            modes,
            compression,
            delete,
            numbers,
            checksum_choice,
            dirs,
            paths,
        }
    })
}

/// Options as a stock client's list leaves them on the server: what the client sends
/// for one direction, with the implications the server's parser applies.
fn build(d: Draw) -> (Options, i32) {
    let push = !d.pull;
    let [
        recurse,
        dirs,
        links,
        perms,
        times,
        owner,
        group,
        devices,
        specials,
        update,
        checksum,
        dry,
        numeric_ids,
        relative,
        sparse,
        whole_file,
        ignore_times,
        cvs_exclude,
        ignore_errors,
        safe_links,
    ] = d.both;
    let [
        copy_unsafe_links,
        use_qsort,
        crtimes,
        acls,
        backups,
        backup_dir,
        suffix,
        implied_dirs,
        inc_letter,
        no_inc,
        list_only,
        from0,
        inplace,
        write_devices,
        copy_devices,
        pull_links,
        push_dirs,
        push_rest,
        push_more,
        maps,
    ] = d.sided;
    let [hard, xdev, atimes, xattrs, fuzzy, append, remove, missing] = d.counts.map(|n| n % 3);
    let [itemize, partial, basis_kind, files_from] = d.modes.map(|n| n % 3);
    let (timeout, bwlimit, block, max_delete, window, seed, min_size, max_size) = d.numbers;
    let mut o = Options {
        server: true,
        am_sender: d.pull,
        verbose: d.verbose,
        quiet: d.quiet,
        recurse,
        preserve_links: links,
        preserve_perms: perms || acls,
        preserve_acls: acls,
        preserve_mtimes: times,
        preserve_uid: owner,
        preserve_gid: group,
        preserve_devices: devices,
        preserve_specials: specials,
        preserve_crtimes: crtimes,
        preserve_atimes: atimes,
        preserve_xattrs: xattrs,
        update_only: update,
        always_checksum: checksum,
        dry_run: dry,
        hard_links: hard,
        one_file_system: xdev,
        numeric_ids,
        relative,
        sparse,
        ignore_times,
        cvs_exclude,
        ignore_errors,
        safe_links,
        copy_unsafe_links,
        use_qsort,
        io_timeout: timeout,
        bwlimit,
        block_size: block,
        checksum_seed: seed,
        checksum_choice: d.checksum_choice.map(str::to_string),
        remove_source_files: remove,
        ..Options::default()
    };
    o.info.apply_verbosity(d.verbose);
    (o.compress, o.compress_choice, o.compress_level) = d.compression;
    o.make_backups = backups || backup_dir;
    o.backup_dir = backup_dir.then(|| "/bk".into());
    o.backup_suffix = suffix.then(|| ".bak".into());
    // `-b` without a directory implies `-O` on the server.
    o.omit_dir_times = o.make_backups && o.backup_dir.is_none();
    o.missing_args = match missing {
        1 if d.pull => 1,
        2 => 2,
        _ => 0,
    };
    // A pull lists with --list-only and reads names from a file the server or the
    // client has.
    if d.pull {
        o.list_only = list_only;
        o.files_from = match files_from {
            1 => Some("-".into()),
            2 => Some("/ff".into()),
            _ => None,
        };
        o.from0 = o.files_from.as_deref() == Some("-") || (o.files_from.is_some() && from0);
        o.copy_devices = copy_devices;
        o.copy_links = pull_links;
        o.copy_dirlinks = push_dirs;
        o.skip_compress = push_rest.then(|| "gz/jpg".into());
    }
    o.xfer_dirs = recurse || dirs || o.list_only || o.files_from.is_some();
    // Only plain `-W` is sent (not with --append).
    o.whole_file = whole_file.then_some(true);
    // A pushing client deletes, keeps partial files, names basis directories, maps
    // ids and places files through the server; a pulling one does these itself.
    if push {
        if o.xfer_dirs {
            (o.delete, o.delete_when_default, o.delete_excluded) = d.delete;
        }
        match basis_kind {
            0 => o.link_dest = d.dirs,
            1 => o.copy_dest = d.dirs,
            _ => o.compare_dest = d.dirs,
        }
        o.stdout_format = match itemize {
            0 => None,
            1 => Some("%i".into()),
            _ => Some("%i%I".into()),
        };
        o.max_delete = max_delete.map(|n| n.max(0));
        o.modify_window = window;
        o.min_size = min_size;
        o.max_size = max_size;
        o.keep_dirlinks = push_dirs;
        o.prune_empty_dirs = pull_links;
        o.omit_dir_times |= push_rest;
        o.omit_link_times = push_more;
        o.fuzzy = fuzzy;
        o.preserve_executability = !o.preserve_perms && copy_devices;
        o.force_delete = push_rest;
        o.size_only = push_more;
        o.stats = push_rest;
        o.super_mode = push_more.then_some(2);
        o.ignore_existing = push_rest;
        o.ignore_non_existing = push_more;
        o.fsync = push_more;
        o.temp_dir = push_rest.then(|| "/tmp".into());
        o.preallocate = push_more;
        o.mkpath = push_rest;
        if maps {
            o.usermap = Some("0:1".into());
            o.groupmap = Some("0:1".into());
            o.preserve_uid = true;
            o.preserve_gid = true;
        }
        // --write-devices and --append imply --inplace, which keeps no partial file.
        o.write_devices = write_devices;
        o.append_mode = append;
        if o.append_mode > 0 {
            o.whole_file = None;
        }
        o.inplace = inplace || o.write_devices || o.append_mode > 0;
        if !o.inplace {
            o.keep_partial = partial > 0;
            o.partial_dir = (partial == 2).then(|| ".partial".into());
            o.delay_updates = partial == 1 && list_only;
            if o.delay_updates {
                o.partial_dir = Some(DELAY_UPDATES_DIR.into());
            }
        }
    } else {
        o.inplace = inplace;
    }
    // The server clears implied directories without -R, and a receiving server
    // older than protocol 30 is not told of them.
    o.implied_dirs = o.relative && (implied_dirs || (push && d.protocol < 30));
    if d.protocol >= 30 {
        o.client_info = if inc_letter { "iLsfxCIvu" } else { "LsfxCIvu" }.into();
        o.allow_inc_recurse = !no_inc;
    }
    o.args = std::iter::once(".".to_string()).chain(d.paths).collect();
    (o, d.protocol)
}

proptest! {
    #[test]
    fn parse_inverts_encode((o, protocol) in arb_draw().prop_map(build)) {
        let args = server_args(&o, protocol);
        let back = parse_server_args(&args, &Refusals::none());
        prop_assert_eq!(back, Ok(o), "{:?}", args);
    }
}
