#!/usr/bin/env python3
"""Feed the grader hostile zip archives built from one valid small submission, and count the outcomes.

    python scripts/fuzz_grader.py --cases 1000 --seed 0

Each case is either scored or rejected: a score must equal the valid submission's score (every
hostile case carries the same predictions, so any other number would be a silently wrong one), a
rejection must be a SubmissionError / DataFormatError whose message is one line naming the archive.
Anything else (another exception type, a multi-line message, a different score) is counted as
"other" and printed with its traceback; the exit status is 1 when there is any.

The cases: hand-made families first (hostile names, every compression method zipfile knows and
unknown method numbers, flag bits such as encryption, corrupt local and central headers, "version
needed" out of range, truncations, declared-size lies and bombs, hostile PNGs), then seeded random
byte mutations of the valid archive (biased towards the headers). ``tests/test_grader_fuzz.py``
imports this file, so the generator lives only here.
"""

from __future__ import annotations

import argparse
import bz2
import io
import json
import random
import re
import stat
import struct
import sys
import tempfile
import time
import traceback
import warnings
import zipfile
import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from mtl.data.formats import DataFormatError, write_depth, write_semseg
from mtl.grading.grader import grade_submission
from mtl.grading.safezip import MiB, SubmissionError

WIDTH, HEIGHT, N_IMAGES = 8, 4, 2
# Small limits so that a bomb is cheap to build and to reject; a real bomb is a few times the limits.
MAX_ENTRY_BYTES = 1 * MiB
MAX_TOTAL_BYTES = 8 * MiB
BOMB_BYTES = 32 * MiB
KNOWN_METHODS = (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA)
UNKNOWN_METHODS = (1, 2, 5, 6, 7, 9, 10, 11, 18, 19, 20, 93, 95, 96, 97, 98, 99, 255, 65535)
SEMSEG0 = "predictions/semseg/0.png"
DEPTH1 = "predictions/depth/1.png"


# ------------------------------------------------------------------------------------ the valid submission
def make_fixture(root: Path) -> tuple[Path, dict[str, bytes]]:
    """Ground truth under ``root/gt`` and the entries of a valid submission for it (not a perfect one)."""
    rng = np.random.default_rng(0)
    gt, pred = root / "gt", root / "pred"
    for folder in (gt / "semseg", gt / "depth", pred):
        folder.mkdir(parents=True, exist_ok=True)
    entries: dict[str, bytes] = {"predictions/": b"", "predictions/semseg/": b"", "predictions/depth/": b""}
    for i in range(N_IMAGES):
        ids = rng.integers(0, 19, (HEIGHT, WIDTH)).astype(np.uint8)
        ids[0, 0] = 255
        depth = np.exp(rng.uniform(np.log(5.0), np.log(250.0), (HEIGHT, WIDTH)))
        depth[0, :2] = np.nan
        write_semseg(gt / "semseg" / f"{i}.png", ids)
        write_depth(gt / "depth" / f"{i}.png", depth, "invalidate")
        guess = np.where(rng.random(ids.shape) < 0.3, rng.integers(0, 19, ids.shape), ids)
        write_semseg(pred / f"s{i}.png", np.where(guess == 255, 3, guess))  # a prediction may not hold 255
        write_depth(pred / f"d{i}.png", np.nan_to_num(depth, nan=40.0) * rng.uniform(0.8, 1.25, ids.shape), "clamp")
        entries[f"predictions/semseg/{i}.png"] = (pred / f"s{i}.png").read_bytes()
        entries[f"predictions/depth/{i}.png"] = (pred / f"d{i}.png").read_bytes()
    entries["metrics.csv"] = b"epoch,metrics_summary/grader\n0,12.5\n"
    entries["checkpoints/best.ckpt"] = bytes(range(256)) * 4
    return gt, entries


# ------------------------------------------------------------------------------- a zip writer without rules
@dataclass
class Raw:
    """One entry as bytes on disk: every field is set by hand, nothing is checked or derived."""

    name: bytes
    payload: bytes  # the stored (compressed) bytes
    method: int
    crc: int
    csize: int
    usize: int
    flags: int = 0
    version: int = 20
    made_by: int = (3 << 8) | 20  # Unix, 2.0
    external: int = (stat.S_IFREG | 0o644) << 16
    extra: bytes = b""
    comment: bytes = b""
    offset: int | None = None  # central record's local-header offset; None: where the header is written
    local: dict[str, Any] = field(default_factory=dict)  # local-header fields that differ from the central record


def compress(data: bytes, method: int) -> bytes:
    """``data`` as zipfile stores it with ``method`` (LZMA: zipfile's 4-byte header + properties + raw stream)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as zf:
        zf.writestr("x", data)
    archive = buffer.getvalue()
    info = zipfile.ZipFile(io.BytesIO(archive)).getinfo("x")
    n, e = struct.unpack("<HH", archive[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + n + e
    return archive[start : start + info.compress_size]


def raw(name: str | bytes, data: bytes, method: int = zipfile.ZIP_DEFLATED, **fields: Any) -> Raw:
    name_bytes = name.encode() if isinstance(name, str) else name
    payload = compress(data, method) if data else b""
    is_dir = name_bytes.endswith(b"/")
    external = ((stat.S_IFDIR | 0o755) << 16) | 0x10 if is_dir else (stat.S_IFREG | 0o644) << 16
    version = {zipfile.ZIP_BZIP2: 46, zipfile.ZIP_LZMA: 63}.get(method, 20)
    entry = Raw(name_bytes, payload, method, zlib.crc32(data), len(payload), len(data), version=version,
                external=external)
    return replace(entry, **fields)


def build(entries: list[Raw], *, prefix: bytes = b"", suffix: bytes = b"", comment: bytes = b"",
          eocd: dict[str, int] | None = None) -> bytes:
    """Local headers + data, central directory, end record; ``eocd`` overrides end-record fields."""
    out = bytearray(prefix)
    offsets = []
    for e in entries:
        offsets.append(len(out))
        lf = {"version": e.version, "flags": e.flags, "method": e.method, "crc": e.crc, "csize": e.csize,
              "usize": e.usize, "name": e.name, "extra": b"", **e.local}
        out += struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", lf["version"], lf["flags"], lf["method"], 0, 0x21,
                           lf["crc"], lf["csize"], lf["usize"], lf.get("name_len", len(lf["name"])) & 0xFFFF,
                           lf.get("extra_len", len(lf["extra"])) & 0xFFFF)
        out += lf["name"] + lf["extra"] + e.payload
    cd_start = len(out)
    for e, offset in zip(entries, offsets):
        out += struct.pack("<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", e.made_by, e.version, e.flags, e.method, 0, 0x21,
                           e.crc, e.csize, e.usize, len(e.name), len(e.extra), len(e.comment), 0, 0, e.external,
                           (offset if e.offset is None else e.offset) & 0xFFFFFFFF)
        out += e.name + e.extra + e.comment
    end = {"disk": 0, "cd_disk": 0, "disk_entries": len(entries), "entries": len(entries),
           "cd_size": len(out) - cd_start, "cd_offset": cd_start,
           "comment_len": len(comment), **(eocd or {})}
    out += struct.pack("<4sHHHHIIH", b"PK\x05\x06", end["disk"], end["cd_disk"], end["disk_entries"] & 0xFFFF,
                       end["entries"] & 0xFFFF, end["cd_size"] & 0xFFFFFFFF, end["cd_offset"] & 0xFFFFFFFF,
                       end["comment_len"] & 0xFFFF)
    return bytes(out + comment + suffix)


def header_spans(archive: bytes) -> list[tuple[int, int]]:
    """Byte ranges of the local headers, central records and end record (where mutations matter most)."""
    spans = []
    for signature, fixed, lengths in ((b"PK\x03\x04", 30, (26, 28)), (b"PK\x01\x02", 46, (28, 30, 32)),
                                      (b"PK\x05\x06", 22, (20,))):
        pos = archive.find(signature)
        while pos >= 0:
            size = fixed
            if pos + fixed <= len(archive):
                size += sum(struct.unpack("<H", archive[pos + o : pos + o + 2])[0] for o in lengths)
            spans.append((pos, min(len(archive), pos + size)))
            pos = archive.find(signature, pos + 4)
    return spans


# --------------------------------------------------------------------------------------------- the cases
@dataclass(frozen=True)
class Case:
    label: str
    data: bytes
    expect: str = "either"  # "scored", "rejected" or "either" (random mutations)


def _png(array: np.ndarray, mode: str, **save: Any) -> bytes:
    image = Image.fromarray(array.astype(np.uint8), mode="L")
    if mode == "P":
        image.putpalette([0] * 768)
    elif mode != "L":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format=save.pop("format", "PNG"), **save)
    return buffer.getvalue()


def _png_with_header(width: int, height: int, bit_depth: int = 8, colour: int = 0) -> bytes:
    """A PNG signature and IHDR declaring any size, then an empty IDAT and IEND."""
    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", width, height, bit_depth, colour, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b"")


def _bomb(size: int) -> bytes:
    """``size`` zero bytes, deflated: about a thousandth of the size."""
    return compress(bytes(size), zipfile.ZIP_DEFLATED)


def crafted_cases(entries: dict[str, bytes]) -> Iterator[Case]:
    """The hand-made families, in a fixed order."""
    def base(method: int = zipfile.ZIP_DEFLATED) -> list[Raw]:
        return [raw(name, data, method if data else zipfile.ZIP_STORED) for name, data in entries.items()]

    def edit(target: str, **fields: Any) -> list[Raw]:
        return [replace(e, **fields) if e.name == target.encode() else e for e in base()]

    def with_entry(*extra: Raw) -> list[Raw]:
        return [*base(), *extra]

    # valid archives: every method zipfile knows, junk before and after, and odd but harmless metadata
    for method in KNOWN_METHODS:
        yield Case(f"valid/{zipfile.compressor_names[method]}", build(base(method)), "scored")
    yield Case("valid/prefix-junk (self-extractor stub)", build(base(), prefix=b"MZ" + bytes(500)), "scored")
    yield Case("valid/trailing-junk", build(base(), suffix=b"\x00" * 100), "scored")
    yield Case("valid/comment", build(base(), comment=b"a comment\n\x00"), "scored")
    yield Case("valid/device-and-fifo-modes on ignored entries",
               build([*base(), raw("notes/fifo", b"x", external=(stat.S_IFIFO | 0o644) << 16),
                      raw("notes/dev", b"x", external=(stat.S_IFCHR | 0o644) << 16)]), "scored")
    yield Case("valid/data-descriptor flag", build(edit(SEMSEG0, flags=0x08)), "either")

    # hostile names, as an extra entry or instead of a prediction
    hostile_names: list[bytes] = [
        b"../evil.png", b"predictions/../../evil.png", b"/etc/passwd", b"//server/share", b"C:/evil.png",
        b"c:evil.png", b"..\\evil.png", b"predictions\\semseg\\0.png", b"a\x00b",
        b"predictions/semseg/0.png\x00.txt", b"..", b"./../x", b"predictions/./../../x", b"", b"/", b"x" * 65535,
        b"predictions/" + b"y" * 65000,
        *(name.encode() for name in (
            "predictions/semseg/٠.png", "predictions/semseg/０.png", "predictions/semseg/0.png\u2028",
            "predictions/semseg/\u202egnp.0", "prédictions/😀.png", "predictions/depth/1.png\n",
            "Predictions/semseg/0.png", "predictions/semseg/00.png", "predictions/semseg/-1.png",
            "predictions/semseg/+1.png", "predictions/semseg/1e0.png", "predictions/semseg/ 0.png",
        )),
    ]
    for name in hostile_names:
        utf8 = 0x800 if any(b > 127 for b in name) else 0
        # Outside predictions/ a harmless name is ignored (scored); an unsafe one is rejected wherever it is.
        unsafe = (not name or b"\x00" in name or b"\\" in name or name.startswith(b"/") or re.match(rb"[A-Za-z]:", name)
                  or b".." in name.split(b"/"))
        expect = "rejected" if unsafe or name.startswith(b"predictions/") else "scored"
        yield Case(f"name/extra {name[:40]!r}", build(with_entry(raw(name, b"x", flags=utf8))), expect)
        yield Case(f"name/instead-of-prediction {name[:40]!r}", build(edit(SEMSEG0, name=name, flags=utf8)),
                   "rejected")
    yield Case("name/invalid-utf8 with the utf-8 flag",
               build(with_entry(raw(b"notes/\xff\xfe.txt", b"x", flags=0x800))), "rejected")
    yield Case("name/cp437 without the utf-8 flag", build(with_entry(raw(b"notes/\x82\xe9.txt", b"x"))), "scored")
    yield Case("name/local header differs", build(edit(SEMSEG0, local={"name": b"predictions/semseg/1.png"})),
               "rejected")
    yield Case("name/local header name length lies", build(edit(SEMSEG0, local={"name_len": 3})), "rejected")
    yield Case("name/local header extra length lies", build(edit(SEMSEG0, local={"extra_len": 60000})), "rejected")

    # duplicates, directories, links
    for data, what in ((entries[SEMSEG0], "same data"), (entries["predictions/semseg/1.png"], "other data")):
        yield Case(f"dup/same name twice, {what}", build(with_entry(raw(SEMSEG0, data))), "rejected")
    yield Case("dup/directory twice", build(with_entry(raw("predictions/", b""))), "rejected")
    yield Case("dir/prediction as a folder", build(edit(SEMSEG0, name=SEMSEG0.encode() + b"/")), "rejected")
    yield Case("dir/folder entry with data", build(with_entry(raw("notes/", b"data in a folder"))), "scored")
    yield Case("dir/file with folder mode bits",
               build(edit(SEMSEG0, external=(stat.S_IFDIR | 0o755) << 16 | 0x10)), "scored")
    link = (stat.S_IFLNK | 0o777) << 16
    for target in (b"/etc/passwd", b"../../x", b"predictions/semseg/1.png"):
        linked = with_entry(raw("predictions/link", target, external=link))
        yield Case(f"link/extra symlink -> {target!r}", build(linked), "rejected")
    yield Case("link/prediction with symlink mode bits", build(edit(SEMSEG0, external=link)), "rejected")
    yield Case("link/symlink bits from a non-Unix system",
               build(with_entry(raw("notes/l", b"x", made_by=20, external=(stat.S_IFLNK | 0o777) << 16))),
               "rejected")

    # compression methods: unknown numbers, a method that does not match the data, corrupt data per method
    for number in UNKNOWN_METHODS:
        yield Case(f"method/unknown {number} on a prediction", build(edit(SEMSEG0, method=number)), "rejected")
        yield Case(f"method/unknown {number} on an ignored entry",
                   build([replace(e, method=number) if e.name == b"metrics.csv" else e for e in base()]), "scored")
    for stored_as in KNOWN_METHODS:
        for claimed in KNOWN_METHODS:
            if claimed != stored_as:
                entries_ = [replace(e, method=claimed) if e.name == SEMSEG0.encode() else e for e in base(stored_as)]
                yield Case(f"method/{zipfile.compressor_names[stored_as]} data claimed as "
                           f"{zipfile.compressor_names[claimed]}", build(entries_), "rejected")
    rng = random.Random(1234)
    for method in KNOWN_METHODS:
        name = zipfile.compressor_names[method]
        good = base(method)
        target = next(e for e in good if e.name == SEMSEG0.encode())
        p = target.payload
        variants = {
            "flipped byte mid-data": p[: len(p) // 2] + bytes([p[len(p) // 2] ^ 0x55]) + p[len(p) // 2 + 1 :],
            "garbage of the same length": bytes(rng.randrange(256) for _ in p),
            "first half only": p[: len(p) // 2],
            "empty": b"",
            "one byte": p[:1],
            "zeros": bytes(len(p)),
        }
        if method == zipfile.ZIP_LZMA:
            variants.update({
                "bad LZMA properties": p[:4] + b"\xff" * 5 + p[9:],
                "LZMA properties length lies": p[:2] + struct.pack("<H", 200) + p[4:],
                "LZMA header only": p[:4],
                "LZMA stream cut after the properties": p[:9],
            })
        if method == zipfile.ZIP_BZIP2:
            variants["bzip2 of other data"] = bz2.compress(b"not a png" * 10)
        for what, payload in variants.items():
            lie = [replace(e, payload=payload, csize=len(payload)) if e is target else e for e in good]
            yield Case(f"data/{name} {what}", build(lie), "rejected")
            sized = [replace(e, payload=payload) if e is target else e for e in good]
            yield Case(f"data/{name} {what}, old compressed size", build(sized), "rejected")

    # flag bits
    for bit, what in ((0x1, "encrypted"), (0x40, "strong encryption"), (0x20, "patched data"), (0x41, "both")):
        yield Case(f"flags/{what} on a prediction", build(edit(SEMSEG0, flags=bit)), "rejected")
        yield Case(f"flags/{what} on an ignored entry",
                   build([replace(e, flags=bit) if e.name == b"metrics.csv" else e for e in base()]),
                   "rejected" if bit & 0x1 else "scored")
        yield Case(f"flags/{what} in the local header only", build(edit(SEMSEG0, local={"flags": bit})),
                   "either")

    # "version needed to extract": zipfile refuses above 6.3 when it opens the archive
    for version in (63, 64, 99, 255, 0x1FF, 0xFFFF):
        yield Case(f"version/needed {version} on a prediction", build(edit(SEMSEG0, version=version)),
                   "scored" if version <= zipfile.MAX_EXTRACT_VERSION else "rejected")
        yield Case(f"version/needed {version} on an ignored entry",
                   build([replace(e, version=version) if e.name == b"metrics.csv" else e for e in base()]),
                   "scored" if version <= zipfile.MAX_EXTRACT_VERSION else "rejected")
        yield Case(f"version/needed {version} in the local header only",
                   build(edit(SEMSEG0, local={"version": version})), "scored")
    yield Case("version/made-by from every system", build(
        [replace(e, made_by=(system << 8) | 99) for system, e in enumerate(base())]), "scored")

    # local headers
    good = build(base())
    local = good.rfind(b"PK\x03\x04", 0, good.find(SEMSEG0.encode()))
    yield Case("local/bad signature", good[:local] + b"PK\x03\x05" + good[local + 4 :], "rejected")
    for delta, what in ((1, "one byte late"), (-1, "one byte early"), (-30, "at the previous entry's data")):
        yield Case(f"local/offset {what}", build(_shift_offset(base(), SEMSEG0, delta)), "rejected")
    for offset, what in ((len(good) + 10, "past the end"), (0xFFFFFFFF, "at 4 GiB"), (0, "at the first entry")):
        yield Case(f"local/offset {what}", build(edit(SEMSEG0, offset=offset)), "rejected")
    for field_ in ("crc", "csize", "usize", "method"):
        yield Case(f"local/{field_} differs from the central record",
                   build(edit(SEMSEG0, local={field_: 12345})), "either")
    entries_ = base()
    target = next(i for i, e in enumerate(entries_) if e.name == SEMSEG0.encode())
    entries_.insert(target + 1, replace(entries_[target], name=b"notes/alias", offset=None))
    yield Case("local/two records for one local header (alias)", build(entries_), "either")

    # central directory and end record
    cd = len(build(base())) - 22 - sum(46 + len(e.name) for e in base())
    for what, eocd in (
        ("entry count too low", {"entries": 3, "disk_entries": 3}),
        ("entry count too high", {"entries": 500, "disk_entries": 500}),
        ("entry count zero", {"entries": 0, "disk_entries": 0}),
        ("central size too small", {"cd_size": 40}),
        ("central size too large", {"cd_size": 10**6}),
        ("central size zero", {"cd_size": 0}),
        ("central offset one byte late", {"cd_offset": cd + 1}),
        ("central offset one byte early", {"cd_offset": cd - 1}),
        ("central offset past the end", {"cd_offset": 10**7}),
        ("central offset 0xFFFFFFFF (zip64 marker)", {"cd_offset": 0xFFFFFFFF}),
        ("entry count 0xFFFF (zip64 marker)", {"entries": 0xFFFF, "disk_entries": 0xFFFF}),
        ("multi-disk", {"disk": 1, "cd_disk": 1}),
        ("comment length lies", {"comment_len": 500}),
    ):
        yield Case(f"central/{what}", build(base(), eocd=eocd), "either")
    good = build(base())
    cd_at = good.find(b"PK\x01\x02")
    yield Case("central/bad record signature", good[:cd_at] + b"PK\x01\x03" + good[cd_at + 4 :], "rejected")
    yield Case("central/no end record", good[: good.rfind(b"PK\x05\x06")], "rejected")
    yield Case("central/two end records", good + good[good.rfind(b"PK\x05\x06") :], "either")
    yield Case("central/zip64 locator of garbage",
               good[: good.rfind(b"PK\x05\x06")] + b"PK\x06\x07" + bytes(16) + good[good.rfind(b"PK\x05\x06") :],
               "either")
    for extra, what in (
        (struct.pack("<HH", 1, 8) + struct.pack("<Q", 2**63), "zip64 extra with a huge size"),
        (struct.pack("<HH", 1, 30) + bytes(8), "zip64 extra whose length lies"),
        (struct.pack("<HH", 1, 3) + bytes(3), "zip64 extra too short"),
        (struct.pack("<HH", 0x5455, 200), "extra field longer than the record"),
        (b"\x01", "one-byte extra field"),
    ):
        yield Case(f"central/{what}", build(edit(SEMSEG0, extra=extra)), "either")
        yield Case(f"central/{what}, sizes set to the zip64 marker",
                   build(edit(SEMSEG0, extra=extra, usize=0xFFFFFFFF, csize=0xFFFFFFFF)), "rejected")

    # truncations
    good = build(base())
    for cut in sorted({0, 1, 4, 21, 22, 30, len(good) - 1, len(good) - 21, len(good) - 22, len(good) - 23,
                       *range(0, len(good), max(1, len(good) // 24))}):
        yield Case(f"truncated/at {cut} of {len(good)}", good[:cut], "rejected")

    # declared-size lies and bombs
    for usize, what in ((0, "zero"), (10, "too small"), (len(entries[SEMSEG0]) + 1, "one byte too large"),
                        (MAX_ENTRY_BYTES + 1, "over the entry limit"), (0xFFFFFFFE, "4 GiB")):
        yield Case(f"size/declared {what}", build(edit(SEMSEG0, usize=usize)), "either")
        yield Case(f"size/declared {what}, local header too", build(edit(SEMSEG0, usize=usize, local={"usize": usize})),
                   "either")
    for csize, what in ((0, "zero"), (5, "too small"), (10**6, "past the end"), (0xFFFFFFFE, "4 GiB")):
        yield Case(f"size/compressed {what}", build(edit(SEMSEG0, csize=csize)), "either")
    bomb = _bomb(BOMB_BYTES)
    bomb_crc = zlib.crc32(bytes(BOMB_BYTES))
    for name in (SEMSEG0, "checkpoints/last.ckpt"):
        honest = Raw(name.encode(), bomb, zipfile.ZIP_DEFLATED, bomb_crc, len(bomb), BOMB_BYTES)
        lying = replace(honest, usize=1000)
        others = [e for e in base() if e.name != name.encode()]
        yield Case(f"bomb/{name} declares its size", build([*others, honest]), "rejected")
        yield Case(f"bomb/{name} declares 1000 bytes", build([*others, lying]),
                   "rejected" if name == SEMSEG0 else "scored")
        yield Case(f"bomb/{name} declares 1000 bytes, crc of the first 1000",
                   build([*others, replace(lying, crc=zlib.crc32(bytes(1000)))]),
                   "rejected" if name == SEMSEG0 else "scored")
    first = Raw(b"checkpoints/bomb.ckpt", bomb, zipfile.ZIP_DEFLATED, bomb_crc, len(bomb), BOMB_BYTES)
    overlapping = [replace(first, name=f"checkpoints/{i}.ckpt".encode(), payload=b"", offset=0) for i in range(64)]
    yield Case("bomb/64 records overlapping one bomb", build([first, *base(), *overlapping]), "rejected")

    # hostile PNGs inside a sound archive
    ids = np.zeros((HEIGHT, WIDTH))
    pngs = {
        "not a png": b"hello",
        "png signature only": b"\x89PNG\r\n\x1a\n",
        "truncated png": entries[SEMSEG0][: len(entries[SEMSEG0]) // 2],
        "png with a bad chunk crc": entries[SEMSEG0][:29] + b"\x00\x00\x00\x00" + entries[SEMSEG0][33:],
        "huge declared png": _png_with_header(100_000, 100_000),
        "png over PIL's warning size": _png_with_header(12_000, 12_000),  # PIL only warns (below 2× its limit)
        "png 2**31 wide": _png_with_header(2**31 - 1, 1),
        "16-bit png": _png_with_header(WIDTH, HEIGHT, 16, 0),
        "png with a bad bit depth": _png_with_header(WIDTH, HEIGHT, 3, 0),
        "png with a bad colour type": _png_with_header(WIDTH, HEIGHT, 8, 7),
        "png of the wrong size": _png(np.zeros((HEIGHT, WIDTH + 1)), "P"),
        "rgb png": _png(ids, "RGB"),
        "jpeg": _png(ids, "L", format="JPEG"),
        "gif": _png(ids, "P", format="GIF"),
        "bmp": _png(ids, "L", format="BMP"),
        "png with class 19": _png(np.full((HEIGHT, WIDTH), 19), "P"),
        "empty": b"",
    }
    for what, data in pngs.items():
        swapped = [raw(SEMSEG0, data) if e.name == SEMSEG0.encode() else e for e in base()]
        yield Case(f"png/{what} as a semseg prediction", build(swapped), "rejected")
    yield Case("png/depth code 0", build([raw(DEPTH1, _png(np.zeros((HEIGHT, WIDTH)), "L"))
                                          if e.name == DEPTH1.encode() else e for e in base()]), "rejected")


def _shift_offset(entries: list[Raw], name: str, delta: int) -> list[Raw]:
    """Point the central record of ``name`` ``delta`` bytes away from its local header."""
    offsets, position = {}, 0
    for e in entries:
        offsets[e.name] = position
        position += 30 + len(e.name) + len(e.payload)
    return [replace(e, offset=offsets[e.name] + delta) if e.name == name.encode() else e for e in entries]


def mutated(base_archives: list[bytes], rng: random.Random) -> tuple[str, bytes]:
    """One to three random edits of a valid archive, most of them inside its headers."""
    archive = bytearray(rng.choice(base_archives))
    spans = header_spans(bytes(archive))
    ops = []
    for _ in range(rng.choice((1, 1, 1, 2, 2, 3))):
        op = rng.choice(("byte", "hbyte", "hbyte", "hbyte", "field", "field", "insert", "delete", "truncate", "dup"))
        in_header = [rng.randrange(a, b) for a, b in rng.sample(spans, 1) if b > a] if spans else []
        pos = in_header[0] if op in ("hbyte", "field") and in_header else rng.randrange(max(1, len(archive)))
        if op in ("byte", "hbyte") and archive:
            archive[pos % len(archive)] = rng.randrange(256)
        elif op == "field":
            width = rng.choice((2, 4))
            value = rng.choice((0, 1, 0xFF, 0xFFFF, 0xFFFFFFFF, 0x7FFFFFFF, rng.randrange(2**32)))
            archive[pos : pos + width] = (value & (2 ** (8 * width) - 1)).to_bytes(width, "little")
        elif op == "insert":
            archive[pos:pos] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == "delete":
            del archive[pos : pos + rng.randint(1, 64)]
        elif op == "truncate":
            del archive[pos:]
        elif op == "dup" and spans:
            a, b = rng.choice(spans)
            archive[pos:pos] = archive[a:b]
        ops.append(f"{op}@{pos}")
    return ",".join(ops), bytes(archive)


def generate(entries: dict[str, bytes], n: int, seed: int = 0) -> Iterator[Case]:
    """``n`` cases: the hand-made ones first (as many as fit), then seeded random mutations."""
    count = 0
    for case in crafted_cases(entries):
        if count == n:
            return
        yield case
        count += 1
    rng = random.Random(seed)
    bases = [build([raw(k, v, m if v else 0) for k, v in entries.items()]) for m in KNOWN_METHODS]
    bases.append(_zipfile_archive(entries))
    while count < n:
        ops, data = mutated(bases, rng)
        yield Case(f"mutate/{count} {ops}", data)
        count += 1


def _zipfile_archive(entries: dict[str, bytes]) -> bytes:
    """The same submission written by zipfile itself (data descriptors and all)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buffer.getvalue()


# -------------------------------------------------------------------------------------------- the harness
@dataclass
class Outcome:
    kind: str  # scored | rejected | other
    detail: str


def grade(path: Path, gt: Path) -> dict[str, Any]:
    return grade_submission(path, gt, max_total_bytes=MAX_TOTAL_BYTES, max_entry_bytes=MAX_ENTRY_BYTES, progress=False)


def canonical(score: dict[str, Any]) -> str:
    return json.dumps(score, sort_keys=True)  # NaN (a class absent from both) compares equal as text


def run_case(case: Case, path: Path, gt: Path, baseline: str) -> Outcome:
    """Grade one case written to ``path``; anything but a baseline score or a one-line rejection is "other"."""
    path.write_bytes(case.data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a warning printed by the grader is output a user did not ask for
            score = grade(path, gt)
    except (SubmissionError, DataFormatError) as exc:
        message = str(exc)
        if len(message.splitlines()) != 1 or "\r" in message or "\n" in message:
            return Outcome("other", f"{type(exc).__name__} message is not one line: {message!r}")
        if str(path) not in message:
            return Outcome("other", f"{type(exc).__name__} message does not name the archive: {message!r}")
        if case.expect == "scored":
            return Outcome("other", f"expected a score, got a rejection: {message}")
        return Outcome("rejected", message)
    except Exception:  # noqa: BLE001 - that is what the fuzzer looks for
        return Outcome("other", traceback.format_exc())
    finally:
        path.unlink(missing_ok=True)
    if canonical(score) != baseline:
        return Outcome("other", f"a score different from the valid submission's: {canonical(score)[:300]}")
    if case.expect == "rejected":
        return Outcome("other", "expected a rejection, got a score")
    return Outcome("scored", f"grader {score['grader']:.4f}")


def fuzz(n: int, seed: int, work: Path) -> Iterator[tuple[Case, Outcome]]:
    """Build the fixture in ``work`` and yield each case with its outcome."""
    gt, entries = make_fixture(work)
    valid = work / "valid.zip"
    valid.write_bytes(_zipfile_archive(entries))
    baseline = canonical(grade(valid, gt))
    for k, case in enumerate(generate(entries, n, seed)):
        yield case, run_case(case, work / f"case-{k:05d}.zip", gt, baseline)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000, help="number of cases (hand-made ones first)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random mutations")
    parser.add_argument("--verbose", action="store_true", help="print every case and its outcome")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    counts: Counter[str] = Counter()
    families: dict[str, Counter[str]] = {}
    with tempfile.TemporaryDirectory(prefix="fuzz-grader-") as tmp:
        for case, outcome in fuzz(args.cases, args.seed, Path(tmp)):
            counts[outcome.kind] += 1
            families.setdefault(case.label.split("/")[0], Counter())[outcome.kind] += 1
            if args.verbose:
                print(f"{outcome.kind:8} {case.label}: {outcome.detail.splitlines()[-1][:200]}")
            if outcome.kind == "other":
                print(f"--- OTHER: {case.label}\n{outcome.detail}", file=sys.stderr)
    seconds = time.perf_counter() - start
    print(f"cases {sum(counts.values())}, scored {counts['scored']}, rejected {counts['rejected']}, "
          f"other exceptions {counts['other']} (seed {args.seed}, {seconds:.1f} s)")
    for family, c in families.items():
        print(f"  {family:10} " + ", ".join(f"{kind} {c[kind]}" for kind in ("scored", "rejected", "other")))
    return 1 if counts["other"] else 0


if __name__ == "__main__":
    sys.exit(main())
