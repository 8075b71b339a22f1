"""`mtl data check`: load every file of a MiniScapes-layout dataset and report each bad one by its path.

Checked: missing modality folders and files (including index gaps), stray files and folders, names
that are not sample names (``03.jpg``, ``٣.jpg``: only ``<i>`` in ASCII digits without leading zeros is
a sample), content that does not match the extension (a PNG or GIF named ``.jpg``, a JPEG named
``.png``), files that do not decode (truncated/corrupt), wrong modes (16-bit depth included), semseg
values outside 0..18/255, and image sizes: every image must have the size most of the dataset has,
which also catches a modality that differs from its RGB. ``test_gt/`` (the grader's ground truth of the
test split) is checked against ``test/rgb``.

A depth map without a single valid pixel (all 0) is a *warning*, not a problem: it is well-formed, the
depth loss and metrics skip images without valid pixels, and such frames can be legitimate; but a
dataset of them has no depth to learn, so each one is listed. Warnings do not change the exit code.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from mtl.data.formats import DataFormatError, read_depth, read_rgb, read_semseg
from mtl.data.miniscapes import MODALITY_EXT, SPLITS

READERS = {"rgb": read_rgb, "semseg": read_semseg, "depth": read_depth}
# What PIL must recognise behind each extension. MPO is the multi-picture JPEG of some cameras: a JPEG.
FORMATS = {".jpg": ("JPEG", "MPO"), ".png": ("PNG",)}
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # PIL's modes for a 16-bit grayscale PNG


@dataclass(frozen=True)
class _Group:
    """One folder of samples: the modalities it must have, those it may have, and the index count it
    must match (None: its own highest index decides)."""

    folder: Path
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    expected_count: int | None = None
    counterpart: Path | None = None  # where an index beyond expected_count should have had its image


def _file_pattern(modality: str) -> re.Pattern[str]:
    return re.compile(rf"(0|[1-9][0-9]*){re.escape(MODALITY_EXT[modality])}")


def _scan_group(group: _Group, problems: list[str], files: list[tuple[Path, str]]) -> int:
    """Check the layout of one group, queue its files for loading, and return its number of indices."""
    allowed = group.required + group.optional
    present = [m for m in allowed if (group.folder / m).is_dir()]
    problems += [f"{group.folder / m}: missing folder" for m in group.required if m not in present]
    problems += [
        f"{entry}: stray {'folder' if entry.is_dir() else 'file'} (expected only {', '.join(allowed)})"
        for entry in sorted(group.folder.iterdir())
        if entry.name not in present
    ]
    indices: dict[str, set[int]] = {}
    for modality in present:
        pattern = _file_pattern(modality)
        ext = MODALITY_EXT[modality]
        indices[modality] = set()
        for entry in sorted((group.folder / modality).iterdir()):
            match = pattern.fullmatch(entry.name)
            if not entry.is_file():
                kind = "folder" if entry.is_dir() else "entry, not a regular file"
                problems.append(f"{entry}: stray {kind} (expected only <i>{ext} files)")
            elif match:
                indices[modality].add(int(match.group(1)))
            else:
                problems.append(
                    f"{entry}: not a sample name (expected <i>{ext} with i = 0, 1, 2, ... in ASCII digits "
                    "without leading zeros)"
                )
    found = max((max(s) + 1 for s in indices.values() if s), default=0)
    count = found if group.expected_count is None else group.expected_count
    for modality in present:
        ext = MODALITY_EXT[modality]
        for i in range(max(count, found)):
            path = group.folder / modality / f"{i}{ext}"
            if i >= count:
                if i in indices[modality]:
                    problems.append(f"{path}: no matching {group.counterpart / f'{i}.jpg'}")
            elif i not in indices[modality]:
                problems.append(f"{path}: missing file")
            else:
                files.append((path, modality))
    return count


def _check_file(path: Path, modality: str) -> tuple[str | None, str | None, tuple[int, int] | None]:
    """(problem, warning, (width, height)) of one file; the size is None when the file is not usable."""
    try:
        with Image.open(path) as image:  # reads the header only
            real_format, mode = image.format, image.mode
    except Exception:  # unidentified or unreadable: the reader below names the cause
        real_format = mode = None
    expected = FORMATS[path.suffix]
    if real_format is not None and real_format not in expected:
        return f"{path}: content is {real_format}, but the {path.suffix} extension requires {expected[0]}", None, None
    if modality == "depth" and mode in SIXTEEN_BIT_MODES:
        return f"{path}: depth image is 16-bit (mode {mode!r}), expected 8-bit disparity codes (mode 'L')", None, None
    try:
        array = READERS[modality](path)
    except DataFormatError as exc:
        return str(exc), None, None
    warning = None
    if modality == "depth" and not np.isfinite(array).any():
        warning = f"{path}: warning: no valid depth pixel (every value is 0 = invalid)"
    return None, warning, (array.shape[1], array.shape[0])


@dataclass
class CheckResult:
    """Problems and warnings (one line each, starting with the path) and the number of files loaded."""

    problems: list[str]
    warnings: list[str]
    files_checked: int


def find_problems(root: str | Path, progress: bool = True) -> CheckResult:
    """Everything wrong with the dataset at ``root``."""
    root = Path(root)
    if not root.is_dir():
        return CheckResult([f"{root}: dataset root not found"], [], 0)
    if not any((root / name).is_dir() for name in (*SPLITS, "test_gt")):
        return CheckResult([f"{root}: no {', '.join(SPLITS)} or test_gt folder"], [], 0)
    problems: list[str] = []
    warnings: list[str] = []
    files: list[tuple[Path, str]] = []
    test_count = None
    for split in SPLITS:
        if (root / split).is_dir():
            if split == "test":  # the official test split ships RGB only
                group = _Group(root / split, ("rgb",), ("semseg", "depth"))
            else:
                group = _Group(root / split, ("rgb", "semseg", "depth"))
            count = _scan_group(group, problems, files)
            if split == "test":
                test_count = count
    if (root / "test_gt").is_dir():
        test_gt = _Group(root / "test_gt", ("semseg", "depth"), (), test_count, root / "test" / "rgb")
        _scan_group(test_gt, problems, files)

    sizes: list[tuple[Path, tuple[int, int]]] = []
    for path, modality in tqdm(files, desc="checking", unit="file", file=sys.stderr, delay=2.0, disable=not progress):
        problem, warning, size = _check_file(path, modality)
        if problem is not None:
            problems.append(problem)
        if warning is not None:
            warnings.append(warning)
        if size is not None:
            sizes.append((path, size))
    if sizes:
        common = Counter(size for _, size in sizes).most_common(1)[0][0]
        problems += [
            f"{path}: size {w}x{h}, but the dataset's images are {common[0]}x{common[1]}"
            for path, (w, h) in sizes
            if (w, h) != common
        ]
    return CheckResult(problems, warnings, len(files))


def _print(line: str) -> None:
    """Print a line even when a file name cannot be encoded for the terminal (e.g. undecodable bytes)."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    print(line.encode(encoding, "backslashreplace").decode(encoding, "replace"))


def run_check(root: str | Path) -> int:
    """Print every problem, then every warning, then a summary; 1 if there is a problem, else 0
    (warnings alone leave the exit code 0)."""
    result = find_problems(root)
    for line in result.problems + result.warnings:
        _print(line)
    warned = f", {len(result.warnings)} warning(s)" if result.warnings else ""
    if result.problems:
        _print(f"{root}: {len(result.problems)} problem(s) found, {result.files_checked} files checked{warned}")
        return 1
    _print(f"{root}: OK, {result.files_checked} files checked, no problem found{warned}")
    return 0
