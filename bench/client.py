#!/usr/bin/env python3
"""Client benchmark: `syncctl push` (the library's rsync client) against the stock rsync client,
both pushing to stock `rsync --daemon` and to rsyncd-rs.

Issue 8: the client's push of 20,000 small files and of 1 GiB against the stock client's
time, measured in the same run (target: ratio at most 1.0); a one-file session's latency,
process start to exit, p50/p99 over 200 sessions (targets for syncctl: p50 under 5 ms
against rsyncd-rs, under 20 ms against stock rsyncd); the client's peak RSS. For each
daemon both clients push, alternating which goes first, each measurement repeated and the
median reported; every push is checked against its source. See bench/README.md.

Exits 0 whatever the figures are (this is a benchmark, not a test); says whether each
target holds. Exits non-zero only when the benchmark itself cannot run (a daemon does not
start, a push fails, a module does not match its source).
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from common import (
    MTIME_BASE,
    Bench,
    Daemon,
    GNU_TIME,
    Result,
    common_args,
    compare_trees,
    descendants,
    fail,
    find_ours,
    finish_args,
    held,
    human_bytes,
    log,
    make_sources,
    measure,
    paired_ratio,
    pct,
    print_table,
    read_maxrss,
    repetitions,
    run_bench,
    same_content,
    tail,
    time_wrapped,
    tree_meta,
)

CLIENT_WITH_Z = ["-artuz", "-R", "--delete"]
CLIENT_WITHOUT_Z = ["-artu", "-R", "--delete"]

# syncctl / stock client, median seconds of a push.
TIME_TARGET = 1.0
# syncctl's one-file session, p50 in ms, by daemon.
LATENCY_TARGET_MS = {"rsyncd-rs": 5.0, "stock": 20.0}

CLIENTS = ("stock", "syncctl")

WORKLOADS = [
    ("small-initial", "{n} small files / {d} dirs, initial push"),
    ("small-nochange", "re-push of the {n}, nothing changed"),
    ("big-initial", "one {big} file, initial push"),
]

# Every content check after a push compares the bytes of this share of the files (all of
# them after the warm-up and the first counted repetition); names, sizes, mtimes, modes
# and owners always.
CONTENT_SAMPLE = 25


@dataclass
class Clients:
    stock: str
    syncctl: str
    password: Path
    work: Path

    def argv(self, client: str, port: int, opts: list[str], paths: list[str],
             src: Path) -> tuple[list[str], Path]:
        """The command line of one push of `paths` (relative to `src`), and where it runs.
        The stock client runs in `src` (the reference command); syncctl is told `--root`
        and runs in the scratch directory, so that the option is what makes it work."""
        url = f"rsync://rsync_backup@127.0.0.1:{port}/backup/"
        pw = f"--password-file={self.password}"
        if client == "stock":
            return [self.stock, *opts, *paths, url, pw], src
        return [self.syncctl, "push", "--root", str(src), *opts, pw, *paths, url], self.work


# ----------------------------------------------------------------------------- checks


def check_tree(b: Bench, d: Daemon, src: Path, what: str, full: bool) -> None:
    """The module equals `src`: names, types, modes, owners (the fake-super xattr), mtimes,
    sizes, and bytes (of every file when `full`, else a sample). Fails loudly."""
    if b.args.no_verify:
        return
    problems = compare_trees(src, d.module, fake_super=True,
                             content_every=1 if full else CONTENT_SAMPLE)
    if problems:
        fail(b, d, f"{what}: the module {d.module} differs from the source {src}", problems)


# ----------------------------------------------------------------------------- pushes


def key(daemon: str, client: str) -> str:
    return f"{daemon}/{client}"


def record(b: Bench, mode: str, wl: str, daemon: str, client: str, r: Result,
           warm: bool) -> None:
    if not warm:
        b.results.setdefault((mode, wl, key(daemon, client)), []).append(r)
    log(f"  {wl:15s} {daemon:9s} <- {client:8s} {r.wall_s:8.2f} s  client peak RSS "
        f"{human_bytes(r.client_peak_kib * 1024)} ({r.client_procs} procs), CPU "
        f"{r.client_cpu_s:.2f} s; daemon CPU {r.daemon_cpu_s:.2f} s; "
        f"elsewhere {r.elsewhere_cpu_s:.2f} CPU s")


def run_mode(b: Bench, cl: Clients, mode: str, opts: list[str], srcs: dict[str, Path]) -> None:
    for rep, dorder, warm in repetitions(b, mode):
        # The clients alternate too: the stock client first in the first counted
        # repetition and every other one after it (paired_ratio's convention).
        corder = list(CLIENTS) if rep % 2 == 0 else list(CLIENTS)[::-1]
        full = warm or rep == 0
        for dn in dorder:
            d = b.daemons[dn]

            def one(wl: str, src: Path, client: str, empty: bool) -> None:
                if empty:
                    d.reset_module()
                cwd = cl.argv(client, 0, opts, ["./"], src)[1]
                r = measure(b, d, lambda port: [cl.argv(client, port, opts, ["./"], src)[0]],
                            cwd, f"push by {client}", client_rss=True)
                record(b, mode, wl, dn, client, r, warm)
                check_tree(b, d, src, f"[{' '.join(opts)}] {wl}: {client} to {dn}", full)

            if "small" in b.args.workloads:
                for c in corder:
                    one("small-initial", srcs["small"], c, True)
                    one("small-nochange", srcs["small"], c, False)
            if "big" in b.args.workloads:
                for c in corder:
                    one("big-initial", srcs["big"], c, True)
    # The moved-aside trees would fill the disk over the option sets (see pull.py).
    log(f"[{mode}] deleting the pushed trees")
    for d in b.daemons.values():
        d.reset_module()
        subprocess.run(["rm", "-rf", "--", str(d.dir / "trash")], check=True)


# ----------------------------------------------------------------------------- latency


@dataclass
class Session:
    ms: float
    cpu_ms: float
    # syncctl's own account of the session, connect to done (the measure);
    # None for the stock client, which reports no such figure.
    inner_ms: float | None = None


SESSION_MS = re.compile(rb"session ([0-9.]+) ms")


def inner_ms(out: Path) -> float | None:
    """The `session X ms` figure syncctl prints in its summary line, if any."""
    m = SESSION_MS.search(out.read_bytes())
    return float(m.group(1)) if m else None


def spawn_timed(argv: list[str], out_fd: int) -> tuple[float, int, os.struct_rusage]:
    """Runs `argv` (in the current directory, output to `out_fd`) and returns the time from
    just before posix_spawn to wait4's return in ms, its exit code and its rusage.
    posix_spawn (vfork and exec) keeps the script's own share of the time small."""
    os.ftruncate(out_fd, 0)
    t0 = time.perf_counter_ns()
    pid = os.posix_spawn(argv[0], argv, os.environ,
                         file_actions=[(os.POSIX_SPAWN_DUP2, out_fd, 1),
                                       (os.POSIX_SPAWN_DUP2, out_fd, 2)])
    _, status, ru = os.wait4(pid, 0)
    ms = (time.perf_counter_ns() - t0) / 1e6
    return ms, os.waitstatus_to_exitcode(status), ru


def change_file(f: Path, k: int) -> None:
    """New bytes at the start (same size) and an mtime newer than any before, so that -u
    sends it."""
    data = bytearray(f.read_bytes())
    tag = b"change %08d\n" % k
    data[: len(tag)] = tag
    f.write_bytes(bytes(data))
    t = MTIME_BASE + 2_000_000 + k
    os.utime(f, (t, t))


def complaints(d: Daemon, offset: int) -> list[str]:
    """The lines of the daemon's log after `offset` that report a problem. A session can
    end well and leave the module right while one side misread the other: the tree check
    does not see that, the daemon's log may."""
    with open(d.logfile, "rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    words = ("error", "invalid", "warning", "failed", "unexpected")
    return [l for l in text.splitlines() if any(w in l.lower() for w in words)]


def settle(d: Daemon) -> None:
    """Waits until the daemon's last session processes have exited (a client can exit
    before them), so that no session runs beside the tail of the one before."""
    deadline = time.monotonic() + 10
    while descendants(d.proc.pid) and time.monotonic() < deadline:  # type: ignore[union-attr]
        time.sleep(0.001)


def floor_ms(argv: list[str], out_fd: int, n: int = 30) -> float:
    """p50 of a process that does nothing much (start, exit), by the same timer."""
    return statistics.median(spawn_timed(argv, out_fd)[0] for _ in range(n))


def run_latency(b: Bench, cl: Clients, src: Path, opts: list[str]) -> dict[str, float]:
    """For each daemon: the module filled by an untimed push, then `--sessions` rounds (after
    `--latency-warmup` uncounted ones) in each of which both clients, alternating which
    goes first, push one changed file each in a session of its own, each once the daemon's
    processes of the session before have exited. Every session's file is
    checked in the module right after it; the whole tree when the daemon is done. The
    warm-up sessions run under GNU time, for the clients' peak RSS (the rusage of a child
    of this script would count the interpreter's, see `time_wrapped`); the counted ones
    bare. Returns the process floors (ms)."""
    a = b.args
    files = sorted(src.glob("d*/f*.txt"))
    random.Random(8).shuffle(files)
    outf = b.work / "latency.out"
    out_fd = os.open(outf, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    cwd = os.getcwd()
    os.chdir(src)  # the stock client's paths are relative to it; posix_spawn has no cwd
    k = 0
    try:
        floors = {
            "true": floor_ms(["/bin/true"], out_fd),
            "stock": floor_ms([cl.stock, "--version"], out_fd),
            "syncctl": floor_ms([cl.syncctl, "--version"], out_fd),
        }
        for dn in b.daemons:
            d = b.daemons[dn]
            d.reset_module()
            log_from = d.logfile.stat().st_size if d.logfile.exists() else 0
            d.start()
            try:
                argv, _ = cl.argv("stock", d.port, opts, ["./"], src)
                r = subprocess.run(argv, capture_output=True, text=True)
                if r.returncode != 0:
                    fail(b, d, f"latency: the initial push to {dn} failed ({r.returncode})",
                         [r.stdout[-2000:], r.stderr[-2000:]])
                log(f"[latency] {dn}: {a.latency_warmup} + {a.sessions} rounds of one "
                    "session per client")
                for i in range(-a.latency_warmup, a.sessions):
                    for c in CLIENTS if i % 2 == 0 else CLIENTS[::-1]:
                        f = files[k % len(files)]
                        rel = str(f.relative_to(src))
                        change_file(f, k)
                        k += 1
                        argv, _ = cl.argv(c, d.port, opts, [rel], src)
                        settle(d)
                        if i < 0:
                            argv = time_wrapped(argv, b.work / "client.maxrss")
                        ms, code, ru = spawn_timed(argv, out_fd)
                        if code != 0:
                            fail(b, d, f"latency: {c} pushing {rel} to {dn} exited with "
                                       f"{code}:\n{' '.join(argv)}\n{tail(outf)}", [])
                        if not a.no_verify:
                            t = d.module / rel
                            if (not t.exists()
                                    or tree_meta(str(f)) != tree_meta(str(t), True)
                                    or not same_content(str(f), str(t))):
                                fail(b, d, f"latency: after {c}'s session {rel} in {dn}'s "
                                           f"module differs from {f}\n{tail(outf)}", [])
                        if i < 0:
                            b.results.setdefault(("latency-rss", dn, c), []).append(
                                read_maxrss(b.work / "client.maxrss"))
                        else:
                            b.results.setdefault(("latency", dn, c), []).append(Session(
                                ms, (ru.ru_utime + ru.ru_stime) * 1000,
                                inner_ms(outf) if c == "syncctl" else None))
                    if i >= 0 and (i + 1) % 50 == 0:
                        log(f"  {i + 1} rounds; last: " + ", ".join(
                            f"{c} {b.results[('latency', dn, c)][-1].ms:.1f} ms"
                            for c in CLIENTS))
            finally:
                d.stop()
            check_tree(b, d, src, f"latency: after the sessions to {dn}", False)
            b.results[("latency-log", dn, "")] = complaints(d, log_from)
    finally:
        os.chdir(cwd)
        os.close(out_fd)
    return floors


# ----------------------------------------------------------------------------- report


def report_pushes(b: Bench, labels: dict[str, str]) -> list[str]:
    warns: list[str] = []
    for mode in b.args.modes:
        opts = " ".join(b.mode_opts[mode])
        print()
        print(f"== pushes, client options {opts}   (median of {b.args.repeats}; peak RSS = "
              "max over the repetitions)")
        rows, extra = [], []
        for dn in b.daemons:
            for wl, _ in b.workloads:
                rs = b.results.get((mode, wl, key(dn, "stock")))
                ro = b.results.get((mode, wl, key(dn, "syncctl")))
                if not rs or not ro:
                    continue
                ts = statistics.median(r.wall_s for r in rs)
                to = statistics.median(r.wall_s for r in ro)
                ratio = to / ts if ts > 0 else float("inf")
                paired, order = paired_ratio(rs, ro)
                ps = max(r.client_peak_kib for r in rs)
                po = max(r.client_peak_kib for r in ro)
                rows.append([dn, labels[wl], f"{ts:.2f}", f"{to:.2f}", f"{ratio:.2f}",
                             f"{paired:.2f}" if paired else "-",
                             human_bytes(ps * 1024), human_bytes(po * 1024),
                             f"{po / ps:.2f}" if ps else "-", held(ratio <= TIME_TARGET)])
                if ratio > TIME_TARGET:
                    warns.append(f"WARN [{opts}] {wl} to {dn}: time ratio {ratio:.2f} > "
                                 f"{TIME_TARGET:.1f} (syncctl {to:.2f} s, stock client "
                                 f"{ts:.2f} s)")
                busy = max(r.elsewhere_cpu_s / r.wall_s for r in rs + ro if r.wall_s > 0)
                if busy > 0.1:
                    warns.append(f"NOTE [{opts}] {wl} to {dn}: other processes (or kernel "
                                 f"threads) used up to {busy:.0%} of a CPU during these runs")

                def cpu(rr: list[Result]) -> str:
                    u = statistics.median(r.client_cpu_s - r.client_sys_s for r in rr)
                    s = statistics.median(r.client_sys_s for r in rr)
                    return f"{u:.2f} / {s:.2f}"

                def dcpu(rr: list[Result]) -> str:
                    return f"{statistics.median(r.daemon_cpu_s for r in rr):.2f}"

                extra.append([
                    dn, labels[wl], cpu(rs), cpu(ro),
                    f"{max(r.client_procs for r in rs)}/{max(r.client_procs for r in ro)}",
                    f"{dcpu(rs)} / {dcpu(ro)}",
                    f"{min(r.wall_s for r in ro) / min(r.wall_s for r in rs):.2f}",
                    f"{order:.2f}" if order else "-",
                    f"{busy:.0%}",
                    " ".join(f"{r.wall_s:.2f}" for r in rs) + " / "
                    + " ".join(f"{r.wall_s:.2f}" for r in ro),
                ])
        print_table(["daemon", "workload", "stock client s", "syncctl s", "ratio",
                     "paired ratio", "stock client peak RSS", "syncctl peak RSS",
                     "RSS ratio", f"time <= {TIME_TARGET:.1f}"], rows)
        print()
        print_table(["daemon", "workload", "stock client CPU s user / sys",
                     "syncctl CPU s user / sys", "client procs (stock/syncctl)",
                     "daemon CPU s (with stock client / syncctl)", "best-run ratio",
                     "1st/2nd", "busy elsewhere (max)", "all runs s (stock / syncctl)"],
                    extra)
    return warns


def rss_cell(kibs: list[int]) -> str:
    return human_bytes(max(kibs) * 1024) if kibs and max(kibs) else "-"


def report_latency(b: Bench, floors: dict[str, float]) -> list[str]:
    warns: list[str] = []
    opts = " ".join(CLIENT_WITH_Z)
    print()
    print(f"== one-file sessions ({opts} dNNN/fNNNNN.txt), {b.args.sessions} per client and "
          "daemon: ms from posix_spawn to wait4's return (the process start included)")
    rows = []
    for dn in b.daemons:
        p50s: dict[str, float] = {}
        for c in CLIENTS:
            ss = b.results.get(("latency", dn, c))
            if not ss:
                continue
            ms = [s.ms for s in ss]
            p50s[c] = pct(ms, 50)
            target = LATENCY_TARGET_MS[dn]
            ok = "-" if c == "stock" else held(p50s[c] < target)
            ratio = f"{p50s[c] / p50s['stock']:.3f}" if c != "stock" and "stock" in p50s else "-"
            rows.append([dn, c, f"{p50s[c]:.1f}", f"{pct(ms, 99):.1f}", f"{min(ms):.1f}",
                         f"{max(ms):.1f}", ratio,
                         f"{statistics.median(s.cpu_ms for s in ss):.1f}",
                         rss_cell(b.results.get(("latency-rss", dn, c), [])),
                         f"(judged below) {ok}" if c != "stock" else "-"])
    print_table(["daemon", "client", "p50 ms", "p99 ms", "min ms", "max ms", "p50 ratio",
                 "client CPU ms (p50)", "client peak RSS (warm-ups)",
                 "p50 target (syncctl)"],
                rows)
    # The measure is connect to done: syncctl times its own session (what the
    # agent, which calls the library in-process, pays); the process start is apart.
    inner_rows = []
    for dn in b.daemons:
        ss = [s for s in b.results.get(("latency", dn, "syncctl"), []) if s.inner_ms is not None]
        if not ss:
            continue
        ms = [s.inner_ms for s in ss if s.inner_ms is not None]
        target = LATENCY_TARGET_MS[dn]
        p50 = pct(ms, 50)
        inner_rows.append([dn, f"{p50:.2f}", f"{pct(ms, 99):.2f}", f"{min(ms):.2f}",
                           f"< {target:g} ms: {held(p50 < target)}"])
        if p50 >= target:
            warns.append(f"WARN one-file session to {dn}: syncctl connect-to-done p50 "
                         f"{p50:.2f} ms, target < {target:g} ms")
    if inner_rows:
        print()
        print("syncctl's sessions, connect to done (its own timer, the process start left out):")
        print_table(["daemon", "p50 ms", "p99 ms", "min ms", "p50 target"], inner_rows)
    print(f"process floor, p50 of the same timer: /bin/true {floors['true']:.2f} ms, "
          f"rsync --version {floors['stock']:.2f} ms, syncctl --version "
          f"{floors['syncctl']:.2f} ms")
    for dn in b.daemons:
        lines = b.results.get(("latency-log", dn, ""), [])
        if lines:
            # Both clients took turns: the log's process ids tell whose session it was.
            warns.append(f"NOTE the {dn} daemon logged {len(lines)} complaint(s) during the "
                         f"one-file sessions (both clients), e.g.: {lines[0]}")
    return warns


# ----------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="2,000 files, a 64 MiB file, 2 repetitions and 100 sessions instead "
                         "of 20,000, 1 GiB, 4 and 200")
    ap.add_argument("--syncctl", help="syncctl binary (default target/release/syncctl, "
                                      "built when missing)")
    ap.add_argument("--sessions", type=int,
                    help="one-file sessions per client and daemon (200)")
    ap.add_argument("--latency-warmup", type=int, default=10,
                    help="uncounted one-file sessions per client and daemon first (10)")
    common_args(ap, "latency,small,big", delta=False)
    args = ap.parse_args()
    finish_args(args, quick_repeats=2)
    args.sessions = args.sessions if args.sessions is not None else (
        100 if args.quick else 200)
    for w in args.workloads:
        if w not in ("latency", "small", "big"):
            raise SystemExit(f"--workloads: unknown {w!r}")
    # The latency sessions push files of the small tree.
    gen = argparse.Namespace(**vars(args))
    if "latency" in args.workloads and "small" not in gen.workloads:
        gen.workloads = gen.workloads + ["small"]
    syncctl = find_ours(args.syncctl, "syncctl", "--syncctl")
    if not os.access(GNU_TIME, os.X_OK):
        raise SystemExit(f"{GNU_TIME}: not found (install GNU time: the clients' peak RSS)")
    srcs: dict[str, Path] = {}
    cl: Clients | None = None

    def prepare(b: Bench) -> None:
        nonlocal cl
        srcs.update({k: b.work / f"src-{k}" for k in ("small", "big")})
        make_sources(gen, srcs["small"], srcs["big"], None)
        cl = Clients(args.client, syncctl, b.work / "rsync.password.client", b.work)

    def body(b: Bench) -> None:
        assert cl is not None
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).parent).stdout.strip()
        print(f"  our client: {syncctl} push (source at commit {commit or '?'})")
        floors = None
        # The latency first, while the filesystem has freed no inodes yet (see empty_dir).
        if "latency" in args.workloads:
            floors = run_latency(b, cl, srcs["small"], CLIENT_WITH_Z)
        if {"small", "big"} & set(args.workloads):
            for mode in args.modes:
                run_mode(b, cl, mode, b.mode_opts[mode], srcs)

        a = b.args
        labels = {wl: text.format(n=f"{a.files:,}", d=a.dirs,
                                  big=human_bytes(a.big_mib << 20).replace(".0 ", " "))
                  for wl, text in b.workloads}
        warns = report_pushes(b, labels) if any(k[0] in a.modes for k in b.results) else []
        if floors is not None:
            warns += report_latency(b, floors)
        print()
        print(f"ratio = syncctl / stock client against the same daemon (target <= "
              f"{TIME_TARGET:.1f}); peak RSS = the client's (the kernel's high-water mark, or "
              "the sampled sum of its processes where larger). Latency targets judge syncctl "
              "only.")
        for w in warns:
            print(w)
        missed = sum(w.startswith("WARN") for w in warns)
        print(f"{missed} target(s) missed" if missed else "all targets hold")

    mode_opts = {"z": CLIENT_WITH_Z, "noz": CLIENT_WITHOUT_Z}
    return run_bench(args, "client", {"mode_opts": mode_opts, "workloads": WORKLOADS},
                     prepare, body)


if __name__ == "__main__":
    sys.exit(main())
