#!/usr/bin/env python3
"""Pull benchmark: the stock rsync client pulling from rsyncd-rs and from stock `rsync --daemon`.

The daemon is the sender here. Speed and memory targets are ratios against stock measured
in the same run: time ratio (rsyncd-rs / stock) at most 0.8, peak RSS ratio at most 1.0.
Every measurement runs one daemon alone (started before, stopped after), the two daemons
alternate, each measurement is repeated and the median reported. Every pulled tree is
compared with its source. See bench/README.md.

Exits 0 whatever the ratios are (this is a benchmark, not a test); says for every workload
whether each target holds. Exits non-zero only when the benchmark itself cannot run (a
daemon does not start, a pull fails, a pulled tree does not match its source).
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
from pathlib import Path
from typing import Callable

from common import (
    MTIME_BASE,
    Bench,
    Daemon,
    Result,
    common_args,
    compare_trees,
    empty_dir,
    fail,
    finish_args,
    make_sources,
    log,
    measure,
    record,
    repetitions,
    report,
    run_bench,
    workload_labels,
)

CLIENT_WITH_Z = ["-az"]
CLIENT_WITHOUT_Z = ["-a"]

# The targets of the sender role: ours / stock.
TIME_TARGET = 0.8
RSS_TARGET = 1.0

WORKLOADS = [
    ("small-initial", "{n} small files / {d} dirs, initial pull"),
    ("small-nochange", "re-pull of the {n}, nothing changed"),
    ("big-initial", "one {big} file, initial pull"),
    ("big-delta", "{big} file, client copy with {chg} changed in {k} places"),
    ("tree-initial", "{tn} files / {td} dirs, initial pull"),
]


# ----------------------------------------------------------------------------- data


def make_tree(root: Path, nfiles: int, per_dir: int = 200, per_parent: int = 50) -> int:
    """`nfiles` files of 64-1024 bytes, `per_dir` to a directory, the directories
    `per_parent` to a parent: `tNN/sNNN/nNNNNNN.dat`. Returns the number of leaf
    directories. What matters here is the number of names (the sender's file lists), not
    the bytes."""
    rng = random.Random(200_000)
    ndirs = max(1, -(-nfiles // per_dir))
    idx = 0
    for d in range(ndirs):
        dpath = root / f"t{d // per_parent:02d}" / f"s{d % per_parent:03d}"
        dpath.mkdir(parents=True)
        for _ in range(min(per_dir, nfiles - idx)):
            size = rng.randint(64, 1024)
            line = b"tree file %07d %s\n" % (idx, b"x" * (idx % 40))
            f = dpath / f"n{idx:07d}.dat"
            f.write_bytes((line * (size // len(line) + 1))[:size])
            os.utime(f, (MTIME_BASE + idx, MTIME_BASE + idx))
            idx += 1
        os.utime(dpath, (MTIME_BASE, MTIME_BASE))
    for top in root.iterdir():
        os.utime(top, (MTIME_BASE, MTIME_BASE))
    return ndirs


# ----------------------------------------------------------------------------- runs


def pull(b: Bench, d: Daemon, dest: Path, opts: list[str]) -> Result:
    """One pull of the whole module into `dest`."""

    def argvs(port: int) -> list[list[str]]:
        return [[
            b.client,
            *opts,
            "--stats",
            f"rsync://rsync_backup@127.0.0.1:{port}/backup/",
            f"{dest}/",
            f"--password-file={b.work / 'rsync.password.client'}",
        ]]

    return measure(b, d, argvs, b.work, "pull")


def run_mode(b: Bench, mode: str, opts: list[str], srcs: dict[str, Path]) -> None:
    basis = srcs["basis"] / "big.bin"
    basis_st = basis.stat()

    def fresh(d: Daemon) -> None:
        empty_dir(d.dir / "dst", d.dir / "trash")

    def holding_basis(d: Daemon) -> None:
        # The client's copy is a hard link to the changed file: the client writes the new
        # file beside it and renames it over, so the link is replaced and the original
        # stays as it was (checked after every pull).
        fresh(d)
        os.link(basis, d.dir / "dst" / "big.bin")

    for _, order, warm in repetitions(b, mode):

        def one(wl: str, src: Path, prepare: Callable[[Daemon], None] | None = None) -> None:
            for n in order:
                d = b.daemons[n]
                if prepare:
                    prepare(d)
                d.serve(src)
                r = pull(b, d, d.dir / "dst", opts)
                record(b, mode, wl, n, r, warm)
                if b.args.no_verify:
                    continue
                problems = compare_trees(src, d.dir / "dst")
                if problems:
                    fail(b, d, f"[{' '.join(opts)}] {wl} from {n}: the pulled tree "
                               f"{d.dir / 'dst'} differs from the source {src}", problems)
                st = basis.stat()
                if (st.st_nlink, st.st_size, st.st_mtime_ns) != (
                        1, basis_st.st_size, basis_st.st_mtime_ns):
                    fail(b, d, f"[{' '.join(opts)}] {wl} from {n}: the client changed the "
                               f"basis file {basis} in place", [])

        if "small" in b.args.workloads:
            one("small-initial", srcs["small"], fresh)
            one("small-nochange", srcs["small"])
        if "big" in b.args.workloads:
            one("big-initial", srcs["big"], fresh)
            one("big-delta", srcs["big"], holding_basis)
        if "tree" in b.args.workloads:
            one("tree-initial", srcs["tree"], fresh)
    # The moved-aside trees would fill the disk over the option sets; the next set's
    # warm-up absorbs the slower inode allocation that follows a mass delete.
    log(f"[{mode}] deleting the pulled trees")
    for d in b.daemons.values():
        fresh(d)
        subprocess.run(["rm", "-rf", "--", str(d.dir / "trash")], check=True)


# ----------------------------------------------------------------------------- main


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="2,000 files, a 64 MiB file and a 20,000-file tree instead of "
                         "20,000, 1 GiB and 200,000; 2 repetitions unless --repeats")
    ap.add_argument("--tree-files", type=int,
                    help="files in the big tree (default 200000), 200 to a directory")
    common_args(ap, "small,big,tree")
    args = ap.parse_args()
    finish_args(args, quick_repeats=2)
    args.tree_files = args.tree_files or (20000 if args.quick else 200000)
    srcs: dict[str, Path] = {}
    tree_dirs = 0

    def prepare(b: Bench) -> None:
        nonlocal tree_dirs
        srcs.update({k: b.work / f"src-{k}" for k in ("small", "big", "basis", "tree")})
        make_sources(args, srcs["small"], srcs["big"], srcs["basis"])
        if "big" not in args.workloads:  # run_mode checks the basis file after every pull
            srcs["big"].mkdir()
            srcs["basis"].mkdir()
            (srcs["basis"] / "big.bin").touch()
        if "tree" in args.workloads:
            log(f"generating a tree of {args.tree_files} files")
            tree_dirs = make_tree(srcs["tree"], args.tree_files)

    def body(b: Bench) -> None:
        for mode in args.modes:
            run_mode(b, mode, b.mode_opts[mode], srcs)

        labels = workload_labels(b, tn=f"{args.tree_files:,}", td=f"{tree_dirs:,}")
        warns = report(b, labels, TIME_TARGET, target_cols=True)
        print()
        print(f"ratio = rsyncd-rs / stock; targets: time ratio <= {TIME_TARGET}, peak RSS "
              f"ratio <= {RSS_TARGET}. peak RSS = the daemon listener plus all session "
              "processes, summed, at the worst moment.")
        for w in warns:
            print(w)
        missed = sum(w.startswith("WARN") for w in warns)
        if not b.results:
            print("no measurements (--repeats 0)")
        elif missed:
            pairs = {(m, wl) for m, wl, _ in b.results}
            print(f"{missed} of {2 * len(pairs)} targets missed")
        else:
            print("all targets hold")

    mode_opts = {"z": CLIENT_WITH_Z, "noz": CLIENT_WITHOUT_Z}
    return run_bench(args, "pull", {"mode_opts": mode_opts, "workloads": WORKLOADS},
                     prepare, body, own_module=False)


if __name__ == "__main__":
    sys.exit(main())
