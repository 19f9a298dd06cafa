#!/usr/bin/env python3
"""Watcher benchmark: sersync-agent against lsyncd, an inotifywait + rsync loop and sersync
2.5.4, each watching a tree and pushing every change to the same stock `rsync --daemon`.

Issue targets: the agent's change-to-replica latency p50 under 20 ms and p99 under 100 ms
on loopback; its burst (10,000 small files) converged at least 5 times faster than the best
peer; no file lost by anyone. Each watcher starts fresh for each workload (empty module,
empty watched tree) and is warmed up first; the watchers take turns, in alternating order
over the repetitions. Every file is checked in the module after each run (size, bytes,
mtime, mode). See bench/README.md.

Exits 0 whatever the figures are (this is a benchmark, not a test); says whether each
target holds. Exits non-zero only when the benchmark itself cannot run (the daemon does not
start, sersync-agent is missing or never pushes anything).
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from common import (
    SEED,
    Daemon,
    Env,
    Sampler,
    Watcher,
    busy_ticks,
    check_files,
    content,
    descendants,
    find_ours,
    fs_type,
    held,
    human_bytes,
    log,
    pct,
    print_table,
    tail,
    tool_path,
    tree_cpu_s,
    wait_arrival,
    write_file,
)

WATCHERS = ("sersync-agent", "lsyncd", "inotifywait", "sersync2")

LATENCY_P50_MS = 20.0
LATENCY_P99_MS = 100.0
BURST_SPEEDUP = 5.0


def warm_up(e: Env, w: Watcher, src: Path, module: Path) -> str | None:
    """Waits until the watcher pushes (a new file every second until one arrives: one
    written before its watches are set is never pushed), then pushes `--warmup` files one
    at a time. Returns what went wrong, or None."""
    rng = random.Random(7)
    deadline = time.monotonic() + e.args.ready_timeout
    k = 0
    while True:
        if not w.alive():
            return f"exited with {w.proc.returncode} before pushing anything"
        data = content(f"ready-{k}", rng)
        write_file(src / f"ready{k:03d}.dat", data)
        if wait_arrival(module / f"ready{k:03d}.dat", len(data), 1.0, 0.002) is not None:
            break
        k += 1
        if time.monotonic() > deadline:
            return f"pushed nothing within {e.args.ready_timeout:g} s"
    for i in range(e.args.warmup):
        data = content(f"warm-{i}", rng)
        write_file(src / f"warm{i:03d}.dat", data)
        if wait_arrival(module / f"warm{i:03d}.dat", len(data), 30, 0.001) is None:
            return f"warm-up file {i} did not arrive within 30 s"
    return None


# ----------------------------------------------------------------------------- runs


@dataclass
class RunResult:
    watcher: str
    workload: str
    files: int
    error: str | None = None
    latencies_ms: list[float] = field(default_factory=list)
    converge_s: float | None = None  # None: not converged within the timeout
    write_s: float = 0.0
    arrived: int = 0
    missing: int = 0  # not in the module at the end (counted as lost once converged)
    wrong: int = 0
    examples: list[str] = field(default_factory=list)
    sessions: int = 0
    cpu_s: float = 0.0
    peak_rss_kib: int = 0
    max_procs: int = 0
    daemon_cpu_s: float = 0.0
    elsewhere_cpu_s: float = 0.0
    wall_s: float = 0.0
    # From the first write until the watcher and the daemon had stopped pushing (after
    # the files converged; None when that took more than --settle).
    quiet_s: float | None = None


def count_sessions(d: Daemon, offset: int) -> int:
    """The daemon's sessions since `offset` in its log: stock rsyncd logs one `rsync to
    MODULE/ from USER@HOST (ADDR)` line for each session that pushes to a module (it
    writes no `connect from` line unless it looks the host's name up by itself)."""
    try:
        with open(d.logfile, "rb") as f:
            f.seek(offset)
            return f.read().count(b"] rsync to ")
    except OSError:
        return 0


def log_size(d: Daemon) -> int:
    try:
        return d.logfile.stat().st_size
    except OSError:
        return 0


def settle(w: Watcher, d: Daemon, limit: float) -> float | None:
    """Waits (up to `limit` s) until neither the watcher nor the daemon has run a push for
    0.3 s, so that the CPU and the sessions of pushes still going after the last file
    arrived (sersync2's per-file pushes behind its directory pushes, lsyncd's last batch)
    are counted. Returns the perf_counter time the quiet began, or None."""
    # The loop's bash keeps two children between pushes: inotifywait and the subshell.
    idle_kids = 2 if w.name == "inotifywait" else 0
    deadline = time.monotonic() + limit
    quiet_since = None
    while time.monotonic() < deadline:
        busy = (len(descendants(w.pid)) > idle_kids
                or (d.proc is not None and descendants(d.proc.pid)))
        if busy:
            quiet_since = None
        elif quiet_since is None:
            quiet_since = time.perf_counter()
        elif time.perf_counter() - quiet_since >= 0.3:
            return quiet_since
        time.sleep(0.01)
    return None


def one_run(e: Env, name: str, workload: str, rep: int) -> RunResult:
    """Starts the daemon (empty module) and the watcher (empty tree), warms it up, runs the
    workload with its CPU, RSS and sessions measured, then stops both and checks the
    module."""
    a = e.args
    run = e.work / f"{rep}-{workload}-{name}"
    src = run / "src"
    src.mkdir(parents=True)
    os.chmod(run, 0o755)
    d = e.daemon
    d.reset_module()
    d.start()
    r = RunResult(name, workload, a.files if workload == "latency" else a.burst)
    w = None
    rels: list[str] = []
    try:
        w = Watcher(e, name, src, run)
        problem = warm_up(e, w, src, d.module)
        if problem:
            r.error = problem
            return r
        off = log_size(d)
        sampler = Sampler(w.pid, a.poll_ms / 1000)
        cpu0, busy0, self0 = tree_cpu_s(w.pid), busy_ticks(), os.times()
        t0 = time.perf_counter()
        sampler.start()
        try:
            if workload == "latency":
                rels = latency(e, w, src, d.module, r)
            else:
                rels = burst(e, w, src, d.module, r)
            # A run that did not converge is cut off at the timeout.
            if w.alive() and (workload == "latency" or r.converge_s is not None):
                quiet = settle(w, d, a.settle)
                r.quiet_s = None if quiet is None else quiet - t0
        finally:
            sampler.finish()
        r.wall_s = time.perf_counter() - t0
        r.cpu_s = tree_cpu_s(w.pid) - cpu0 if w.alive() else 0.0
        self1 = os.times()
        r.sessions = count_sessions(d, off)
        r.peak_rss_kib = sampler.peak_total_kib
        r.max_procs = sampler.max_procs
        if not w.alive():
            r.error = f"exited with {w.proc.returncode} during the run"
        own = (self1.user - self0.user) + (self1.system - self0.system)
        r.elsewhere_cpu_s = max(0.0, (busy_ticks() - busy0) / os.sysconf("SC_CLK_TCK")
                                - r.cpu_s - own)
    finally:
        if w is not None:
            w.stop()
        r.daemon_cpu_s = sum(d.stop())
        if w is not None and r.error:
            log(f"  {name}: {r.error}\n{tail(w.out, 1500)}")
    r.missing, r.wrong, r.examples = check_files(src, d.module, rels)
    if workload == "latency":
        r.arrived = len(rels) - r.missing
    # The daemon's CPU counts the warm-up's few sessions too; the elsewhere figure
    # leaves out the watcher and this script, not the daemon.
    r.elsewhere_cpu_s = max(0.0, r.elsewhere_cpu_s - r.daemon_cpu_s)
    return r


def latency(e: Env, w: Watcher, src: Path, module: Path, r: RunResult) -> list[str]:
    """`--files` files written one at a time, each once the one before arrived: the time
    from just before its open() to the first poll (every `--latency-poll-ms`) that sees it
    in the module with its whole size."""
    a = e.args
    rng = random.Random(1)
    datas = [content(f"lat-{i}", rng) for i in range(a.files)]
    rels = []
    misses = 0
    for i, data in enumerate(datas):
        rel = f"l{i:05d}.dat"
        rels.append(rel)
        t0 = time.perf_counter()
        write_file(src / rel, data)
        t1 = wait_arrival(module / rel, len(data), a.latency_timeout, a.latency_poll_ms / 1000)
        if t1 is None:
            misses += 1
            log(f"  {w.name}: {rel} not in the module after {a.latency_timeout:g} s")
            if misses >= 3 or not w.alive():
                log(f"  {w.name}: giving up the latency run")
                break
            continue
        r.latencies_ms.append((t1 - t0) * 1000)
        if (i + 1) % 50 == 0:
            log(f"  {w.name}: {i + 1} files, p50 so far {pct(r.latencies_ms, 50):.1f} ms")
    return rels


def burst(e: Env, w: Watcher, src: Path, module: Path, r: RunResult) -> list[str]:
    """`--burst` files of 1-4 KiB written as fast as possible, directory after directory
    (`--burst-dirs`, each made just before its files, as an unpacked archive would), then
    the module listed every `--burst-poll-ms` until every file is there with its size:
    the time to converge is from the first write to the poll that finds the last file."""
    a = e.args
    rng = random.Random(2)
    per_dir, extra = divmod(a.burst, a.burst_dirs)
    plan: list[tuple[str, list[tuple[str, bytes]]]] = []
    idx = 0
    for dn in range(a.burst_dirs):
        files = []
        for _ in range(per_dir + (1 if dn < extra else 0)):
            files.append((f"f{idx:05d}.dat", content(f"burst-{idx}", rng)))
            idx += 1
        plan.append((f"d{dn:03d}", files))
    pending = {dname: {fn: len(data) for fn, data in files} for dname, files in plan}
    rels = [f"{dname}/{fn}" for dname, files in plan for fn, _ in files]

    t0 = time.perf_counter()
    for dname, files in plan:
        dpath = src / dname
        dpath.mkdir()
        for fn, data in files:
            write_file(dpath / fn, data)
    r.write_s = time.perf_counter() - t0
    log(f"  {w.name}: {a.burst} files written in {r.write_s:.2f} s")

    left = a.burst
    deadline = t0 + a.timeout
    next_note = time.monotonic() + 10
    while left:
        now = time.perf_counter()
        for dname in list(pending):
            try:
                names = os.listdir(module / dname)
            except FileNotFoundError:
                continue
            want = pending[dname]
            for fn in names:
                size = want.get(fn)
                if size is None:
                    continue
                try:
                    if os.stat(module / dname / fn).st_size != size:
                        continue
                except FileNotFoundError:
                    continue
                del want[fn]
                left -= 1
            if not want:
                del pending[dname]
        if not left:
            r.converge_s = now - t0
            r.arrived = a.burst
            break
        r.arrived = a.burst - left
        if now > deadline or not w.alive():
            log(f"  {w.name}: not converged after {now - t0:.0f} s: "
                f"{a.burst - left}/{a.burst} arrived")
            break
        if time.monotonic() > next_note:
            log(f"  {w.name}: {a.burst - left}/{a.burst} arrived after {now - t0:.0f} s")
            next_note += 10
        time.sleep(a.burst_poll_ms / 1000)
    if r.converge_s is not None:
        log(f"  {w.name}: converged in {r.converge_s:.2f} s")
    return rels


# ----------------------------------------------------------------------------- report


def ms(x: float) -> str:
    return f"{x:.1f}"


def busy_cell(rr: list[RunResult]) -> str:
    """The most CPU anything else used during these runs, as a share of one CPU."""
    return f"{max((r.elsewhere_cpu_s / r.wall_s for r in rr if r.wall_s), default=0):.0%}"


def quiet_cell(rr: list[RunResult], limit: float) -> str:
    """When the pushes stopped (median), "-" for a run cut off at the timeout."""
    if any(r.converge_s is None for r in rr):
        return "-"
    qs = [r.quiet_s for r in rr]
    if any(q is None for q in qs):
        return f"> conv. + {limit:g}"
    return f"{statistics.median(q for q in qs if q is not None):.2f}"


def report(e: Env, results: list[RunResult]) -> list[str]:
    """Prints one table per workload; returns the NOTE and WARN lines."""
    a = e.args
    warns: list[str] = []
    names = [n for n in WATCHERS if n in e.tools]

    def runs(name: str, wl: str) -> list[RunResult]:
        return [r for r in results if r.watcher == name and r.workload == wl]

    def failed(rr: list[RunResult]) -> str | None:
        errs = [r.error for r in rr if r.error]
        return errs[0] if errs else None

    if "latency" in a.workloads:
        print()
        print(f"== latency: {a.files} files of 1-4 KiB written one at a time, each once the one "
              f"before arrived; ms from just before the write to the file seen whole in the "
              f"module (polled every {a.latency_poll_ms:g} ms)"
              + (f"; {a.repeats} runs pooled" if a.repeats > 1 else ""))
        rows = []
        for n in names:
            rr = runs(n, "latency")
            if not rr:
                continue
            lat = [x for r in rr for x in r.latencies_ms]
            lost = sum(r.missing for r in rr)
            wrong = sum(r.wrong for r in rr)
            files = sum(r.files for r in rr)
            cpu = sum(r.cpu_s for r in rr)
            err = failed(rr)
            if not lat:
                rows.append([n, f"{files}", "-", "-", "-", "-", f"{lost}", f"{wrong}", "-", "-",
                             "-", "-", "-", f"failed: {err}"])
                warns.append(f"WARN latency: {n} failed: {err}")
                continue
            p50, p99 = pct(lat, 50), pct(lat, 99)
            target = "-"
            if n == "sersync-agent":
                target = (f"p50 < {LATENCY_P50_MS:g}: {held(p50 < LATENCY_P50_MS)}, "
                          f"p99 < {LATENCY_P99_MS:g}: {held(p99 < LATENCY_P99_MS)}")
                if p50 >= LATENCY_P50_MS:
                    warns.append(f"WARN latency: sersync-agent p50 {p50:.1f} ms, target < "
                                 f"{LATENCY_P50_MS:g} ms")
                if p99 >= LATENCY_P99_MS:
                    warns.append(f"WARN latency: sersync-agent p99 {p99:.1f} ms, target < "
                                 f"{LATENCY_P99_MS:g} ms")
            if err:
                target += f" (run failed: {err})"
                warns.append(f"WARN latency: {n}: {err}")
            rows.append([n, f"{files}", ms(p50), ms(p99), ms(min(lat)), ms(max(lat)),
                         f"{lost}", f"{wrong}", f"{cpu:.2f}",
                         f"{cpu * 1000 / max(1, len(lat)):.1f}",
                         human_bytes(max(r.peak_rss_kib for r in rr) * 1024),
                         f"{sum(r.sessions for r in rr)}", busy_cell(rr), target])
            if lost or wrong:
                warns.append(f"WARN latency: {n} lost {lost} file(s), {wrong} arrived wrong "
                             + "; ".join(x for r in rr for x in r.examples[:2]))
        print_table(["watcher", "files", "p50 ms", "p99 ms", "min ms", "max ms", "lost",
                     "wrong", "CPU s", "CPU ms/file", "peak RSS", "sessions", "busy elsewhere",
                     "target"], rows)

    if "burst" in a.workloads:
        print()
        print(f"== burst: {a.burst:,} files of 1-4 KiB written as fast as possible into "
              f"{a.burst_dirs} new directories; s from the first write to every file in the "
              f"module with its size (polled every {a.burst_poll_ms:g} ms; timeout "
              f"{a.timeout:g} s)" + (f"; median of {a.repeats}" if a.repeats > 1 else ""))
        best: dict[str, float | None] = {}
        rows = []
        for n in names:
            rr = runs(n, "burst")
            if not rr:
                continue
            err = failed(rr)
            conv = [r.converge_s for r in rr]
            done = all(c is not None for c in conv) and not err
            t = statistics.median(c for c in conv if c is not None) if done else None
            best[n] = t
            arrived = min(r.arrived for r in rr)
            lost = sum(r.missing for r in rr) if done else None
            wrong = sum(r.wrong for r in rr)
            sessions = statistics.median(r.sessions for r in rr)
            rows.append([
                n,
                f"{t:.2f}" if t is not None else f"> {a.timeout:g} (not converged)",
                f"{arrived:,}/{rr[0].files:,}",
                "-" if lost is None else f"{lost}",
                f"{wrong}",
                f"{sessions:.0f}",
                f"{arrived / sessions:.0f}" if sessions else "-",
                quiet_cell(rr, a.settle),
                f"{statistics.median(r.cpu_s for r in rr):.2f}",
                human_bytes(max(r.peak_rss_kib for r in rr) * 1024),
                f"{max(r.max_procs for r in rr)}",
                f"{statistics.median(r.daemon_cpu_s for r in rr):.2f}",
                f"{statistics.median(r.write_s for r in rr):.2f}",
                busy_cell(rr),
            ])
            if err:
                warns.append(f"WARN burst: {n}: {err}")
            elif not done:
                # The agent's target; a slow peer's backlog is a finding, not a loss.
                kind = "WARN" if n == "sersync-agent" else "NOTE"
                warns.append(f"{kind} burst: {n} had not converged after {a.timeout:g} s: "
                             f"{arrived:,} of {rr[0].files:,} files arrived (the rest still "
                             "queued; not counted as lost)")
            if lost or wrong:
                warns.append(f"WARN burst: {n} lost {lost or 0} file(s), {wrong} arrived wrong "
                             + "; ".join(x for r in rr for x in r.examples[:2]))
        agent_t = best.get("sersync-agent")
        peers = {n: t for n, t in best.items() if n != "sersync-agent"}
        if agent_t is not None and peers:
            # A peer that did not converge took longer than the timeout: a lower bound.
            bound = {n: (t if t is not None else a.timeout) for n, t in peers.items()}
            bn = min(bound, key=lambda n: bound[n])
            speedup = bound[bn] / agent_t
            lower = peers[bn] is None
            for row in rows:
                bt = best.get(row[0])
                row.append("-" if bt is None or row[0] == "sersync-agent"
                           else f"{bt / agent_t:.1f}")
            ok = speedup >= BURST_SPEEDUP
            line = (f"the agent is {'at least ' if lower else ''}{speedup:.1f}x faster than the "
                    f"best peer ({bn}, {'> ' if lower else ''}{bound[bn]:.2f} s); target >= "
                    f"{BURST_SPEEDUP:g}x: {held(ok)}")
            print_table(["watcher", "time to converge s", "arrived", "lost", "wrong",
                         "sessions", "files/session", "quiet after s", "CPU s", "peak RSS", "procs",
                         "daemon CPU s", "write s", "busy elsewhere", "peer / agent"], rows)
            print(line)
            if not ok:
                warns.append(f"WARN burst: {line}")
        else:
            print_table(["watcher", "time to converge s", "arrived", "lost", "wrong",
                         "sessions", "files/session", "quiet after s", "CPU s", "peak RSS", "procs",
                         "daemon CPU s", "write s", "busy elsewhere"], rows)
            if agent_t is None:
                warns.append("WARN burst: the agent did not converge; no speed-up to judge")
    return warns


# ----------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="50 latency files and a 2,000-file burst (a few minutes)")
    ap.add_argument("--files", type=int, help="latency files per watcher (200; quick 50)")
    ap.add_argument("--burst", type=int, help="files in the burst (10000; quick 2000)")
    ap.add_argument("--burst-dirs", type=int, default=100, help="directories for them (100)")
    ap.add_argument("--timeout", type=float, default=300,
                    help="seconds a watcher gets to converge after a burst (300)")
    ap.add_argument("--latency-timeout", type=float, default=10,
                    help="seconds one latency file may take before it counts as missing (10)")
    ap.add_argument("--latency-poll-ms", type=float, default=0.5,
                    help="how often the module is looked at for a latency file (0.5 ms)")
    ap.add_argument("--burst-poll-ms", type=float, default=20,
                    help="how often the module is listed during a burst (20 ms)")
    ap.add_argument("--settle", type=float, default=30,
                    help="seconds a watcher gets, once every file arrived, to finish the "
                         "pushes it still runs; they count in its CPU and sessions (30)")
    ap.add_argument("--warmup", type=int, default=5,
                    help="files pushed one at a time, uncounted, before each run (5)")
    ap.add_argument("--ready-timeout", type=float, default=30,
                    help="seconds a watcher gets to push its first file (30)")
    ap.add_argument("--repeats", type=int, default=1,
                    help="runs per watcher and workload, the watchers' order reversed every "
                         "other one (1)")
    ap.add_argument("--workloads", default="latency,burst", help="latency,burst")
    ap.add_argument("--watchers", default=",".join(WATCHERS),
                    help=f"which watchers, comma-separated ({','.join(WATCHERS)})")
    ap.add_argument("--agent", help="sersync-agent binary (default target/release/sersync-agent, "
                                    "built when missing)")
    ap.add_argument("--agent-state", metavar="DIR",
                    help="parent of the agent's --state-dir (default: each run's directory, "
                         "on the scratch filesystem; the journal is fsynced there)")
    ap.add_argument("--lsyncd", help="lsyncd (default: in PATH)")
    ap.add_argument("--inotifywait", help="inotifywait (default: in PATH)")
    ap.add_argument("--sersync", help="sersync2 (default: in PATH)")
    ap.add_argument("--stock", default="/usr/bin/rsync", help="stock rsync for the daemon")
    ap.add_argument("--client", default="/usr/bin/rsync",
                    help="rsync client the peers run (/usr/bin/rsync)")
    ap.add_argument("--poll-ms", type=float, default=50,
                    help="RSS poll interval of the watchers' process trees (50 ms)")
    ap.add_argument("--workdir", help="parent of the scratch directory (default $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    args.files = args.files or (50 if args.quick else 200)
    args.burst = args.burst or (2000 if args.quick else 10000)
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for wl in args.workloads:
        if wl not in ("latency", "burst"):
            raise SystemExit(f"--workloads: unknown {wl!r}")
    wanted = [w.strip() for w in args.watchers.split(",") if w.strip()]
    for n in wanted:
        if n not in WATCHERS:
            raise SystemExit(f"--watchers: unknown {n!r}")
    for tool in (args.stock, args.client):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"{tool}: not found (install the stock rsync)")
    if os.geteuid() != 0:
        log("note: not root: the module cannot run as nobody, and sersync2 cannot set its "
            "inotify limits")

    tools: dict[str, str] = {}
    notes: list[str] = []
    finders = {
        "sersync-agent": lambda: find_ours(args.agent, "sersync-agent", "--agent"),
        "lsyncd": lambda: tool_path(args.lsyncd, "lsyncd"),
        "inotifywait": lambda: tool_path(args.inotifywait, "inotifywait"),
        "sersync2": lambda: tool_path(args.sersync, "sersync2"),
    }
    install = {"lsyncd": "apt-get install -y lsyncd",
               "inotifywait": "apt-get install -y inotify-tools",
               "sersync2": "--sersync PATH (sersync 2.5.4's GNU-Linux-x86/sersync2)"}
    for n in wanted:
        p = finders[n]()
        if p:
            tools[n] = p
        else:
            notes.append(f"NOTE {n}: not found, left out ({install[n]})")
    if "sersync-agent" not in tools:
        raise SystemExit("sersync-agent: nothing to measure")

    work = Path(tempfile.mkdtemp(prefix="agent-bench-", dir=args.workdir))
    os.chmod(work, 0o755)
    d = Daemon("stock", [args.stock], work / "daemon")
    ok = False

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    try:
        pw = work / "rsync.password.client"
        pw.write_text((SEED / "rsync.password.client").read_text())
        os.chmod(pw, 0o600)
        d.setup()
        e = Env(args, work, d, pw, tools, args.client)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).parent).stdout.strip()
        client_v = subprocess.run([args.client, "--version"], capture_output=True,
                                  text=True).stdout.splitlines()[0].strip()
        print(f"sersync-agent watcher benchmark (commit {commit or '?'}): against "
              f"{args.stock} --daemon (module backup, auth, uid nobody)")
        for n, p in tools.items():
            print(f"  {n}: {p}")
        print(f"  peers' rsync client: {args.client} ({client_v})")
        print(f"  {os.cpu_count()} CPUs; scratch {work} ({fs_type(work)}); load average at start "
              f"{os.getloadavg()[0]:.2f}; RSS polled every {args.poll_ms:g} ms")

        results: list[RunResult] = []
        names = [n for n in WATCHERS if n in tools]
        for rep in range(args.repeats):
            order = names if rep % 2 == 0 else names[::-1]
            for wl in args.workloads:
                for n in order:
                    log(f"[{wl} {rep + 1}/{args.repeats}] {n}")
                    r = one_run(e, n, wl, rep)
                    results.append(r)
                    if n == "sersync-agent" and r.error and "pushed nothing" in r.error:
                        raise SystemExit(f"sersync-agent {r.error}; see {work}")
                    if r.latencies_ms:
                        log(f"  {n}: p50 {pct(r.latencies_ms, 50):.1f} ms, p99 "
                            f"{pct(r.latencies_ms, 99):.1f} ms, CPU {r.cpu_s:.2f} s, "
                            f"{r.sessions} sessions")
                    elif wl == "burst":
                        log(f"  {n}: {r.arrived}/{r.files} arrived, CPU {r.cpu_s:.2f} s, "
                            f"{r.sessions} sessions, peak RSS "
                            f"{human_bytes(r.peak_rss_kib * 1024)}")
        warns = notes + report(e, results)
        print()
        print("CPU s = user + system of the watcher's whole process tree (the rsync clients it "
              "forks included), from the end of the warm-up to convergence; peak RSS = the "
              "sampled sum over that tree; sessions = the daemon's `rsync to` log lines (one a "
              "session); busy elsewhere = CPU used by anything but the watcher, the daemon and "
              "this script (other jobs, kernel threads), as a share of one CPU.")
        for w in warns:
            print(w)
        missed = sum(w.startswith("WARN") for w in warns)
        print(f"{missed} target(s) missed" if missed else "all targets hold")
        ok = True
    finally:
        d.stop()
        if args.keep or not ok:
            log(f"kept {work}" + ("" if ok else " (the run failed)"))
        else:
            subprocess.run(["rm", "-rf", "--", str(work)])
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        # The watchers and the daemon are stopped by then (the finally blocks).
        log("interrupted")
        sys.exit(130)
