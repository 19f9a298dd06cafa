#!/usr/bin/env python3
"""Seed corpora for the protocol fuzz targets, cut from the captured sessions.

Writes fuzz/corpus/{flist,sum_head,token,filter_list,ndx}/ (git-ignored) from
rsyncd-rs/testdata/captures/b-*: the offsets come from each capture's
*.decoded.txt (see README-b.md there), multiplexed streams are de-framed first.
Each seed starts with the configuration bytes its target reads (see the header of
each fuzz_targets/*.rs). Run from anywhere: `python3 fuzz/seed_corpora.py`, then
`cargo +nightly fuzz run flist` etc.
"""

import hashlib
import pathlib
import re
import struct

HERE = pathlib.Path(__file__).resolve().parent
CAPTURES = HERE.parent / "rsyncd-rs" / "testdata" / "captures"
CORPUS = HERE / "corpus"

# Stock clients' filter lists (rsyncd-rs/src/protocol/filter/wire_tests.rs): label,
# protocol, bytes.
FILTER_LISTS = [
    (
        "push-p32",
        32,
        "050000002d202a2e6f070000002d72206b656570100000003a202f2e7273796e632d66696c7465720f000000"
        "2d202e7273796e632d66696c746572060000002b207375622f070000002d2f202f616273070000002b21206e"
        "6f7065080000002b72207269736b79070000003a6e2d202e6578090000002d70207065726973680b0000002d"
        "7820757365722e666f6f060000002d206e756c6c00000000",
    ),
    (
        "push-p29",
        29,
        "050000002d202a2e6f070000002d72206b656570100000003a202f2e7273796e632d66696c7465720f000000"
        "2d202e7273796e632d66696c746572060000002b207375622f070000002d2f202f616273080000002b722072"
        "69736b79070000003a6e2d202e657800000000",
    ),
    ("push-p28", 28, "030000002a2e6f060000002b207375622f0400000064617368060000002b20706c757300000000"),
    ("protect-p28", 28, "040000006b65657000000000"),
    ("pull-p32", 32, "060000002d7320686964080000002b732073686f776e060000002d20626f746800000000"),
]


class Stream:
    """One direction of a capture: raw, or its MSG_DATA payloads with an offset map."""

    def __init__(self, raw, first_frame):
        self.segments = []
        if first_frame is None:
            self.data = raw
            self.segments.append((0, 0, len(raw)))
            return
        data = bytearray()
        at = first_frame
        while at + 4 <= len(raw):
            (word,) = struct.unpack_from("<I", raw, at)
            tag, length = word >> 24, word & 0xFFFFFF
            if tag == 7:
                self.segments.append((at + 4, len(data), length))
                data += raw[at + 4 : at + 4 + length]
            at += 4 + length
        self.data = bytes(data)

    def at(self, raw_offset):
        for raw, data, length in self.segments:
            if raw <= raw_offset < raw + length:
                return data + raw_offset - raw
        raise ValueError(f"raw offset {raw_offset} is not inside a data frame")


class Capture:
    def __init__(self, name):
        self.name = name
        text = (CAPTURES / f"{name}.decoded.txt").read_text()
        first = text.splitlines()[0]
        self.protocol = int(re.search(r"protocol (\d+)", first).group(1))
        self.args = re.findall(r"'([^']*)'", first)
        frames = {}
        for direction in ("c2s", "s2c"):
            m = re.search(rf"^{direction} mux frames: @(\d+)", text, re.M)
            frames[direction] = int(m.group(1)) if m else None
        c2s = Stream((CAPTURES / f"{name}-c2s.bin").read_bytes(), frames["c2s"])
        s2c = Stream((CAPTURES / f"{name}-s2c.bin").read_bytes(), frames["s2c"])
        # The sender's stream (file list, echoed heads, tokens) and the generator's (sum
        # heads): client to server for a push, the other way for a pull.
        if "--sender" in self.args:
            self.sender, self.generator = s2c, c2s
        else:
            self.sender, self.generator = c2s, s2c
        section = None
        self.flist_start = None
        self.sender_heads = []  # (raw offset of the echoed head, raw offset of the checksum)
        self.generator_heads = []  # (raw offset, count, s2length)
        self.sender_ndx = None
        self.generator_ndx = None
        for line in text.splitlines():
            if line.startswith("-- "):
                section = line
                continue
            m = re.match(r"\s*@(\d+): (.*)", line)
            if not m:
                continue
            at, what = int(m.group(1)), m.group(2)
            if section.startswith("-- file list") and what.startswith("#0 ") and self.flist_start is None:
                self.flist_start = at
            elif section.startswith("-- sender"):
                if what.startswith("sum head"):
                    self.sender_heads.append([at, None])
                elif what.startswith("whole-file checksum") and self.sender_heads:
                    self.sender_heads[-1][1] = at
                elif what.startswith("ndx") and self.sender_ndx is None:
                    self.sender_ndx = at
            elif section.startswith("-- generator"):
                if what.startswith("sum head"):
                    h = dict(kv.split("=") for kv in what.split()[2:])
                    self.generator_heads.append((at, int(h["count"]), int(h["s2length"])))
                elif what.startswith("ndx") and self.generator_ndx is None:
                    self.generator_ndx = at

    def letters(self):
        """The short options of the server arguments and the client's -e capabilities."""
        short = "".join(a[1:] for a in self.args if a.startswith("-") and not a.startswith("--"))
        flags, _, info = short.partition("e.")
        return flags, info

    def compression(self):
        args = " ".join(self.args)
        for name, index in (("zstd", 3), ("lz4", 4), ("zlibx", 2), ("zlib", 1)):
            if f"--compress-choice={name}" in args:
                return index
        if "--new-compress" in args:
            return 2
        if "--old-compress" in args:
            return 1
        flags, _ = self.letters()
        # A plain -z with 3.5.0 on both sides negotiates zstd.
        return 3 if "z" in flags else 0


def write(target, name, data):
    out = CORPUS / target
    out.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1(data).hexdigest()[:12]
    (out / f"{name}-{digest}").write_bytes(data)


def flist_seeds(c):
    if c.flist_start is None:
        return
    flags, info = c.letters()
    p = c.protocol
    varint = "v" in info
    inc = p >= 30 and "i" in info and "r" in flags
    b1 = (
        varint
        | inc << 1
        | ("o" in flags) << 2
        | ("g" in flags) << 3
        | ("l" in flags) << 4
        | ("D" in flags) << 5
        | ("D" in flags) << 6
        | ("H" in flags) << 7
    )
    b2 = (
        ("U" in flags)
        | ("N" in flags) << 1
        | ("R" in flags) << 2
        | ("u" in info) << 3
        | (p >= 31 or "f" in info) << 4
    )
    head = bytes([p - 27, b1, b2, 0])
    stream = c.sender.data[c.sender.at(c.flist_start) :]
    write("flist", c.name, head + stream[:8192])


def sum_head_seeds(c):
    p = c.protocol
    for at, count, s2 in c.generator_heads:
        pos = c.generator.at(at)
        n = 16 + count * (4 + s2)
        write("sum_head", f"{c.name}-gen{at}", bytes([p - 20, 0]) + c.generator.data[pos : pos + n])
    for at, _ in c.sender_heads[:2]:
        pos = c.sender.at(at)
        write("sum_head", f"{c.name}-echo{at}", bytes([p - 20, 0]) + c.sender.data[pos : pos + 64])


def token_seeds(c):
    p = c.protocol
    if p < 29 or not c.sender_heads:
        return
    blength = {0: 0, 700: 2, 1024: 3}
    # The block length the generator chose for the first file with blocks, if any.
    bl = 0
    for at, _, _ in c.generator_heads:
        pos = c.generator.at(at)
        (_, length) = struct.unpack_from("<ii", c.generator.data, pos)
        if length:
            bl = length
            break
    config = bytes([c.compression() + 5 * (p - 29), blength.get(bl, 2), 7, 0])
    files = bytearray()
    for head, checksum in c.sender_heads:
        if checksum is None:
            continue
        start = c.sender.at(head) + 16
        end = c.sender.at(checksum) + 16
        files += c.sender.data[start:end]
    if files:
        write("token", c.name, config + bytes(files[:65536]))


def ndx_seeds(c):
    p = c.protocol
    if c.sender_ndx is not None:
        write("ndx", f"{c.name}-sender", bytes([p - 27]) + c.sender.data[c.sender.at(c.sender_ndx) :][:4096])
    if c.generator_ndx is not None:
        write("ndx", f"{c.name}-generator", bytes([p - 27]) + c.generator.data[c.generator.at(c.generator_ndx) :][:4096])


def filter_seeds():
    for label, p, hexed in FILTER_LISTS:
        write("filter_list", label, bytes([p - 26, 3]) + bytes.fromhex(hexed))
    write("filter_list", "empty-p32", bytes([6, 3, 0, 0, 0, 0]))


def main():
    names = sorted(p.name[: -len(".decoded.txt")] for p in CAPTURES.glob("b-*.decoded.txt"))
    for name in names:
        c = Capture(name)
        flist_seeds(c)
        sum_head_seeds(c)
        token_seeds(c)
        ndx_seeds(c)
    filter_seeds()
    for target in sorted(CORPUS.iterdir()):
        print(f"{target.name}: {len(list(target.iterdir()))} seeds")


if __name__ == "__main__":
    main()
