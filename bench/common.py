"""Shared parts of the benchmarks (push.py, pull.py, client.py, agent.py, scale.py): test
data, the two daemons, RSS and CPU sampling, one measured client run, the tree check, the
report, and the watchers (their configurations and processes). See bench/README.md."""

from __future__ import annotations

import argparse
import glob
import grp
import hashlib
import os
import pwd
import random
import shutil
import signal
import socket
import stat
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator


REPO = Path(__file__).resolve().parent.parent
SEED = REPO / "tests" / "fixtures" / "seed"

# Fixed mtimes, so that -u (skip files newer on the receiver) never hides a change and both
# daemons see identical metadata. The delta source is newer than the original.
MTIME_BASE = 1_700_000_000
MTIME_BIG_ORIG = MTIME_BASE
MTIME_BIG_MOD = MTIME_BASE + 3600


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


# ----------------------------------------------------------------------------- data


def gen_bytes(tag: bytes, n: int) -> bytes:
    """Deterministic pseudo-random bytes (SHAKE-128 of a tag)."""
    return hashlib.shake_128(tag).digest(n)


# Half of every big-file chunk is mapped onto 16 letters: zlib then compresses the file to
# roughly 80%, so -z does real work without the data being trivially compressible.
_LETTERS = bytes((i % 16) + 0x61 for i in range(256))


def make_small_tree(root: Path, nfiles: int, ndirs: int) -> int:
    """`nfiles` files of 1-8 KiB of text-like content spread evenly over `ndirs` dirs."""
    rng = random.Random(20_000)
    total = 0
    per_dir = nfiles // ndirs
    extra = nfiles % ndirs
    idx = 0
    for d in range(ndirs):
        dpath = root / f"d{d:03d}"
        dpath.mkdir(parents=True)
        for _ in range(per_dir + (1 if d < extra else 0)):
            size = rng.randint(1024, 8192)
            raw = gen_bytes(b"small-%d" % idx, size // 2 + 1).hex().encode()
            # Text-like: hex lines with a recognisable header, compressible about 2:1.
            body = (b"file %06d\n" % idx + raw)[:size]
            lines = bytearray(body)
            for p in range(63, len(lines), 64):
                lines[p] = 0x0A
            f = dpath / f"f{idx:05d}.txt"
            f.write_bytes(bytes(lines))
            os.utime(f, (MTIME_BASE + idx, MTIME_BASE + idx))
            total += size
            idx += 1
        os.utime(dpath, (MTIME_BASE, MTIME_BASE))
    return total


def make_big_file(path: Path, size: int) -> None:
    chunk = 1 << 20
    with open(path, "wb") as f:
        for i in range(0, size, chunk):
            n = min(chunk, size - i)
            b = gen_bytes(b"big-%d" % (i // chunk), n)
            half = n // 2
            f.write(b[:half].translate(_LETTERS) + b[half:])
    os.utime(path, (MTIME_BIG_ORIG, MTIME_BIG_ORIG))


def change_offsets(size: int, count: int, span: int) -> list[int]:
    """`count` non-overlapping offsets (multiples of 512) at pseudo-random places."""
    rng = random.Random(4096)
    chosen: set[int] = set()
    out = []
    slots = (size - span) // 512
    while len(out) < count:
        off = rng.randrange(slots) * 512
        if any(abs(off - o) < span for o in chosen):
            continue
        chosen.add(off)
        out.append(off)
    return sorted(out)


def make_changed_copy(src: Path, dst: Path, count: int, span: int) -> None:
    shutil.copyfile(src, dst)
    size = src.stat().st_size
    with open(dst, "r+b") as f:
        for i, off in enumerate(change_offsets(size, count, span)):
            f.seek(off)
            f.write(gen_bytes(b"change-%d" % i, span))
    os.utime(dst, (MTIME_BIG_MOD, MTIME_BIG_MOD))


def make_sources(args: argparse.Namespace, small: Path, big: Path,
                 changed: Path | None) -> None:
    """For the workloads asked for: the small tree in `small`, and the big file and its
    changed copy, each `big.bin`, in `big` and `changed` (no copy when `changed` is None)."""
    if "small" in args.workloads:
        log(f"generating {args.files} files in {args.dirs} directories")
        n = make_small_tree(small, args.files, args.dirs)
        log(f"  {human_bytes(n)}")
    if "big" in args.workloads:
        size = args.big_mib << 20
        log(f"generating a {human_bytes(size)} file"
            + ("" if changed is None else
               f" and a copy with {args.changes} x {args.change_kib} KiB changed"))
        big.mkdir()
        make_big_file(big / "big.bin", size)
        if changed is not None:
            changed.mkdir()
            make_changed_copy(big / "big.bin", changed / "big.bin", args.changes,
                              args.change_kib << 10)


# ----------------------------------------------------------------------------- daemons


def nobody_group() -> str:
    try:
        grp.getgrnam("nogroup")
        return "nogroup"
    except KeyError:
        return "nobody"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def is_listening(port: int) -> bool:
    want = f":{port:04X}"
    try:
        with open("/proc/net/tcp") as f:
            next(f)
            for line in f:
                parts = line.split()
                if parts[1].endswith(want) and parts[3] == "0A":
                    return True
    except OSError:
        pass
    return False


def empty_dir(path: Path, trash: Path) -> None:
    """Leaves `path` an empty directory. One with many entries is moved aside into `trash`,
    not deleted: after deleting thousands of files ext4 spends the next tens of seconds
    skipping the recently freed inodes (recently_deleted() in inode allocation), which
    slows whichever transfer creates files next by up to 2x. The trash goes when the
    benchmark ends. A directory of a few big files is deleted at once (that costs nothing
    later, and keeps the disk and page cache small)."""
    if path.exists():
        entries = sum(len(f) + len(d) for _, d, f in os.walk(path))
        if entries > 100:
            trash.mkdir(exist_ok=True)
            path.rename(trash / f"{path.name}-{time.monotonic_ns()}")
        else:
            shutil.rmtree(path)
    path.mkdir()


@dataclass
class Daemon:
    name: str
    argv0: list[str]  # the program, plus any leading argument
    dir: Path
    port: int = 0
    proc: subprocess.Popen | None = None
    # The module's path: by default `backup` in the daemon's directory, which the push
    # benchmark fills; the pull benchmark points it at the source tree of each workload.
    served: Path | None = None

    @property
    def conf(self) -> Path:
        return self.dir / "rsyncd.conf"

    @property
    def module(self) -> Path:
        return self.served or self.dir / "backup"

    @property
    def logfile(self) -> Path:
        return self.dir / "rsyncd.log"

    def setup(self, own_module: bool = True) -> None:
        """The reference rsyncd.conf with only addresses and paths changed (as the e2e
        tests do): nobody/nogroup instead of the reference's `rsync` user, loopback in
        hosts allow, paths inside this daemon's scratch directory. With `own_module` the
        module is an empty `backup` directory there, else `serve` names it."""
        self.dir.mkdir(parents=True)
        os.chmod(self.dir, 0o755)
        self.write_conf()
        secrets = self.dir / "rsync.password"
        secrets.write_text((SEED / "rsync.password.server").read_text())
        os.chmod(secrets, 0o600)
        if own_module:
            self.reset_module()

    def serve(self, path: Path) -> None:
        """Points the module at `path` (takes effect at the next start)."""
        self.served = path
        self.write_conf()

    def write_conf(self) -> None:
        root = os.geteuid() == 0
        out = []
        for line in (SEED / "rsyncd.conf").read_text().splitlines():
            kv = line.split("=", 1)
            key = kv[0].strip() if len(kv) == 2 else None
            if key == "uid":
                if root:
                    out.append("uid = nobody")
                continue
            if key == "gid":
                if root:
                    out.append(f"gid = {nobody_group()}")
                continue
            if key == "hosts allow":
                out.append("hosts allow = 127.0.0.1/32")
            elif key == "secrets file":
                out.append(f"secrets file = {self.dir / 'rsync.password'}")
            elif key == "log file":
                out.append(f"log file = {self.logfile}")
                out.append(f"pid file = {self.dir / 'rsyncd.pid'}")
                out.append(f"lock file = {self.dir / 'rsyncd.lock'}")
            elif key == "path":
                out.append(f"path = {self.module}")
            elif key == "port":
                continue  # given on the command line
            else:
                out.append(line)
        self.conf.write_text("\n".join(out) + "\n")

    def reset_module(self) -> None:
        """Empties the module (see `empty_dir`)."""
        empty_dir(self.module, self.dir / "trash")
        os.chmod(self.module, 0o755)
        if os.geteuid() == 0:
            os.chown(self.module, pwd.getpwnam("nobody").pw_uid, -1)

    def start(self) -> None:
        self.port = free_port()
        argv = self.argv0 + [
            "--daemon",
            "--no-detach",
            f"--config={self.conf}",
            f"--port={self.port}",
            "--address=127.0.0.1",
        ]
        with open(self.dir / "daemon.out", "ab") as out:
            self.proc = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + 20
        while not is_listening(self.port):
            if self.proc.poll() is not None:
                raise SystemExit(
                    f"{self.name}: daemon exited with {self.proc.returncode}; "
                    f"see {self.dir / 'daemon.out'} and {self.logfile}"
                )
            if time.monotonic() > deadline:
                raise SystemExit(f"{self.name}: daemon not listening on {self.port}")
            time.sleep(0.01)

    def stop(self) -> tuple[float, float]:
        """Stops the listener; returns the CPU seconds (user, system) of the listener and
        every session process it reaped, from the kernel's accounting (wait4)."""
        if self.proc is None:
            return (0.0, 0.0)
        if self.proc.poll() is not None:  # it died (the run is failing): nothing to count
            self.proc = None
            return (0.0, 0.0)
        # Let the last session's processes finish exiting, then stop the listener.
        deadline = time.monotonic() + 30
        while descendants(self.proc.pid) and time.monotonic() < deadline:
            time.sleep(0.02)
        self.proc.send_signal(signal.SIGTERM)
        pid, cpu = self.proc.pid, (0.0, 0.0)
        deadline = time.monotonic() + 30
        while True:
            try:
                wpid, status, ru = os.wait4(pid, os.WNOHANG)
            except ChildProcessError:
                # Already reaped (by send_signal's poll): it died on its own, of a Ctrl-C
                # that reached the whole process group.
                break
            if wpid == pid:
                cpu = (ru.ru_utime, ru.ru_stime)
                self.proc.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                deadline = time.monotonic() + 30
            time.sleep(0.01)
        self.proc = None
        return cpu


# ----------------------------------------------------------------------------- sampling


def _ppid_map() -> dict[int, int]:
    m = {}
    for e in os.listdir("/proc"):
        if not e.isdigit():
            continue
        try:
            with open(f"/proc/{e}/stat", "rb") as f:
                s = f.read()
        except OSError:
            continue
        # comm may hold spaces and parentheses: the fields follow the last ')'.
        rest = s[s.rfind(b")") + 2 :].split()
        m[int(e)] = int(rest[1])
    return m


def _children_map() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for p, pp in _ppid_map().items():
        kids.setdefault(pp, []).append(p)
    return kids


def descendants(root: int) -> list[int]:
    kids = _children_map()
    out, stack = [], list(kids.get(root, []))
    while stack:
        p = stack.pop()
        out.append(p)
        stack.extend(kids.get(p, []))
    return out


def _rss_kib(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_ticks(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read()
    except OSError:
        return 0
    rest = s[s.rfind(b")") + 2 :].split()
    return int(rest[11]) + int(rest[12])  # utime + stime, all threads


def _tree_ticks(pid: int) -> int:
    """utime + stime + cutime + cstime of one process: its own CPU time (all threads) and
    that of the children it has reaped, with theirs."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            s = f.read()
    except OSError:
        return 0
    rest = s[s.rfind(b")") + 2 :].split()
    return sum(int(x) for x in rest[11:15])


def tree_cpu_s(root: int) -> float:
    """CPU seconds (user + system) used so far by `root` and every process it started,
    exited ones included: each live process's own time plus what it reaped. A process
    that exited counts in its reaper's cutime/cstime, so nothing counts twice; what is
    lost is a child whose parent does not wait for it (SIGCHLD ignored) or one
    reparented outside the tree. The difference of two calls is the tree's CPU between
    them (to a clock tick per process)."""
    ticks = _tree_ticks(root) + sum(_tree_ticks(p) for p in descendants(root))
    return ticks / os.sysconf("SC_CLK_TCK")


class Sampler(threading.Thread):
    """Polls the daemon and all its descendants every `interval` seconds: the peak of the
    summed VmRSS (all session processes plus the listener), the peak of one session (a
    child of the listener with its own descendants), and the session processes' CPU time
    (the last sample seen of each process, so up to one interval per process is missed)."""

    def __init__(self, root: int, interval: float) -> None:
        super().__init__(daemon=True)
        self.root = root
        self.interval = interval
        self.stop_evt = threading.Event()
        self.peak_total_kib = 0
        self.peak_session_kib = 0
        self.max_procs = 0
        self.cpu_ticks: dict[int, int] = {}

    def sample(self) -> None:
        kids = _children_map()
        total = _rss_kib(self.root)
        nprocs = 1
        for s in kids.get(self.root, []):
            stack, session = [s], 0
            while stack:
                p = stack.pop()
                session += _rss_kib(p)
                t = _cpu_ticks(p)
                if t:
                    self.cpu_ticks[p] = t
                nprocs += 1
                stack.extend(kids.get(p, []))
            total += session
            self.peak_session_kib = max(self.peak_session_kib, session)
        self.peak_total_kib = max(self.peak_total_kib, total)
        self.max_procs = max(self.max_procs, nprocs)

    def run(self) -> None:
        while not self.stop_evt.is_set():
            self.sample()
            self.stop_evt.wait(self.interval)

    def finish(self) -> None:
        self.stop_evt.set()
        self.join()

    @property
    def session_cpu_s(self) -> float:
        return sum(self.cpu_ticks.values()) / os.sysconf("SC_CLK_TCK")


# ----------------------------------------------------------------------------- runs


@dataclass
class Result:
    wall_s: float
    elsewhere_cpu_s: float  # CPU time used on the machine by anything but this transfer
    peak_total_kib: int
    peak_session_kib: int
    daemon_cpu_s: float
    daemon_sys_s: float
    client_cpu_s: float
    max_procs: int
    literal: int | None
    matched: int | None
    # With `client_rss`: the client's peak RSS, the kernel's high-water mark of its largest
    # process (`/usr/bin/time -f %M`), and the summed VmRSS of its process tree, sampled,
    # with the most processes seen at once.
    client_maxrss_kib: int = 0
    client_tree_kib: int = 0
    client_procs: int = 0
    client_sys_s: float = 0.0

    @property
    def client_peak_kib(self) -> int:
        """The client's peak RSS: the kernel's figure, or the sampled sum of its process
        tree where that is larger (a client that forks)."""
        return max(self.client_maxrss_kib, self.client_tree_kib)


@dataclass
class Bench:
    args: argparse.Namespace
    work: Path
    client: str
    # The client's options for each mode (z, noz), and the workloads (name, label) in order.
    mode_opts: dict[str, list[str]] = field(default_factory=dict)
    workloads: list[tuple[str, str]] = field(default_factory=list)
    daemons: dict[str, Daemon] = field(default_factory=dict)
    results: dict[tuple[str, str, str], list[Result]] = field(default_factory=dict)


def busy_ticks() -> int:
    """Busy CPU time of the whole machine so far (all CPUs, in clock ticks)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal ...: all but idle and iowait
    return sum(v[:8]) - v[3] - v[4]


def parse_stat(out: str, label: str) -> int | None:
    for line in out.splitlines():
        if line.startswith(label + ":"):
            num = line.split(":", 1)[1].split()[0].replace(",", "")
            try:
                return int(num)
            except ValueError:
                return None
    return None



# GNU time: `-f %M` is the peak RSS of the command's largest process. The rusage wait4
# gives a parent is no use for that when the parent is this script: a child execs from a
# (v)forked copy of the interpreter, and Linux keeps the larger of the old and the new
# memory map's high-water marks (tens of MiB of python) in ru_maxrss. `time` is small.
GNU_TIME = "/usr/bin/time"


def time_wrapped(argv: list[str], out: Path) -> list[str]:
    """`argv` run under GNU time, its peak RSS (KiB) written to `out` (see `read_maxrss`)."""
    return [GNU_TIME, "-f", "%M", "-o", str(out), *argv]


def read_maxrss(out: Path) -> int:
    """The KiB GNU time wrote (its last line: before it may come "Command exited with...")."""
    try:
        return int(out.read_text().split()[-1])
    except (OSError, ValueError, IndexError):
        return 0


def measure(b: Bench, d: Daemon, argvs: Callable[[int], list[list[str]]], cwd: Path,
            verb: str, client_rss: bool = False) -> Result:
    """Starts `d`, runs the client once for each command line of `argvs(port)` in turn
    (stopping at the first that fails), all timed together, then stops `d`. `verb` (push,
    pull) names the transfer in the error raised when the client fails. With `client_rss`
    the client runs under GNU time (its peak RSS; the wall time then includes time's
    fork and exec, well under a millisecond) and its process tree is sampled too."""
    subprocess.run(["sync"], check=True)
    d.start()
    sampler = Sampler(d.proc.pid, b.args.poll_ms / 1000)  # type: ignore[union-attr]
    sampler.start()

    out_f = open(b.work / "client.out", "w+b")
    err_f = open(b.work / "client.err", "w+b")
    busy0, self0 = busy_ticks(), os.times()
    t0 = time.monotonic()
    utime = stime = 0.0
    status = 0
    maxrss = tree_kib = tree_procs = 0
    rss_out = b.work / "client.maxrss"
    for argv in argvs(d.port):
        if client_rss:
            argv = time_wrapped(argv, rss_out)
        proc = subprocess.Popen(argv, cwd=cwd, stdout=out_f, stderr=err_f)
        csampler = Sampler(proc.pid, b.args.poll_ms / 1000) if client_rss else None
        if csampler:
            csampler.start()
        _, status, ru = os.wait4(proc.pid, 0)
        if csampler:
            # time's child is the client: its tree is the sampler's one "session".
            csampler.finish()
            tree_kib = max(tree_kib, csampler.peak_session_kib)
            tree_procs = max(tree_procs, csampler.max_procs - 1)
            maxrss = max(maxrss, read_maxrss(rss_out))
        utime += ru.ru_utime
        stime += ru.ru_stime
        if os.waitstatus_to_exitcode(status) != 0:
            break
    wall = time.monotonic() - t0
    proc.returncode = os.waitstatus_to_exitcode(status)
    # Wait for the session processes to exit: their RSS/CPU belong to the measurement.
    deadline = time.monotonic() + 30
    while descendants(d.proc.pid) and time.monotonic() < deadline:  # type: ignore[union-attr]
        sampler.sample()
        time.sleep(0.005)
    sampler.finish()
    busy1, self1 = busy_ticks(), os.times()
    daemon_cpu = d.stop()
    out_f.seek(0)
    err_f.seek(0)
    out = out_f.read().decode(errors="replace")
    err = err_f.read().decode(errors="replace")
    out_f.close()
    err_f.close()
    if proc.returncode != 0:
        raise SystemExit(
            f"{d.name}: {verb} failed with exit {proc.returncode}:\n{' '.join(argv)}\n"
            f"{out[-4000:]}{err}\ndaemon log: {d.logfile}\n{tail(d.logfile)}"
            f"{tail(d.dir / 'daemon.out')}"
        )
    tck = os.sysconf("SC_CLK_TCK")
    ours_cpu = sum(daemon_cpu) + utime + stime
    ours_cpu += (self1.user - self0.user) + (self1.system - self0.system)
    elsewhere = max(0.0, (busy1 - busy0) / tck - ours_cpu)
    return Result(
        wall_s=wall,
        elsewhere_cpu_s=elsewhere,
        peak_total_kib=sampler.peak_total_kib,
        peak_session_kib=sampler.peak_session_kib,
        # The kernel's count when the listener reaped its sessions, else the samples'.
        daemon_cpu_s=sum(daemon_cpu) if sum(daemon_cpu) > 0 else sampler.session_cpu_s,
        daemon_sys_s=daemon_cpu[1],
        client_cpu_s=utime + stime,
        max_procs=sampler.max_procs,
        literal=parse_stat(out, "Literal data"),
        matched=parse_stat(out, "Matched data"),
        client_maxrss_kib=maxrss,
        client_tree_kib=tree_kib,
        client_procs=tree_procs,
        client_sys_s=stime,
    )


def repetitions(b: Bench, mode: str) -> Iterator[tuple[int, list[str], bool]]:
    """The repetitions of one option set, warm-ups first (negative numbers): each with the
    order of the daemons in it, and whether it is a warm-up. Logs each one's start."""
    names = list(b.daemons)
    for rep in range(-b.args.warmup, b.args.repeats):
        # Alternate which daemon goes first, so drift in the machine hits both alike.
        order = names if rep % 2 == 0 else names[::-1]
        warm = rep < 0
        what = "warm-up (not counted)" if warm else f"repetition {rep + 1}/{b.args.repeats}"
        log(f"[{mode}] {what}: order {' then '.join(order)}")
        yield rep, order, warm


def record(b: Bench, mode: str, wl: str, name: str, r: Result, warm: bool) -> None:
    """Keeps a measurement (unless it is a warm-up) and logs it."""
    if not warm:
        b.results.setdefault((mode, wl, name), []).append(r)
    lit = f" literal {r.literal}" if r.literal is not None else ""
    lit += f"  elsewhere {r.elsewhere_cpu_s:.2f} CPU s"
    log(
        f"  {wl:15s} {name:10s} {r.wall_s:8.2f} s  peak RSS "
        f"{human_bytes(r.peak_total_kib * 1024)}  daemon CPU "
        f"{r.daemon_cpu_s:.2f} s{lit}"
    )


def tail(path: Path, nbytes: int = 4000) -> str:
    """The end of a log file, for error messages ("" when there is none)."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - nbytes))
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    return f"--- {path} (end):\n{text}" if text else ""


# ----------------------------------------------------------------------------- checks


FAKE_SUPER_XATTR = "user.rsync.%stat"


def tree_meta(path: str, fake_super: bool = False) -> tuple[int, int, int, int, int, int]:
    """What -a preserves and the check compares: type, permissions, owner, group, mtime
    (whole seconds) and, for files, size. With `fake_super` (a module written by a daemon
    with `fake super = yes`) type, permissions, owner and group are the ones the daemon
    stored in the `user.rsync.%stat` xattr ("MODE MAJOR,MINOR UID:GID", octal mode) where
    there is one: the file itself belongs to the daemon's user."""
    st = os.lstat(path)
    mode, uid, gid = st.st_mode, st.st_uid, st.st_gid
    if fake_super:
        try:
            raw = os.getxattr(path, FAKE_SUPER_XATTR, follow_symlinks=False).decode()
        except OSError:
            raw = ""
        if raw:
            m, _rdev, ids = raw.split()
            mode = int(m, 8)
            uid, gid = (int(x) for x in ids.split(":"))
    size = st.st_size if stat.S_ISREG(st.st_mode) else 0
    return (stat.S_IFMT(mode), stat.S_IMODE(mode), uid, gid, int(st.st_mtime), size)


def same_content(a: str, b: str) -> bool:
    with open(a, "rb") as f, open(b, "rb") as g:
        while True:
            x = f.read(1 << 20)
            if x != g.read(1 << 20):
                return False
            if not x:
                return True


def compare_trees(src: Path, dst: Path, limit: int = 20, fake_super: bool = False,
                  content_every: int = 1) -> list[str]:
    """Differences between `dst` and `src` (at most `limit`): names on one side only,
    metadata (`tree_meta`) of every entry, directories included, the top one too, and the
    bytes of every `content_every`-th file in walk order (the first one always)."""
    problems: list[str] = []
    nfile = 0
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        rel = os.path.relpath(dirpath, src)
        ddir = os.path.join(dst, rel)
        try:
            dnames = set(os.listdir(ddir))
        except OSError as e:
            problems.append(f"{rel}/: {e.strerror} in the destination")
            dirnames[:] = []
            continue
        snames = set(dirnames) | set(filenames)
        problems += [f"{os.path.join(rel, n)}: missing" for n in sorted(snames - dnames)]
        problems += [f"{os.path.join(rel, n)}: not in the source"
                     for n in sorted(dnames - snames)]
        ms, md = tree_meta(dirpath), tree_meta(ddir, fake_super)
        if ms != md:
            problems.append(f"{rel}/: (type, mode, uid, gid, mtime, size) {md}, source {ms}")
        for fn in sorted(filenames):
            if fn not in dnames:
                continue
            s, t = os.path.join(dirpath, fn), os.path.join(ddir, fn)
            ms, md = tree_meta(s), tree_meta(t, fake_super)
            if ms != md:
                problems.append(f"{os.path.join(rel, fn)}: (type, mode, uid, gid, mtime, "
                                f"size) {md}, source {ms}")
            elif (stat.S_ISREG(ms[0]) and nfile % content_every == 0
                  and not same_content(s, t)):
                problems.append(f"{os.path.join(rel, fn)}: content differs")
            nfile += 1
        if len(problems) >= limit:
            break
    return problems[:limit]


def fail(b: Bench, d: Daemon, what: str, problems: list[str]) -> None:
    """Stops the benchmark with what went wrong, the client's output and the daemon's log
    (the scratch directory is kept: see `run_bench`)."""
    raise SystemExit(
        f"{what}\n" + "\n".join(f"  {p}" for p in problems) + "\n"
        f"{tail(b.work / 'client.out')}{tail(b.work / 'client.err')}"
        f"daemon log: {d.logfile}\n{tail(d.logfile)}{tail(d.dir / 'daemon.out')}"
    )


# ----------------------------------------------------------------------------- report


def fmt_ratio(r: float) -> str:
    return f"{r:.2f}"


def report(b: Bench, labels: dict[str, str], time_target: float = 1.0,
           target_cols: bool = False) -> list[str]:
    """Prints the tables; returns the NOTE and WARN lines (a WARN for every time ratio above
    `time_target` and every RSS ratio above 1.0). With `target_cols` the main table also
    says, per workload, whether each target holds."""
    warns: list[str] = []
    stock, ours = "stock", "rsyncd-rs"
    for mode in b.args.modes:
        opts = " ".join(b.mode_opts[mode])
        print()
        print(f"== client options: {opts}   (median of {b.args.repeats}; "
              f"peak RSS = max over the repetitions)")
        hdr = ["workload", "stock s", "ours s", "ratio", "stock peak RSS", "ours peak RSS",
               "RSS ratio"]
        if target_cols:
            hdr += [f"time <= {time_target:.1f}", "RSS <= 1.0"]
        rows = []
        extra = []
        for wl, _ in b.workloads:
            rs = b.results.get((mode, wl, stock))
            ro = b.results.get((mode, wl, ours))
            if not rs or not ro:
                continue
            ts = statistics.median(r.wall_s for r in rs)
            to = statistics.median(r.wall_s for r in ro)
            ps = max(r.peak_total_kib for r in rs)
            po = max(r.peak_total_kib for r in ro)
            ratio = to / ts if ts > 0 else float("inf")
            paired, order_effect = paired_ratio(rs, ro)
            bs = min(r.wall_s for r in rs)
            bo = min(r.wall_s for r in ro)
            cs = statistics.median(r.daemon_cpu_s - r.daemon_sys_s for r in rs)
            co = statistics.median(r.daemon_cpu_s - r.daemon_sys_s for r in ro)
            busy = max(r.elsewhere_cpu_s / r.wall_s for r in rs + ro if r.wall_s > 0)
            if busy > 0.1:
                warns.append(f"NOTE [{opts}] {wl}: other processes (or kernel threads) used "
                             f"up to {busy:.0%} of a CPU during these runs; timings are "
                             "noisier")
            rss_ratio = po / ps if ps > 0 else float("inf")
            rows.append([labels[wl], f"{ts:.2f}", f"{to:.2f}", fmt_ratio(ratio),
                         human_bytes(ps * 1024), human_bytes(po * 1024), fmt_ratio(rss_ratio)])
            if target_cols:
                rows[-1] += [held(ratio <= time_target), held(rss_ratio <= 1.0)]
            if ratio > time_target:
                warns.append(f"WARN [{opts}] {wl}: time ratio {ratio:.2f} > {time_target:.1f} "
                             f"(ours {to:.2f} s, stock {ts:.2f} s)")
            if rss_ratio > 1.0:
                warns.append(f"WARN [{opts}] {wl}: peak RSS ratio {rss_ratio:.2f} > 1.0 "
                             f"(ours {human_bytes(po * 1024)}, stock {human_bytes(ps * 1024)})")
            lit_s = rs[-1].literal
            lit_o = ro[-1].literal
            extra.append([
                labels[wl],
                human_bytes(max(r.peak_session_kib for r in rs) * 1024),
                human_bytes(max(r.peak_session_kib for r in ro) * 1024),
                cpu_cell(rs),
                cpu_cell(ro),
                f"{statistics.median(r.client_cpu_s for r in rs):.2f}",
                f"{statistics.median(r.client_cpu_s for r in ro):.2f}",
                "-" if lit_s is None else f"{lit_s:,}",
                "-" if lit_o is None else f"{lit_o:,}",
                f"{max(r.max_procs for r in rs)}/{max(r.max_procs for r in ro)}",
                fmt_ratio(co / cs) if cs > 0 else "-",
                fmt_ratio(bo / bs) if bs > 0 else "-",
                fmt_ratio(paired) if paired else "-",
                fmt_ratio(order_effect) if order_effect else "-",
                f"{busy:.0%}",
                " ".join(f"{r.wall_s:.2f}" for r in rs) + " / "
                + " ".join(f"{r.wall_s:.2f}" for r in ro),
            ])
        print_table(hdr, rows)
        print()
        print_table(
            ["workload", "stock 1-session RSS", "ours 1-session RSS", "stock daemon CPU s user / sys",
             "ours daemon CPU s user / sys", "client CPU s (stock)", "client CPU s (ours)",
             "literal (stock)", "literal (ours)", "procs (stock/ours)",
             "daemon user-CPU ratio", "best-run ratio", "paired ratio",
             "1st/2nd", "busy elsewhere (max)",
             "all runs s (stock / ours)"],
            extra,
        )
    return warns


def workload_labels(b: Bench, **extra: str) -> dict[str, str]:
    """The workloads' labels, their sizes filled in (`extra` for a benchmark's own)."""
    a = b.args
    big = (a.big_mib << 20)
    return {
        wl: text.format(n=f"{a.files:,}", d=a.dirs, k=a.changes,
                        big=human_bytes(big).replace(".0 ", " "),
                        chg=human_bytes(a.changes * (a.change_kib << 10)).replace(".0 ", " "),
                        **extra)
        for wl, text in b.workloads
    }


def pct(xs: list[float], p: float) -> float:
    """The p-th percentile, nearest rank (p99 of 200 values: the third largest)."""
    s = sorted(xs)
    return s[max(0, min(len(s) - 1, -(-len(s) * p // 100) - 1))]


def held(ok: bool) -> str:
    return "holds" if ok else "MISSED"


def paired_ratio(rs: list[Result], ro: list[Result]) -> tuple[float | None, float | None]:
    """The geometric mean over the repetitions of ours / stock within each repetition, and
    the order effect: how much longer a daemon takes going first than going second (the
    geometric mean of first / second over the repetitions; 1.0 when the position does not
    matter). Stock goes first in repetitions 1, 3, ... With as many repetitions in each
    order, a position effect cancels out of the paired ratio and the order effect is
    exact: first/second is f/r and r*f in the two orders."""
    pairs = [(s.wall_s, o.wall_s) for s, o in zip(rs, ro) if s.wall_s > 0 and o.wall_s > 0]
    if not pairs:
        return None, None
    paired = statistics.geometric_mean([o / s for s, o in pairs])
    first_second = [s / o if i % 2 == 0 else o / s for i, (s, o) in enumerate(pairs)]
    return paired, statistics.geometric_mean(first_second)


def cpu_cell(rs: list[Result]) -> str:
    """Median daemon user and system CPU seconds (each the median of its own)."""
    user = statistics.median(r.daemon_cpu_s - r.daemon_sys_s for r in rs)
    sys_ = statistics.median(r.daemon_sys_s for r in rs)
    return f"{user:.2f} / {sys_:.2f}"


def print_table(hdr: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(hdr)]
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(
            c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(cells, widths))
        ) + " |"
    print(line(hdr))
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print(line(r))


# ----------------------------------------------------------------------------- watchers
# What agent.py and scale.py share: the watchers' configurations and processes, and the
# files they push.


# sersync2 writes these at every start (`echo N > ...`, whatever they were); they are put
# back after each of its runs.
SERSYNC_SYSCTLS = ("/proc/sys/fs/inotify/max_user_watches",
                   "/proc/sys/fs/inotify/max_queued_events")


def tool_path(given: str | None, name: str, *fallbacks: str) -> str | None:
    """`given`, else `name` in PATH, else the first existing of `fallbacks` (globs)."""
    if given:
        if not os.access(given, os.X_OK):
            raise SystemExit(f"{given}: not an executable")
        return given
    found = shutil.which(name)
    if found:
        return found
    for pattern in fallbacks:
        for p in sorted(glob.glob(pattern, recursive=True)):
            if os.path.isfile(p) and os.access(p, os.X_OK):
                return p
    return None


@dataclass
class Env:
    """What every run needs: options, tools, the daemon and the scratch directory."""
    args: argparse.Namespace
    work: Path
    daemon: Daemon
    password: Path
    tools: dict[str, str]  # watcher -> its program (only the watchers that can run)
    client: str


def confxml(e: Env, src: Path, run: Path) -> Path:
    """The reference confxml.xml changed as the e2e tests change it (tests/src/agent.rs,
    `reference_confxml`): the watched path, the remote on loopback, the daemon's port, the
    password file and the failLog in the run's directory. Deletes stay off, as in the
    reference (the workloads delete nothing)."""
    text = (SEED / "confxml.xml").read_text(encoding="iso-8859-1")
    for old, new in [
        ('<localpath watch="/backup">', f'<localpath watch="{src}">'),
        ('ip="10.0.0.10"', 'ip="127.0.0.1"'),
        ('<userDefinedPort start="false" port="874"/>',
         f'<userDefinedPort start="true" port="{e.daemon.port}"/>'),
        ('passwordfile="/etc/rsync.password"', f'passwordfile="{e.password}"'),
        ('<failLog path="/tmp/rsync_fail_log.sh"',
         f'<failLog path="{run / "rsync_fail_log.sh"}"'),
    ]:
        if old not in text:
            raise SystemExit(f"{SEED / 'confxml.xml'}: no {old!r} to change")
        text = text.replace(old, new)
    out = run / "confxml.xml"
    out.write_text(text, encoding="iso-8859-1")
    return out


def lsyncd_conf(e: Env, src: Path, run: Path, init: bool = True) -> Path:
    """lsyncd 2.2's default.rsync with the reference push's options (-a and -z, the daemon
    user, the password file, the port) and no delay, as the issue asks. Without `init`,
    `init = false`: no recursive rsync of the whole tree at startup."""
    out = run / "lsyncd.conf.lua"
    out.write_text(f"""settings {{
    nodaemon = true,
    logfile = "{run / 'lsyncd.log'}",
}}
sync {{
    default.rsync,
    source = "{src}",
    target = "rsync_backup@127.0.0.1::backup",
    delay = 0,{'' if init else chr(10) + '    init = false,'}
    rsync = {{
        binary = "{e.client}",
        archive = true,
        compress = true,
        password_file = "{e.password}",
        _extra = {{ "--port={e.daemon.port}" }},
    }},
}}
""")
    return out


def watcher_argv(e: Env, name: str, src: Path, run: Path, initial_sync: bool | None = None,
                 agent_watcher: str | None = None) -> tuple[list[str], dict[str, str]]:
    """The command line (run in `src`) and environment of a watcher. `initial_sync`:
    None leaves each to its default (the agent and sersync2 without `-r`, lsyncd with its
    startup rsync); True has every one push the whole tree first (`-r`; lsyncd's
    default); False none (lsyncd gets `init = false`). `agent_watcher` is the agent's
    `--watcher` (inotify, fanotify; None: its default)."""
    env = dict(os.environ, LANG="C")
    prog = e.tools[name]
    r = ["-r"] if initial_sync else []
    if name == "sersync-agent":
        agent_state = getattr(e.args, "agent_state", None)
        state = (Path(agent_state) / f"{run.name}-state" if agent_state else run / "state")
        kind = ["--watcher", agent_watcher] if agent_watcher else []
        return [prog, *r, "-o", str(confxml(e, src, run)), "--state-dir", str(state),
                *kind], env
    if name == "lsyncd":
        return [prog, str(lsyncd_conf(e, src, run, init=initial_sync is not False))], env
    if name == "inotifywait":
        # The classic shell replacement for sersync, one session per event.
        script = (
            f"{prog} -mrq -e close_write,create,moved_to,delete --format '%w%f' \"$SRC\" | "
            "while read -r f; do "
            f"{e.client} -artuz -R \"./${{f#$SRC/}}\" --port={e.daemon.port} "
            f"rsync_backup@127.0.0.1::backup --password-file={e.password}; done")
        env["SRC"] = str(src)
        return ["/bin/bash", "-c", script], env
    if name == "sersync2":
        # sersync2 runs `cd W && rsync ...` through sh: the client it finds first in PATH.
        bindir = e.work / "bin"
        bindir.mkdir(exist_ok=True)
        link = bindir / "rsync"
        if not link.exists():
            link.symlink_to(e.client)
        env["PATH"] = f"{bindir}:/usr/bin:/bin"
        return [prog, *r, "-o", str(confxml(e, src, run))], env
    raise ValueError(name)


class Watcher:
    """One watcher's process tree, in a session of its own so that it is stopped whole
    (SIGTERM, then SIGKILL to the group) whatever happens to the benchmark."""

    def __init__(self, e: Env, name: str, src: Path, run: Path, **opts: Any) -> None:
        """`opts` go to `watcher_argv`. `started` is the perf_counter time just before
        the exec."""
        self.name = name
        self.out = run / "watcher.out"
        argv, env = watcher_argv(e, name, src, run, **opts)
        self.saved = save_sysctls() if name == "sersync2" else {}
        with open(self.out, "ab") as out:
            self.started = time.perf_counter()
            self.proc = subprocess.Popen(argv, cwd=src, env=env, stdin=subprocess.DEVNULL,
                                         stdout=out, stderr=subprocess.STDOUT,
                                         start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            pass
        # Whatever is left in the group (rsync children of a watcher that did not wait).
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            log(f"{self.name}: pid {self.proc.pid} did not exit after SIGKILL")
        restore_sysctls(self.saved)


def save_sysctls() -> dict[str, str]:
    out = {}
    for p in SERSYNC_SYSCTLS:
        try:
            out[p] = Path(p).read_text().strip()
        except OSError:
            pass
    return out


def restore_sysctls(saved: dict[str, str]) -> None:
    for p, v in saved.items():
        try:
            if Path(p).read_text().strip() != v:
                Path(p).write_text(v + "\n")
        except OSError:
            pass


def content(tag: str, rng: random.Random) -> bytes:
    """1-4 KiB of deterministic pseudo-random bytes."""
    return gen_bytes(tag.encode(), rng.randint(1024, 4096))


def write_file(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)


def wait_arrival(target: Path, size: int, timeout: float, poll: float) -> float | None:
    """The perf_counter time at which `target` is seen with `size` bytes (rsync writes a
    temporary name and renames it: the name appears with its whole content), or None
    after `timeout` seconds."""
    deadline = time.perf_counter() + timeout
    while True:
        try:
            if os.stat(target).st_size == size:
                return time.perf_counter()
        except FileNotFoundError:
            pass
        if time.perf_counter() > deadline:
            return None
        time.sleep(poll)


def check_files(src: Path, module: Path, rels: list[str]) -> tuple[int, int, list[str]]:
    """(missing, wrong, examples): each file of `rels` in the module with the source's
    size, bytes, mtime and mode (owner and mode from the fake-super xattr)."""
    missing = wrong = 0
    examples: list[str] = []
    for rel in rels:
        s, t = src / rel, module / rel
        if not t.exists():
            missing += 1
            continue
        ms, mt = tree_meta(str(s)), tree_meta(str(t), True)
        if ms != mt or not same_content(str(s), str(t)):
            wrong += 1
            if len(examples) < 5:
                examples.append(f"{rel}: (type, mode, uid, gid, mtime, size) {mt}, source {ms}"
                                + ("" if ms != mt else ", bytes differ"))
    return missing, wrong, examples


# ----------------------------------------------------------------------------- main


def fs_type(path: Path) -> str:
    """The type of the filesystem holding `path` (from /proc/mounts, longest match)."""
    best, kind = "", "?"
    p = str(path.resolve())
    with open("/proc/mounts") as f:
        for line in f:
            mnt, typ = line.split()[1], line.split()[2]
            if (p == mnt or p.startswith(mnt.rstrip("/") + "/")) and len(mnt) >= len(best):
                best, kind = mnt, typ
    return kind


def find_ours(path: str | None, name: str = "rsyncd-rs", option: str = "--ours") -> str:
    """The binary given (`option` names it in errors), or the workspace's release build of
    package `name` (`$CARGO_TARGET_DIR` or target/), built when missing."""
    if path:
        p = Path(path)
        if not os.access(p, os.X_OK):
            raise SystemExit(f"{option} {p}: not an executable")
        return str(p)
    target = Path(os.environ.get("CARGO_TARGET_DIR", REPO / "target"))
    p = target / "release" / name
    if not p.exists():
        log(f"building {p} (cargo build --release -p {name})")
        subprocess.run(["cargo", "build", "--release", "-p", name], cwd=REPO, check=True)
    return str(p)



def common_args(ap: argparse.ArgumentParser, workloads: str, delta: bool = True) -> None:
    """The options the benchmarks take (after their own --quick); with `delta`, those of
    the big file's changed copy."""
    ap.add_argument("--files", type=int, help="number of small files (default 20000)")
    ap.add_argument("--dirs", type=int, default=200, help="directories for them (200)")
    ap.add_argument("--big-mib", type=int, help="size of the big file in MiB (default 1024)")
    if delta:
        ap.add_argument("--changes", type=int, default=256,
                        help="places changed in the big file for the delta transfer (256)")
        ap.add_argument("--change-kib", type=int, default=4,
                        help="KiB changed at each place (4: 256 x 4 KiB = 1 MiB)")
    ap.add_argument("--repeats", type=int,
                    help="repetitions, median reported; even, so that each daemon goes "
                         "first as often as second (4)")
    ap.add_argument("--warmup", type=int, default=1,
                    help="uncounted repetitions before each option set (1)")
    ap.add_argument("--modes", default="z,noz",
                    help="client option sets: z = with -z, noz = without (z,noz)")
    ap.add_argument("--workloads", default=workloads,
                    help=f"which workloads, comma-separated ({workloads})")
    ap.add_argument("--ours", help="rsyncd-rs binary (default target/release/rsyncd-rs, "
                                   "built when missing)")
    ap.add_argument("--stock", default="/usr/bin/rsync", help="stock rsync for the daemon")
    ap.add_argument("--client", default="/usr/bin/rsync", help="stock rsync client")
    ap.add_argument("--workdir", help="parent of the scratch directory (default $TMPDIR)")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory")
    ap.add_argument("--no-verify", action="store_true",
                    help="skip checking the destinations against the sources")
    ap.add_argument("--poll-ms", type=float, default=20, help="RSS poll interval (20 ms)")


def finish_args(args: argparse.Namespace, quick_repeats: int = 4) -> None:
    """Defaults that depend on --quick, and the comma-separated lists split."""
    if args.repeats is None:
        args.repeats = quick_repeats if args.quick else 4
    args.files = args.files or (2000 if args.quick else 20000)
    args.big_mib = args.big_mib or (64 if args.quick else 1024)
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if args.repeats % 2:
        log("note: with an odd --repeats one daemon goes first more often than the other; "
            "an order effect then biases the ratios")
    args.workloads = [w.strip() for w in args.workloads.split(",") if w.strip()]
    for m in args.modes:
        if m not in ("z", "noz"):
            raise SystemExit(f"--modes: unknown {m!r}")


def run_bench(args: argparse.Namespace, kind: str, b_init: dict,
              prepare: Callable[[Bench], None], body: Callable[[Bench], None],
              own_module: bool = True) -> int:
    """Sets up the scratch directory and both daemons, calls `prepare` (test data), prints
    the header, calls `body` (measurements and report), and stops and cleans up. The
    scratch directory is kept with --keep, and when the run fails."""
    for tool in (args.stock, args.client):
        if not os.access(tool, os.X_OK):
            raise SystemExit(f"{tool}: not found (install the stock rsync)")
    ours = find_ours(args.ours)

    work = Path(tempfile.mkdtemp(prefix="rsyncd-rs-bench-", dir=args.workdir))
    os.chmod(work, 0o755)
    b = Bench(args=args, work=work, client=args.client, **b_init)
    ok = False
    try:
        pw = work / "rsync.password.client"
        pw.write_text((SEED / "rsync.password.client").read_text())
        os.chmod(pw, 0o600)
        b.daemons["stock"] = Daemon("stock", [args.stock], work / "stock")
        b.daemons["rsyncd-rs"] = Daemon("rsyncd-rs", [ours], work / "ours")
        for d in b.daemons.values():
            d.setup(own_module)
        prepare(b)

        info = subprocess.run([args.client, "--version"], capture_output=True,
                              text=True).stdout.splitlines()[0]
        print(f"rsyncd-rs {kind} benchmark: client {args.client} ({info.strip()})")
        print(f"  stock daemon: {args.stock} --daemon    ours: {ours} --daemon")
        print(f"  {os.cpu_count()} CPUs; {args.repeats} repetitions, daemons alternating, "
              f"one daemon running at a time; RSS polled every {args.poll_ms:g} ms")
        print(f"  scratch {work} ({fs_type(work)}); load average at start "
              f"{os.getloadavg()[0]:.2f}")
        body(b)
        ok = True
    finally:
        for d in b.daemons.values():
            d.stop()
        if args.keep or not ok:
            log(f"kept {work}" + ("" if ok else " (the run failed)"))
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0
