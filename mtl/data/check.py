"""`mtl data check`: load every file of a MiniScapes-layout dataset and report each bad one by its path.

Checked: missing modality folders and files (including index gaps), stray files, files that do not
decode (truncated/corrupt), wrong modes, semseg values outside 0..18/255, and image sizes: every image
must have the size most of the dataset has, which also catches a modality that differs from its RGB.
``test_gt/`` (the grader's ground truth of the test split) is checked against ``test/rgb``.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from mtl.data.formats import DataFormatError, read_depth, read_rgb, read_semseg
from mtl.data.miniscapes import MODALITY_EXT, SPLITS

READERS = {"rgb": read_rgb, "semseg": read_semseg, "depth": read_depth}


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
        indices[modality] = set()
        for entry in sorted((group.folder / modality).iterdir()):
            match = pattern.fullmatch(entry.name)
            if match and entry.is_file():
                indices[modality].add(int(match.group(1)))
            else:
                problems.append(f"{entry}: stray entry (expected <i>{MODALITY_EXT[modality]}, i = 0, 1, 2, ...)")
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


def find_problems(root: str | Path, progress: bool = True) -> tuple[list[str], int]:
    """All problems of the dataset at ``root`` (one line each, starting with the path) and the number of
    files loaded."""
    root = Path(root)
    if not root.is_dir():
        return [f"{root}: dataset root not found"], 0
    if not any((root / name).is_dir() for name in (*SPLITS, "test_gt")):
        return [f"{root}: no {', '.join(SPLITS)} or test_gt folder"], 0
    problems: list[str] = []
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
        try:
            array = READERS[modality](path)
        except DataFormatError as exc:
            problems.append(str(exc))
            continue
        sizes.append((path, (array.shape[1], array.shape[0])))
    if sizes:
        common = Counter(size for _, size in sizes).most_common(1)[0][0]
        problems += [
            f"{path}: size {w}x{h}, but the dataset's images are {common[0]}x{common[1]}"
            for path, (w, h) in sizes
            if (w, h) != common
        ]
    return problems, len(files)


def run_check(root: str | Path) -> int:
    """Print every problem and a summary; 1 if anything is wrong, else 0."""
    problems, loaded = find_problems(root)
    for line in problems:
        print(line)
    if problems:
        print(f"{root}: {len(problems)} problem(s) found, {loaded} files checked")
        return 1
    print(f"{root}: OK, {loaded} files checked, no problem found")
    return 0
