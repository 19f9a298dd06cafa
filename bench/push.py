#!/usr/bin/env python3
"""Push benchmark: the stock rsync client pushing to rsyncd-rs and to stock `rsync --daemon`.

Issue 3: speed and memory targets are ratios against stock measured in the same run.
Every measurement runs one daemon alone (started before, stopped after), the two daemons
alternate, each measurement is repeated and the median reported. See bench/README.md.

Exits 0 whatever the ratios are (this is a benchmark, not a test); prints a WARN line for
every ratio above 1.0. Exits non-zero only when the benchmark itself cannot run (a daemon
does not start, a push fails, a destination does not match its source).
"""

from __future__ import annotations

import argparse
import itertools
import os
import subprocess
import sys
from pathlib import Path

from common import (
    MTIME_BASE,
    Bench,
    Daemon,
    Result,
    common_args,
    finish_args,
    make_sources,
    measure,
    record,
    repetitions,
    report,
    run_bench,
    workload_labels,
)

CLIENT_WITH_Z = ["-artuz", "-R", "--delete"]
CLIENT_WITHOUT_Z = ["-artu", "-R", "--delete"]

WORKLOADS = [
    ("small-initial", "{n} small files / {d} dirs, initial push"),
    ("small-nochange", "re-push of the {n}, nothing changed"),
    ("small-perchange", "{pc} changed files, one push each (sersync's per-change push)"),
    ("big-initial", "one {big} file, initial push"),
    ("big-delta", "{big} file, {chg} changed in {k} places"),
]


_CHANGE_ROUNDS = itertools.count(1)


def change_small_files(root: Path, count: int, rep: int) -> list[str]:
    """Rewrites `count` files spread over the small tree (new content, and an mtime newer
    than any before: `-u` skips a file older than its copy) and returns their paths as
    sersync names them for `rsync -R`: `./dNNN/fNNNNN.txt`."""
    round_ = next(_CHANGE_ROUNDS)
    files = sorted(root.glob("d*/f*.txt"))
    step = max(1, len(files) // max(1, count))
    paths = []
    for i, f in enumerate(files[::step][:count]):
        f.write_bytes(b"changed in repetition %d, file %d\n" % (rep, i) + f.read_bytes()[:2048])
        t = MTIME_BASE + 1_000_000 + round_
        os.utime(f, (t, t))
        paths.append("./" + str(f.relative_to(root)))
    return paths



def push(b: Bench, d: Daemon, srcdir: Path, opts: list[str],
         paths: list[str] | None = None) -> Result:
    """One push of the whole source ("./"), or one session per path of `paths` in turn,
    all timed together (sersync pushes each change by itself)."""

    def argvs(port: int) -> list[list[str]]:
        return [
            [
                b.client,
                *opts,
                "--stats",
                path,
                f"rsync://rsync_backup@127.0.0.1:{port}/backup/",
                f"--password-file={b.work / 'rsync.password.client'}",
            ]
            for path in paths or ["./"]
        ]

    return measure(b, d, argvs, srcdir, "push")


def verify_tree(src: Path, dst: Path, content: bool) -> None:
    """Destination equals source: same names, sizes, mtimes (and bytes when `content`)."""
    for dirpath, dirnames, filenames in os.walk(src):
        rel = Path(dirpath).relative_to(src)
        for fn in filenames:
            s, t = Path(dirpath) / fn, dst / rel / fn
            ss, ts = s.stat(), t.stat() if t.exists() else None
            if ts is None or ss.st_size != ts.st_size or int(ss.st_mtime) != int(ts.st_mtime):
                raise SystemExit(f"verify: {t} differs from {s}")
            if content and not _same_bytes(s, t):
                raise SystemExit(f"verify: content of {t} differs from {s}")
    nsrc = sum(len(f) + len(d) for _, d, f in os.walk(src))
    ndst = sum(len(f) + len(d) for _, d, f in os.walk(dst))
    if nsrc != ndst:
        raise SystemExit(f"verify: {dst} has {ndst} entries, source {nsrc}")


def _same_bytes(a: Path, b: Path) -> bool:
    return subprocess.run(["cmp", "-s", str(a), str(b)]).returncode == 0


def run_mode(b: Bench, mode: str, opts: list[str], src_small: Path, src_big: Path,
             src_big_mod: Path) -> None:
    for rep, order, warm in repetitions(b, mode):
        verify = not b.args.no_verify and (warm or rep == 0)

        def one(wl: str, src: Path, check_content: bool,
                paths: list[str] | None = None) -> None:
            for n in order:
                d = b.daemons[n]
                r = push(b, d, src, opts, paths)
                record(b, mode, wl, n, r, warm)
                if verify:
                    verify_tree(src, d.module, check_content)

        if "small" in b.args.workloads:
            for n in order:
                b.daemons[n].reset_module()
            one("small-initial", src_small, False)
            one("small-nochange", src_small, False)
            changed = change_small_files(src_small, b.args.per_change, rep)
            one("small-perchange", src_small, True, changed)
        if "big" in b.args.workloads:
            for n in order:
                b.daemons[n].reset_module()
            one("big-initial", src_big, True)
            one("big-delta", src_big_mod, True)
    for d in b.daemons.values():
        d.reset_module()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="2,000 files and a 64 MiB file instead of 20,000 and 1 GiB")
    ap.add_argument("--per-change", type=int, default=50,
                    help="files changed and pushed one session each (50)")
    common_args(ap, "small,big")
    args = ap.parse_args()
    finish_args(args)
    src_small = Path()
    src_big = Path()
    src_big_mod = Path()

    def prepare(b: Bench) -> None:
        nonlocal src_small, src_big, src_big_mod
        src_small = b.work / "src-small"
        src_big = b.work / "src-big"
        src_big_mod = b.work / "src-big-changed"
        make_sources(args, src_small, src_big, src_big_mod)

    def body(b: Bench) -> None:
        for mode in args.modes:
            run_mode(b, mode, b.mode_opts[mode], src_small, src_big, src_big_mod)

        warns = report(b, workload_labels(b, pc=str(args.per_change)))
        print()
        print("ratio = rsyncd-rs / stock (target <= 1.0, aim 0.8). peak RSS = the daemon "
              "listener plus all session processes, summed, at the worst moment.")
        for w in warns:
            print(w)
        if not b.results:
            print("no measurements (--repeats 0)")
        elif not any(w.startswith("WARN") for w in warns):
            print("all ratios <= 1.0")

    mode_opts = {"z": CLIENT_WITH_Z, "noz": CLIENT_WITHOUT_Z}
    return run_bench(args, "push", {"mode_opts": mode_opts, "workloads": WORKLOADS},
                     prepare, body)


if __name__ == "__main__":
    sys.exit(main())
