//! Every parameter of upstream's `daemon-parm.txt`: recognised, typed, defaulted.

#![allow(clippy::unwrap_used)] // Tests may panic.

use std::path::Path;

use super::*;

/// The public names of upstream's parameter table (daemon-parm.txt, after
/// daemon-parm.awk keeps the name after `|` and turns `_` into spaces).
const UPSTREAM_GLOBALS: [&str; 11] = [
    "address",
    "daemon chroot",
    "daemon gid",
    "daemon uid",
    "motd file",
    "pid file",
    "proxy protocol hosts",
    "socket options",
    "listen backlog",
    "port",
    "proxy protocol",
];

const UPSTREAM_LOCALS: [&str; 48] = [
    "auth digest",
    "auth users",
    "charset",
    "comment",
    "dont compress",
    "early exec",
    "exclude",
    "exclude from",
    "filter",
    "gid",
    "hosts allow",
    "hosts deny",
    "include",
    "include from",
    "incoming chmod",
    "lock file",
    "log file",
    "log format",
    "name",
    "name converter",
    "outgoing chmod",
    "post-xfer exec",
    "pre-xfer exec",
    "refuse options",
    "secrets file",
    "syslog tag",
    "uid",
    "path",
    "temp dir",
    "max connections",
    "max verbosity",
    "timeout",
    "syslog facility",
    "fake super",
    "forward lookup",
    "ignore errors",
    "ignore nonreadable",
    "insecure links",
    "list",
    "read only",
    "reverse lookup",
    "strict modes",
    "transfer logging",
    "write only",
    "munge symlinks",
    "numeric ids",
    "open noatime",
    "use chroot",
];

fn parse(text: &str) -> DaemonConfig {
    DaemonConfig::parse_with_env(
        text,
        Path::new("t.conf"),
        &MemoryIncludes::new(),
        &[],
        &|_| None,
    )
    .unwrap()
}

fn s(v: &str) -> Option<String> {
    Some(v.to_owned())
}

type GlobalCheck = fn(&Globals) -> bool;
type LocalCheck = fn(&ModuleParams) -> bool;

/// Each global-only parameter with a value to set and a check of the typed result.
const GLOBAL_CASES: [(&str, &str, GlobalCheck); 11] = [
    ("address", "192.0.2.1", |g| g.address == s("192.0.2.1")),
    ("daemon chroot", "/srv/jail", |g| {
        g.daemon_chroot == s("/srv/jail")
    }),
    ("daemon gid", "nogroup", |g| g.daemon_gid == s("nogroup")),
    ("daemon uid", "nobody", |g| g.daemon_uid == s("nobody")),
    ("motd file", "/etc/motd", |g| g.motd_file == s("/etc/motd")),
    ("pid file", "/run/rsyncd.pid", |g| {
        g.pid_file == s("/run/rsyncd.pid")
    }),
    ("proxy protocol hosts", "10.0.0.1 10.0.0.2", |g| {
        g.proxy_protocol_hosts == s("10.0.0.1 10.0.0.2")
    }),
    ("socket options", "SO_KEEPALIVE", |g| {
        g.socket_options == s("SO_KEEPALIVE")
    }),
    ("listen backlog", "64", |g| g.listen_backlog == 64),
    ("port", "8730", |g| g.port == 8730),
    ("proxy protocol", "yes", |g| g.proxy_protocol),
];

/// Each module parameter with a value to set and a check of the typed result.
const LOCAL_CASES: [(&str, &str, LocalCheck); 48] = [
    ("auth digest", "sha256", |p| p.auth_digest == s("sha256")),
    ("auth users", "alice:rw, @staff", |p| {
        p.auth_users == s("alice:rw, @staff")
    }),
    ("charset", "utf-8", |p| p.charset == s("utf-8")),
    ("comment", "Hello, world", |p| {
        p.comment == s("Hello, world")
    }),
    ("dont compress", "*.gz *.zst", |p| {
        p.dont_compress == "*.gz *.zst"
    }),
    ("early exec", "/bin/true %RSYNC_MODULE_NAME%", |p| {
        p.early_exec == s("/bin/true %RSYNC_MODULE_NAME%")
    }),
    ("exclude", "*.tmp", |p| p.exclude == s("*.tmp")),
    ("exclude from", "/etc/ex", |p| {
        p.exclude_from == s("/etc/ex")
    }),
    ("filter", "- *.o", |p| p.filter == s("- *.o")),
    ("gid", "staff", |p| p.gid == s("staff")),
    ("hosts allow", "10.0.0.0/8", |p| {
        p.hosts_allow == s("10.0.0.0/8")
    }),
    ("hosts deny", "*", |p| p.hosts_deny == s("*")),
    ("include", "*.c", |p| p.include == s("*.c")),
    ("include from", "/etc/in", |p| {
        p.include_from == s("/etc/in")
    }),
    ("incoming chmod", "Dg+s,ug+w", |p| {
        p.incoming_chmod == s("Dg+s,ug+w")
    }),
    ("lock file", "/run/x.lock", |p| p.lock_file == "/run/x.lock"),
    ("log file", "/var/log/r.log", |p| {
        p.log_file == s("/var/log/r.log")
    }),
    ("log format", "%t %f", |p| p.log_format == "%t %f"),
    ("name", "renamed", |p| p.name == s("renamed")),
    ("name converter", "/usr/bin/nameconv", |p| {
        p.name_converter == s("/usr/bin/nameconv")
    }),
    ("outgoing chmod", "o-rwx", |p| {
        p.outgoing_chmod == s("o-rwx")
    }),
    ("post-xfer exec", "/bin/post", |p| {
        p.post_xfer_exec == s("/bin/post")
    }),
    ("pre-xfer exec", "/bin/pre", |p| {
        p.pre_xfer_exec == s("/bin/pre")
    }),
    ("refuse options", "delete*", |p| {
        p.refuse_options == s("delete*")
    }),
    ("secrets file", "/etc/rsyncd.secrets", |p| {
        p.secrets_file == s("/etc/rsyncd.secrets")
    }),
    ("syslog tag", "mirror", |p| p.syslog_tag == "mirror"),
    ("uid", "backup", |p| p.uid == s("backup")),
    ("path", "/srv/data/", |p| p.path == s("/srv/data")),
    ("temp dir", "/tmp//", |p| p.temp_dir == s("/tmp")),
    ("max connections", "12", |p| p.max_connections == 12),
    ("max verbosity", "3", |p| p.max_verbosity == 3),
    ("timeout", "300", |p| p.timeout == 300),
    ("syslog facility", "local3", |p| {
        p.syslog_facility == SyslogFacility::Local(3)
    }),
    ("fake super", "yes", |p| p.fake_super),
    ("forward lookup", "no", |p| !p.forward_lookup),
    ("ignore errors", "true", |p| p.ignore_errors),
    ("ignore nonreadable", "1", |p| p.ignore_nonreadable),
    ("insecure links", "YES", |p| p.insecure_links),
    ("list", "false", |p| !p.list),
    ("read only", "0", |p| !p.read_only),
    ("reverse lookup", "No", |p| !p.reverse_lookup),
    ("strict modes", "FALSE", |p| !p.strict_modes),
    ("transfer logging", "yes", |p| p.transfer_logging),
    ("write only", "yes", |p| p.write_only),
    ("munge symlinks", "no", |p| p.munge_symlinks == Some(false)),
    ("numeric ids", "yes", |p| p.numeric_ids == Some(true)),
    ("open noatime", "true", |p| p.open_noatime == Some(true)),
    ("use chroot", "0", |p| p.use_chroot == Some(false)),
];

#[test]
fn the_tables_hold_exactly_upstreams_parameters() {
    assert_eq!(Globals::names().collect::<Vec<_>>(), UPSTREAM_GLOBALS);
    assert_eq!(ModuleParams::names().collect::<Vec<_>>(), UPSTREAM_LOCALS);
    let global_cases: Vec<_> = GLOBAL_CASES.iter().map(|c| c.0).collect();
    let local_cases: Vec<_> = LOCAL_CASES.iter().map(|c| c.0).collect();
    assert_eq!(global_cases, UPSTREAM_GLOBALS);
    assert_eq!(local_cases, UPSTREAM_LOCALS);
}

#[test]
fn every_global_parameter_is_read_back_typed() {
    for (name, value, check) in GLOBAL_CASES {
        let cfg = parse(&format!("{name} = {value}\n"));
        assert!(check(&cfg.global), "{name} = {value}: {:?}", cfg.global);
        assert!(
            !check(&Globals::default()),
            "{name}: the test value is the default"
        );
        let set: Vec<_> = cfg.global.explicitly_set().collect();
        assert_eq!(set.len(), 1, "{name}");
        assert_eq!(set[0].0, name);
        assert_eq!(set[0].1.line, 1);
        assert!(cfg.warnings.is_empty(), "{name}: {:?}", cfg.warnings);
    }
}

#[test]
fn every_module_parameter_is_read_back_typed_in_a_module_and_as_a_default() {
    for (name, value, check) in LOCAL_CASES {
        let cfg = parse(&format!("[m]\n{name} = {value}\n"));
        let module = &cfg.modules[0];
        assert!(check(&module.params), "{name} = {value}: {module:?}");
        assert!(
            !check(&ModuleParams::default()),
            "{name}: test value is the default"
        );
        assert!(!check(&cfg.defaults), "{name} leaked into the defaults");
        let set: Vec<_> = module.explicitly_set().collect();
        assert_eq!(set.len(), 1, "{name}: {set:?}");
        assert_eq!((set[0].0, set[0].1.line), (name, 2));

        let cfg = parse(&format!("{name} = {value}\n[other]\n"));
        assert!(check(&cfg.defaults), "{name} = {value} as a default");
        if name != "name" {
            // A module starts from the defaults; only its name is its header's.
            assert!(check(&cfg.modules[0].params), "{name} not inherited");
            assert_eq!(
                cfg.modules[0].params.set_location(name).map(|l| l.line),
                Some(1)
            );
        }
        assert!(cfg.warnings.is_empty(), "{name}: {:?}", cfg.warnings);
    }
}

#[test]
fn names_are_matched_without_case_or_spaces() {
    for (name, value, check) in LOCAL_CASES {
        let squeezed: String = name.chars().filter(|c| *c != ' ').collect();
        let shouted = squeezed.to_uppercase();
        let cfg = parse(&format!("[m]\n  {shouted}   =   {value}  \n"));
        assert!(check(&cfg.modules[0].params), "{shouted}");
    }
    for (name, value, check) in GLOBAL_CASES {
        let spread: String = name.chars().flat_map(|c| [c, ' ']).collect();
        let cfg = parse(&format!("{spread}= {value}\n"));
        assert!(check(&cfg.global), "{spread}");
    }
}

#[test]
fn upstream_defaults() {
    let g = Globals::default();
    assert_eq!(g.address, None);
    assert_eq!(g.listen_backlog, 5);
    assert_eq!(g.port, 0);
    assert!(!g.proxy_protocol);
    assert_eq!(g.explicitly_set().count(), 0);

    let p = ModuleParams::default();
    assert_eq!(p.dont_compress, DEFAULT_DONT_COMPRESS);
    assert!(p.dont_compress.starts_with("*.3g2 *.3gp *.7z "));
    assert!(p.dont_compress.ends_with(" *.z *.zip *.zst"));
    assert_eq!(p.lock_file, "/var/run/rsyncd.lock");
    assert_eq!(p.log_format, "%o %h [%a] %m (%u) %f %l");
    assert_eq!(p.syslog_tag, "rsyncd");
    assert_eq!(p.syslog_facility, SyslogFacility::Daemon);
    assert_eq!((p.max_connections, p.max_verbosity, p.timeout), (0, 1, 0));
    assert!(p.forward_lookup && p.list && p.read_only && p.reverse_lookup && p.strict_modes);
    assert!(!(p.fake_super || p.ignore_errors || p.ignore_nonreadable || p.insecure_links));
    assert!(!(p.transfer_logging || p.write_only));
    assert_eq!(
        (
            p.munge_symlinks,
            p.numeric_ids,
            p.open_noatime,
            p.use_chroot
        ),
        (None, None, None, None)
    );
    assert_eq!((p.path.as_deref(), p.comment.as_deref()), (None, None));
    assert_eq!(p.explicitly_set().count(), 0);
}

#[test]
fn bad_values_of_every_typed_parameter_are_errors() {
    let typed: [(&str, &str); 5] = [
        ("max connections", "lots"),
        ("timeout", "10m"),
        ("read only", "maybe"),
        ("use chroot", "sometimes"),
        ("syslog facility", "deamon"),
    ];
    let mut text = String::from("port = 99999\nlisten backlog = 1.5\nproxy protocol = on\n");
    for (name, value) in typed {
        text.push_str(&format!("{name} = {value}\n"));
    }
    let errs = DaemonConfig::parse_with_env(
        &text,
        Path::new("t.conf"),
        &MemoryIncludes::new(),
        &[],
        &|_| None,
    )
    .unwrap_err();
    let keys: Vec<_> = errs.0.iter().map(|e| (e.line, e.key.as_str())).collect();
    assert_eq!(
        keys,
        [
            (1, "port"),
            (2, "listen backlog"),
            (3, "proxy protocol"),
            (4, "max connections"),
            (5, "timeout"),
            (6, "read only"),
            (7, "use chroot"),
            (8, "syslog facility"),
        ]
    );
}
