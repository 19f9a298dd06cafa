#!/usr/bin/env python3
"""Scale benchmark: sersync-agent (inotify and fanotify watchers) against lsyncd and
sersync 2.5.4 on trees of 50,000 and 200,000 directories, each pushing to the same stock
`rsync --daemon` on loopback.

For each tree size and each tool, three figures (see bench/README.md, "Agent at scale"):

1. startup: from exec until a change anywhere in the tree is replicated, and the RSS
   then. Run without an initial full sync (agent and sersync2 without -r, lsyncd with
   `init = false`). From just after the exec a probe file is written every 20 ms
   (`--probe-ms`), each under a new name, into two leaves: the one a walk in readdir
   order lists last (the last entry of every directory on the way down) and the one it
   lists first (last for a walk that pushes directories on a stack). Startup = when a
   probe of each has reached the replica: a file written before the tool watches its
   directory is never pushed, and none of the tools pushes anything before its walk is
   done. The agent's own log line is timed too; the directory the tool watched last is
   read from /proc/PID/fdinfo afterwards (the highest inotify wd), to check it was one of
   the probe leaves or that the walk really comes first.
   RSS: peak (the kernel's VmHWM) and steady (VmRSS `--settle` s after the first probe
   arrived) of the tool's main process alone: none of them keeps helper processes (the
   rsync clients lsyncd and sersync2 fork live for one push).
2. a change during startup: with each tool's initial full sync (agent and sersync2 `-r`,
   lsyncd's default startup rsync), a file written in a random deep directory 10 ms
   after the exec (`--early-ms`); the time until it is on the replica, and the time until
   the full sync has created the last directory (in rsync's sorted order) there.
   Without an initial sync no tool promises to push such a change.
3. latency (at `--latency-sizes`, default the largest size): `--changes` single files of
   1-4 KiB at random leaf directories, one at a time, each once the one before arrived
   plus `--spacing-ms`, in the startup run once it is steady: ms from just before the
   write to the file seen whole on the replica (agent.py's method).

Targets, from the issue: the agent's startup under 1 s and its RSS under 20 MiB at 50,000
directories; its p50 change-to-replica under 20 ms at 200,000. Exits 0 whatever the
figures are; non-zero only when the benchmark cannot run.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common import (
    SEED,
    Daemon,
    Env,
    Sampler,
    Watcher,
    check_files,
    content,
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

# tool -> (the watcher common.Watcher runs, the agent's --watcher)
TOOLS = {
    "agent-inotify": ("sersync-agent", "inotify"),
    "agent-fanotify": ("sersync-agent", "fanotify"),
    "lsyncd": ("lsyncd", None),
    "sersync2": ("sersync2", None),
}

STARTUP_S = 1.0  # agent at 50,000 directories
RSS_MIB = 20.0  # agent at 50,000 directories
P50_MS = 20.0  # agent at 200,000 directories
TARGET_SIZE = 50_000
LATENCY_SIZE = 200_000

# Fan-out per level; the leaves are the last level. Other sizes: 10 x 10 x 10 x n/1000.
SHAPES = {50_000: (10, 10, 10, 50), 200_000: (20, 10, 10, 100)}
LEVELS = "abcd"

# Each tool's own word that it is watching (searched in its output). lsyncd and sersync2
# have none: lsyncd logs `--- Startup ---` and then nothing without an initial sync, and
# sersync2 prints `watch path is:` before it adds its watches.
READY_LINES = {
    "agent-inotify": re.compile(rb"\bwatching\b.*\bwatches=(\d+)"),
    "agent-fanotify": re.compile(rb"watching the whole filesystem with fanotify"),
}


# ----------------------------------------------------------------------------- trees


@dataclass
class Tree:
    """A tree of directories only: `shape` fan-out per level."""
    root: Path
    size: int  # the size asked for (--sizes)
    shape: tuple[int, ...]
    dirs: int = 0  # all of them, the root included
    probe: str = ""  # the deepest directory listed last (readdir order at every level)
    probe_first: str = ""  # the deepest listed first
    last_sorted: str = ""  # the leaf rsync creates last (names sorted at every level)
    inodes: dict[int, str] = field(default_factory=dict)  # directory inode -> path

    def leaf(self, idx: int) -> str:
        """The `idx`-th leaf (0-based, in name order) as a relative path."""
        parts = []
        for n, p in zip(reversed(self.shape), reversed(LEVELS[:len(self.shape)])):
            idx, i = divmod(idx, n)
            parts.append(f"{p}{i:03d}")
        return "/".join(reversed(parts))

    @property
    def leaves(self) -> int:
        n = 1
        for k in self.shape:
            n *= k
        return n


def shape_for(size: int) -> tuple[int, ...]:
    return SHAPES.get(size, (10, 10, 10, max(1, -(-size // 1000))))


def make_tree(root: Path, size: int) -> Tree:
    """Creates the directories of `size`'s shape, level by level."""
    root.mkdir()
    os.chmod(root, 0o755)
    shape = shape_for(size)
    t = Tree(root, size, shape)
    level = [""]
    t.inodes[root.stat().st_ino] = "."
    for n, p in zip(shape, LEVELS):
        nxt = []
        for d in level:
            for i in range(n):
                c = f"{d}/{p}{i:03d}" if d else f"{p}{i:03d}"
                os.mkdir(root / c)
                t.inodes[os.stat(root / c).st_ino] = c
                nxt.append(c)
        level = nxt
    t.dirs = len(t.inodes)
    # The probe directory: at every level the last name readdir gives (ext4 hashes names,
    # so this is neither the first nor the last created). A recursive walk in readdir
    # order, depth or breadth first, lists it last.
    for first in (False, True):
        d, rel = root, []
        for _ in shape:
            names = [e.name for e in os.scandir(d) if e.is_dir()]
            name = names[0] if first else names[-1]
            rel.append(name)
            d = d / name
        if first:
            t.probe_first = "/".join(rel)
        else:
            t.probe = "/".join(rel)
    t.last_sorted = t.leaf(t.leaves - 1)
    return t


# ----------------------------------------------------------------------------- process


def proc_status_kib(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (KiB) of one process; {} once it is gone."""
    out = {}
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith((b"VmRSS:", b"VmHWM:")):
                    out[line.split(b":")[0].decode()] = int(line.split()[1])
    except OSError:
        pass
    return out


INOTIFY_WD = re.compile(rb"^inotify wd:([0-9a-f]+) ino:([0-9a-f]+)", re.M)
FANOTIFY_MARK = re.compile(rb"^fanotify (?:ino|mnt_id|sdev):", re.M)


def kernel_watches(pid: int) -> tuple[int, int | None]:
    """The inotify watches and fanotify marks the process holds, from /proc/PID/fdinfo
    (the same count for every tool, whatever it says of itself), and the inode of the
    directory of the highest inotify wd: the one watched last (wds are handed out in
    increasing order). Reading them costs the kernel about 2 us a watch (0.4 s at
    200,000), so this is read once, after the startup."""
    n, top, top_ino = 0, -1, None
    try:
        fds = os.listdir(f"/proc/{pid}/fdinfo")
    except OSError:
        return 0, None
    for fd in fds:
        try:
            with open(f"/proc/{pid}/fdinfo/{fd}", "rb") as f:
                text = f.read()
        except OSError:
            continue
        n += len(FANOTIFY_MARK.findall(text))
        for m in INOTIFY_WD.finditer(text):
            n += 1
            wd = int(m.group(1), 16)
            if wd > top:
                top, top_ino = wd, int(m.group(2), 16)
    return n, top_ino


class LogWatch:
    """Looks for a tool's ready line in the files it writes, reading only what is new."""

    def __init__(self, files: list[Path], pattern: re.Pattern[bytes]) -> None:
        self.files = {f: 0 for f in files}
        self.pattern = pattern
        self.seen_at: float | None = None
        self.match: re.Match[bytes] | None = None
        self.buf = {f: b"" for f in files}

    def poll(self) -> None:
        if self.seen_at is not None:
            return
        for f, off in self.files.items():
            try:
                with open(f, "rb") as fh:
                    fh.seek(off)
                    new = fh.read()
            except OSError:
                continue
            if not new:
                continue
            self.files[f] = off + len(new)
            text = self.buf[f] + new
            m = self.pattern.search(text)
            if m:
                self.seen_at, self.match = time.perf_counter(), m
                return
            self.buf[f] = text[-4096:]


# ----------------------------------------------------------------------------- runs


@dataclass
class Startup:
    """One tool at one size without an initial sync: startup, RSS, latency."""
    tool: str
    size: int
    dirs: int
    error: str | None = None
    startup_s: float | None = None  # a probe of each probe leaf on the replica
    probes_written: int = 0
    last_watched: str = "-"  # which directory got the last inotify watch
    log_s: float | None = None  # the tool's ready line
    log_watches: int | None = None  # what the agent's line says
    kernel_watches: int = 0
    status_watches: int | None = None  # the agent's status.json
    peak_kib: int = 0  # VmHWM at the end of the settle
    steady_kib: int = 0  # VmRSS then
    cpu_s: float = 0.0  # CPU of the tool's process tree until then
    latencies_ms: list[float] = field(default_factory=list)
    lost: int = 0
    wrong: int = 0
    after_latency_kib: int = 0  # VmRSS after the latency changes
    peak_after_latency_kib: int = 0


@dataclass
class Early:
    """One tool at one size with an initial sync: a change made during it."""
    tool: str
    size: int
    dirs: int
    error: str | None = None
    change_s: float | None = None  # from the write to the file on the replica
    full_s: float | None = None  # from exec to the last directory on the replica
    replica_dirs: int = 0  # directories on the replica at the end
    peak_tree_kib: int = 0  # sampled: the tool and the rsync clients it runs


def listdir(path: Path) -> list[str]:
    try:
        return os.listdir(path)
    except FileNotFoundError:
        return []


def start_daemon(d: Daemon) -> None:
    d.reset_module()
    d.start()


def run_dir(e: Env, name: str) -> Path:
    run = e.work / name
    run.mkdir()
    os.chmod(run, 0o755)
    return run


def startup_run(e: Env, tree: Tree, tool: str, latency: bool) -> Startup:
    """Starts the tool without an initial sync and probes until it watches the whole tree;
    then its RSS once steady, and with `latency` the change-to-replica latency."""
    a = e.args
    size = tree.size
    r = Startup(tool, size, tree.dirs)
    run = run_dir(e, f"{size}-{tool}-startup")
    d = e.daemon
    start_daemon(d)
    base, kind = TOOLS[tool]
    leaves = [tree.probe, tree.probe_first]
    probes = 0
    w = None
    rels: list[str] = []
    try:
        w = Watcher(e, base, tree.root, run, initial_sync=False, agent_watcher=kind)
        t0 = w.started
        logs = LogWatch([w.out], READY_LINES.get(tool, re.compile(rb"(?!)")))
        deadline = t0 + a.timeout
        next_probe = time.perf_counter()
        arrived: dict[str, float] = {}
        while True:
            now = time.perf_counter()
            if now >= next_probe:
                for leaf in leaves:
                    write_file(tree.root / leaf / f"probe{probes:05d}.dat", b"probe\n")
                probes += 1
                next_probe += a.probe_ms / 1000
            for leaf in leaves:
                if leaf not in arrived and any(
                        n.startswith("probe") for n in listdir(d.module / leaf)):
                    arrived[leaf] = now
            logs.poll()
            if len(arrived) == len(leaves):
                first_seen = now
                break
            if not w.alive():
                r.error = f"exited with {w.proc.returncode}"
                break
            if now > deadline:
                r.error = f"timed out after {a.timeout:g} s"
                break
            time.sleep(0.002)
        r.probes_written = probes
        if logs.seen_at is not None:
            r.log_s = logs.seen_at - t0
            if tool == "agent-inotify" and logs.match is not None:
                r.log_watches = int(logs.match.group(1))
        if r.error:
            return r
        r.startup_s = first_seen - t0
        # Steady: --settle seconds after the first probe arrived.
        time.sleep(max(0.0, first_seen + a.settle - time.perf_counter()))
        logs.poll()
        if r.log_s is None and logs.seen_at is not None:
            r.log_s = logs.seen_at - t0
        st = proc_status_kib(w.pid)
        r.peak_kib, r.steady_kib = st.get("VmHWM", 0), st.get("VmRSS", 0)
        r.cpu_s = tree_cpu_s(w.pid)
        r.kernel_watches, last_ino = kernel_watches(w.pid)
        if last_ino is not None:
            last = tree.inodes.get(last_ino, "?")
            r.last_watched = ("probe leaf" if last in leaves
                              else f"{last} ({'leaf' if last.count('/') == 3 else 'not a leaf'})")
        if base == "sersync-agent":
            try:
                status = json.loads((run / "state" / "status.json").read_text())
                r.status_watches = int(status["watches"])
            except (OSError, ValueError, KeyError):
                pass
        log(f"  {tool}: both probes on the replica at {r.startup_s:.3f} s, ready line "
            + ("-" if r.log_s is None else f"{r.log_s:.3f} s")
            + f"; {r.kernel_watches:,} kernel watches, the last {r.last_watched}; RSS peak "
            f"{human_bytes(r.peak_kib * 1024)}, steady {human_bytes(r.steady_kib * 1024)}")
        if latency and w.alive():
            rels = latency_run(e, tree, w, r)
            st = proc_status_kib(w.pid)
            r.peak_after_latency_kib = st.get("VmHWM", 0)
            r.after_latency_kib = st.get("VmRSS", 0)
        if not w.alive():
            r.error = f"exited with {w.proc.returncode}"
    finally:
        if w is not None:
            w.stop()
        d.stop()
        if w is not None and r.error:
            log(f"  {tool}: {r.error}\n{tail(w.out, 1500)}")
    if rels:
        missing, r.wrong, examples = check_files(tree.root, d.module, rels)
        r.lost = missing
        for x in examples[:3]:
            log(f"  {tool}: wrong: {x}")
    # The tree is shared: the next tool finds it as it was.
    for k in range(probes):
        for leaf in leaves:
            (tree.root / leaf / f"probe{k:05d}.dat").unlink(missing_ok=True)
    for rel in rels:
        (tree.root / rel).unlink(missing_ok=True)
    return r


def latency_run(e: Env, tree: Tree, w: Watcher, r: Startup) -> list[str]:
    """`--changes` files, each at a random leaf (the same leaves for every tool), written
    one at a time once the one before arrived and `--spacing-ms` passed."""
    a = e.args
    rng = random.Random(r.size)
    rels = []
    misses = 0
    for i in range(a.changes):
        data = content(f"lat-{i}", rng)
        rel = f"{tree.leaf(rng.randrange(tree.leaves))}/lat{i:04d}.dat"
        rels.append(rel)
        t0 = time.perf_counter()
        write_file(tree.root / rel, data)
        t1 = wait_arrival(e.daemon.module / rel, len(data), a.latency_timeout,
                          a.latency_poll_ms / 1000)
        if t1 is None:
            misses += 1
            log(f"  {r.tool}: {rel} not on the replica after {a.latency_timeout:g} s")
            if misses >= 3 or not w.alive():
                log(f"  {r.tool}: giving up the latency run")
                break
            continue
        r.latencies_ms.append((t1 - t0) * 1000)
        if (i + 1) % 50 == 0:
            log(f"  {r.tool}: {i + 1} changes, p50 so far {pct(r.latencies_ms, 50):.1f} ms")
        time.sleep(a.spacing_ms / 1000)
    return rels


def early_run(e: Env, tree: Tree, tool: str) -> Early:
    """Starts the tool with its initial sync, writes one file at a random leaf `--early-ms`
    after the exec, and waits for that file and for the last directory on the replica."""
    a = e.args
    size = tree.size
    r = Early(tool, size, tree.dirs)
    run = run_dir(e, f"{size}-{tool}-early")
    d = e.daemon
    start_daemon(d)
    base, kind = TOOLS[tool]
    rng = random.Random(size + 1)
    rel = f"{tree.leaf(rng.randrange(tree.leaves))}/early.dat"
    data = content(f"early-{size}", rng)
    last = d.module / tree.last_sorted
    w = None
    sampler = None
    try:
        w = Watcher(e, base, tree.root, run, initial_sync=True, agent_watcher=kind)
        t0 = w.started
        sampler = Sampler(w.pid, 0.05)
        sampler.start()
        time.sleep(max(0.0, t0 + a.early_ms / 1000 - time.perf_counter()))
        tw = time.perf_counter()
        write_file(tree.root / rel, data)
        deadline = t0 + a.timeout
        while r.change_s is None or r.full_s is None:
            now = time.perf_counter()
            if r.change_s is None:
                try:
                    if os.stat(d.module / rel).st_size == len(data):
                        r.change_s = now - tw
                        log(f"  {tool}: the change made at {(tw - t0) * 1000:.0f} ms is on "
                            f"the replica after {r.change_s:.3f} s")
                except FileNotFoundError:
                    pass
            if r.full_s is None and last.is_dir():
                r.full_s = now - t0
                log(f"  {tool}: the last directory is on the replica at {r.full_s:.2f} s")
            if not w.alive():
                r.error = f"exited with {w.proc.returncode}"
                break
            if now > deadline:
                r.error = f"timed out after {a.timeout:g} s"
                break
            time.sleep(0.002)
    finally:
        if sampler is not None:
            sampler.finish()
            r.peak_tree_kib = sampler.peak_total_kib
        if w is not None:
            w.stop()
        d.stop()
        if w is not None and r.error:
            log(f"  {tool}: {r.error}\n{tail(w.out, 1500)}")
    (tree.root / rel).unlink(missing_ok=True)
    if r.full_s is not None:
        # The probe files of the startup runs are gone: the replica should hold exactly
        # the tree's directories.
        r.replica_dirs = sum(1 for _ in os.walk(d.module))
    return r


# ----------------------------------------------------------------------------- report


def secs(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def mib(kib: int) -> str:
    return human_bytes(kib * 1024) if kib else "-"


def report(args: argparse.Namespace, startups: list[Startup], earlies: list[Early]) -> list[str]:
    """Prints the three tables (markdown); returns the WARN and NOTE lines."""
    warns: list[str] = []

    print()
    print(f"== 1. startup without an initial sync: s from exec until a probe (written every "
          f"{args.probe_ms:g} ms into the leaves a readdir-order walk lists first and last) of "
          f"each leaf is on the replica; ready line = the agent's own; RSS of the main "
          f"process, steady = {args.settle:g} s after startup; CPU s = the tool's until then")
    rows = []
    for r in startups:
        target = "-"
        if r.tool.startswith("agent") and r.size == TARGET_SIZE:
            ok_t = r.startup_s is not None and r.startup_s < STARTUP_S
            ok_m = r.peak_kib > 0 and r.peak_kib / 1024 < RSS_MIB
            target = (f"startup < {STARTUP_S:g} s: {held(ok_t)}, "
                      f"RSS < {RSS_MIB:g} MiB: {held(ok_m)}")
            if not ok_t:
                warns.append(f"WARN {r.tool} at {r.dirs:,} directories: startup "
                             f"{secs(r.startup_s)} s, target < {STARTUP_S:g} s")
            if not ok_m:
                warns.append(f"WARN {r.tool} at {r.dirs:,} directories: peak RSS "
                             f"{mib(r.peak_kib)}, target < {RSS_MIB:g} MiB")
        if r.error:
            target = f"{r.error}" if target == "-" else f"{target} ({r.error})"
            warns.append(f"NOTE {r.tool} at {r.dirs:,} directories: {r.error}")
        watches = f"{r.kernel_watches:,}"
        if r.status_watches is not None:
            watches += f" ({r.status_watches:,})"
        rows.append([f"{r.dirs:,}", r.tool, secs(r.startup_s), secs(r.log_s), watches,
                     r.last_watched, mib(r.peak_kib), mib(r.steady_kib),
                     f"{r.cpu_s:.2f}" if r.startup_s is not None else "-", target])
    print_table(["dirs", "tool", "startup s", "ready line s", "kernel watches (status)",
                 "last watched", "peak RSS", "steady RSS", "CPU s", "target"], rows)

    if earlies:
        print()
        print(f"== 2. a change during startup, each tool with its initial full sync: a file "
              f"written at a random leaf {args.early_ms:g} ms after exec; s from the write to "
              f"the file on the replica, and from exec to the full sync's last directory there")
        rows = []
        for r in earlies:
            if r.error:
                warns.append(f"NOTE {r.tool} (initial sync) at {r.dirs:,} directories: {r.error}")
            rows.append([f"{r.dirs:,}", r.tool, secs(r.change_s), secs(r.full_s),
                         f"{r.replica_dirs:,}/{r.dirs:,}" if r.replica_dirs else "-",
                         mib(r.peak_tree_kib), r.error or ""])
        print_table(["dirs", "tool", "change replicated s", "full sync s", "dirs on replica",
                     "peak RSS (with rsync children)", "note"], rows)

    lat = [r for r in startups if r.size in args.latency_sizes]
    if lat:
        print()
        print(f"== 3. latency: {args.changes} single files of 1-4 KiB at random leaves, one "
              f"at a time, each once the one before arrived + {args.spacing_ms:g} ms; ms from "
              f"the write to the file whole on the replica (polled every "
              f"{args.latency_poll_ms:g} ms)")
        rows = []
        for r in lat:
            xs = r.latencies_ms
            target = "-"
            if r.tool.startswith("agent") and r.size == LATENCY_SIZE:
                ok = bool(xs) and pct(xs, 50) < P50_MS
                target = f"p50 < {P50_MS:g} ms: {held(ok)}"
                if not ok:
                    warns.append(f"WARN {r.tool} at {r.dirs:,} directories: p50 "
                                 + (f"{pct(xs, 50):.1f} ms" if xs else "none")
                                 + f", target < {P50_MS:g} ms")
            if r.lost or r.wrong:
                warns.append(f"WARN {r.tool} at {r.dirs:,} directories: {r.lost} change(s) "
                             f"lost, {r.wrong} wrong")
            if not xs:
                rows.append([f"{r.dirs:,}", r.tool, "0", "-", "-", "-", "-", f"{r.lost}",
                             f"{r.wrong}", "-", r.error or "no latency run"])
                continue
            rows.append([f"{r.dirs:,}", r.tool, f"{len(xs)}", f"{pct(xs, 50):.1f}",
                         f"{pct(xs, 99):.1f}", f"{min(xs):.1f}", f"{max(xs):.1f}",
                         f"{r.lost}", f"{r.wrong}", mib(r.after_latency_kib), target])
        print_table(["dirs", "tool", "changes", "p50 ms", "p99 ms", "min ms", "max ms", "lost",
                     "wrong", "RSS after", "target"], rows)
    return warns


# ----------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="50,000 directories only, 30 latency changes there (1-2 minutes)")
    ap.add_argument("--sizes", help="tree sizes in directories, comma-separated "
                                    "(50000,200000; quick 50000)")
    ap.add_argument("--latency-sizes",
                    help="sizes at which latency is measured (the largest of --sizes)")
    ap.add_argument("--tools", default=",".join(TOOLS),
                    help=f"which tools, comma-separated ({','.join(TOOLS)})")
    ap.add_argument("--changes", type=int, help="latency changes per tool (150; quick 30)")
    ap.add_argument("--spacing-ms", type=float, default=50,
                    help="pause after each latency change arrived (50 ms)")
    ap.add_argument("--latency-timeout", type=float, default=10,
                    help="seconds a latency change may take before it counts as lost (10)")
    ap.add_argument("--latency-poll-ms", type=float, default=0.5,
                    help="how often the replica is looked at for a latency change (0.5 ms)")
    ap.add_argument("--probe-ms", type=float, default=20,
                    help="interval of the startup probe files (20 ms)")
    ap.add_argument("--settle", type=float, default=3.0,
                    help="seconds after the startup at which the steady RSS is read (3)")
    ap.add_argument("--early-ms", type=float, default=10,
                    help="when the change during startup is made, after exec (10 ms)")
    ap.add_argument("--no-early", action="store_true",
                    help="skip the change-during-startup runs (with initial sync)")
    ap.add_argument("--timeout", type=float, default=120,
                    help="seconds a tool gets to watch the tree, or to finish its initial "
                         "sync (120)")
    ap.add_argument("--agent", help="sersync-agent binary (default target/release/sersync-agent, "
                                    "built when missing)")
    ap.add_argument("--lsyncd", help="lsyncd (default: in PATH)")
    ap.add_argument("--sersync", help="sersync2 (default: in PATH)")
    ap.add_argument("--stock", default="/usr/bin/rsync", help="stock rsync for the daemon")
    ap.add_argument("--client", default="/usr/bin/rsync",
                    help="rsync client the peers run (/usr/bin/rsync)")
    ap.add_argument("--workdir", default="/work",
                    help="parent of the scratch directory (/work: a disk filesystem, not "
                         "tmpfs or overlay)")
    ap.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    args = ap.parse_args()
    sizes = args.sizes or ("50000" if args.quick else "50000,200000")
    args.sizes = [int(s) for s in sizes.split(",") if s.strip()]
    args.latency_sizes = ([int(s) for s in args.latency_sizes.split(",") if s.strip()]
                          if args.latency_sizes else [max(args.sizes)])
    args.changes = args.changes or (30 if args.quick else 150)
    wanted = [t.strip() for t in args.tools.split(",") if t.strip()]
    for t in wanted:
        if t not in TOOLS:
            raise SystemExit(f"--tools: unknown {t!r}")
    for tool in (args.stock, args.client):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"{tool}: not found (install the stock rsync)")
    if os.geteuid() != 0:
        log("note: not root: fanotify needs root, the module cannot run as nobody, and "
            "sersync2 cannot set its inotify limits")

    tools: dict[str, str] = {}
    notes: list[str] = []
    if any(TOOLS[t][0] == "sersync-agent" for t in wanted):
        tools["sersync-agent"] = find_ours(args.agent, "sersync-agent", "--agent")
    for name, given, how in (("lsyncd", args.lsyncd, "apt-get install -y lsyncd"),
                             ("sersync2", args.sersync,
                              "--sersync PATH (sersync 2.5.4's GNU-Linux-x86/sersync2)")):
        if name in wanted:
            p = tool_path(given, name)
            if p:
                tools[name] = p
            else:
                notes.append(f"NOTE {name}: not found, left out ({how})")
    names = [t for t in wanted if TOOLS[t][0] in tools]
    if not names:
        raise SystemExit("no tool to measure")

    work = Path(tempfile.mkdtemp(prefix="scale-bench-", dir=args.workdir))
    os.chmod(work, 0o755)
    d = Daemon("stock", [args.stock], work / "daemon")
    ok = False

    def on_term(signum: int, frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, on_term)
    started = time.monotonic()
    try:
        pw = work / "rsync.password.client"
        pw.write_text((SEED / "rsync.password.client").read_text())
        os.chmod(pw, 0o600)
        d.setup()
        e = Env(args, work, d, pw, tools, args.client)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).parent).stdout.strip()
        try:
            watches_max = Path("/proc/sys/fs/inotify/max_user_watches").read_text().strip()
        except OSError:
            watches_max = "?"
        print(f"sersync-agent scale benchmark (commit {commit or '?'}): against "
              f"{args.stock} --daemon (module backup, auth, uid nobody) on loopback")
        for t in names:
            print(f"  {t}: {tools[TOOLS[t][0]]}"
                  + (f" --watcher {TOOLS[t][1]}" if TOOLS[t][1] else ""))
        print(f"  {os.cpu_count()} CPUs, kernel {os.uname().release}; scratch {work} "
              f"({fs_type(work)}); fs.inotify.max_user_watches {watches_max}; load average "
              f"at start {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

        startups: list[Startup] = []
        earlies: list[Early] = []
        trash = work / "trash"
        trash.mkdir()
        for size in args.sizes:
            t = time.monotonic()
            tree = make_tree(work / f"tree-{size}", size)
            log(f"[{size:,}] tree {' x '.join(map(str, tree.shape))}: {tree.dirs:,} directories "
                f"in {time.monotonic() - t:.1f} s; probe leaves {tree.probe} and "
                f"{tree.probe_first}")
            for tool in names:
                log(f"[{size:,}] {tool}: startup"
                    + (" and latency" if size in args.latency_sizes else ""))
                startups.append(startup_run(e, tree, tool, size in args.latency_sizes))
            if not args.no_early:
                for tool in names:
                    log(f"[{size:,}] {tool}: a change during the initial sync")
                    earlies.append(early_run(e, tree, tool))
            # Moved aside, deleted at the end (see common.empty_dir).
            tree.root.rename(trash / tree.root.name)
        warns = notes + report(args, startups, earlies)
        print()
        print(f"load average at the end {' '.join(f'{x:.2f}' for x in os.getloadavg())}; "
              f"{(time.monotonic() - started) / 60:.1f} minutes")
        for w in warns:
            print(w)
        missed = sum(w.startswith("WARN") for w in warns)
        print(f"{missed} target(s) missed" if missed else "all targets hold")
        if args.json:
            Path(args.json).write_text(json.dumps({
                "sizes": args.sizes,
                "loadavg_end": os.getloadavg(),
                "startup": [asdict(r) for r in startups],
                "trees": {str(s): {"shape": shape_for(s)} for s in args.sizes},
                "early": [asdict(r) for r in earlies],
                "warnings": warns,
            }, indent=1) + "\n")
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
        # The tools and the daemon are stopped by then (the finally blocks).
        log("interrupted")
        sys.exit(130)
