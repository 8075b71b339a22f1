"""The layout-independent parts of `mtl data check`; each dataset layout finds its own problems.

A layout (``DatasetLayout.find_problems`` in ``mtl.datasets``) knows its folders, file names and formats,
and reports every bad file on one line that starts with the file's path. What several layouts share is
here, and none of it knows a layout or a task:

- ``CheckResult``: problems, warnings and the number of files loaded; ``print_result`` prints it.
- Index-named sample folders (``<folder>/<modality>/<i><ext>``, as MiniScapes and the MTAN-style ``.npy``
  copies store them): only ``<i>`` in ASCII digits without leading zeros is a sample (``03.jpg``, ``٣.jpg``
  are aliases, reported by name); indices must run 0..N-1; stray files and folders are named
  (``scan_indexed_group``); ``count_indexed_files`` is the reader's strict count of such a folder.
- Sniffing an image's real format behind its extension (a PNG named ``.jpg``), and the dataset-wide image
  size: every image must have the size most of the dataset has (``size_problems``).

A *warning* (e.g. a depth map without a single valid pixel) is well-formed data worth a look; it does not
change the exit code.
"""

from __future__ import annotations

import re
import sys
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image
from tqdm import tqdm

from mtl.data.formats import DataFormatError

# What PIL must recognise behind each image extension. MPO is the multi-picture JPEG of some cameras: a JPEG.
IMAGE_FORMATS = {".jpg": ("JPEG", "MPO"), ".png": ("PNG",)}
SIXTEEN_BIT_MODES = ("I;16", "I;16B", "I;16L", "I;16N", "I")  # PIL's modes for a 16-bit grayscale PNG


@dataclass
class CheckResult:
    """Problems and warnings (one line each, starting with the path), the number of files loaded, and notes on
    what was found where a layout reads one of several forms (e.g. which copy's label folder)."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    files_checked: int = 0
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------ index-named sample folders
def sample_name_hint(ext: str) -> str:
    return f"not a sample name (expected <i>{ext} with i = 0, 1, 2, ... in ASCII digits without leading zeros)"


def _index_pattern(ext: str) -> re.Pattern[str]:
    return re.compile(rf"(0|[1-9][0-9]*){re.escape(ext)}")


def count_indexed_files(folder: Path, ext: str) -> int:
    """Number of samples in a folder of ``<i><ext>`` files (indices must run 0..N-1).

    A file with the extension (any case) whose name still reads as a number (``03.jpg``, ``+3.jpg``, ``٣.jpg``:
    ``int()`` accepts them all) is an error naming the file rather than a silent alias of a sample; other files
    (``notes.txt``, ``cover.jpg``) are ignored here (`mtl data check` reports them). A gap names the first
    missing file. Errors are ``DataFormatError`` with one line starting with the path.
    """
    folder = Path(folder)
    indices: list[int] = []
    aliases: list[str] = []
    n = len(ext)
    for name in sorted(p.name for p in folder.iterdir()):
        stem, suffix = name[:-n], name[-n:]
        if suffix.lower() != ext.lower():
            continue
        if suffix == ext and stem.isascii() and stem.isdigit() and (stem == "0" or stem[0] != "0"):
            indices.append(int(stem))
            continue
        try:
            int(stem)
        except ValueError:
            if not stem.isdigit():
                continue  # not meant as a sample
        aliases.append(name)
    message = None
    if aliases:
        message = f"{folder / aliases[0]}: {sample_name_hint(ext)}"
        if len(aliases) > 1:
            message += f"; also {', '.join(aliases[1:6])}{f' and {len(aliases) - 6} more' if len(aliases) > 6 else ''}"
    else:
        indices.sort()
        if indices != list(range(len(indices))):
            present = set(indices)  # some index >= N exists, so one below N is missing
            missing = [i for i in range(len(indices)) if i not in present][:5]
            more = indices[-1] + 1 - len(indices) - len(missing)
            message = (
                f"{folder / f'{missing[0]}{ext}'}: missing file (indices must run 0..N-1; found {len(indices)} "
                f"files up to {indices[-1]}{ext}, missing {missing}{f' and {more} more' if more > 0 else ''})"
            )
    if message is not None:
        # A name with undecodable bytes (a surrogate escape) would make printing the error fail.
        raise DataFormatError(message.encode("utf-8", "backslashreplace").decode("utf-8"))
    return len(indices)


@dataclass(frozen=True)
class IndexedGroup:
    """One folder of samples: ``<folder>/<modality>/<i><ext>``.

    ``extensions`` maps every modality folder the group may hold to its file extension; ``required`` must be
    there, ``optional`` may be. ``expected_count``: the number of indices the group must have (None: its own
    highest index decides); an index beyond it is named as having no ``<counterpart>/<i><counterpart_ext>``.
    """

    folder: Path
    extensions: Mapping[str, str]
    required: tuple[str, ...]
    optional: tuple[str, ...] = ()
    expected_count: int | None = None
    counterpart: Path | None = None
    counterpart_ext: str = ""


def scan_indexed_group(group: IndexedGroup, problems: list[str], files: list[tuple[Path, str]]) -> int:
    """Check the structure of one group, queue its sample files as (path, modality) in modality order, and
    return its number of indices."""
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
        ext = group.extensions[modality]
        pattern = _index_pattern(ext)
        indices[modality] = set()
        for entry in sorted((group.folder / modality).iterdir()):
            match = pattern.fullmatch(entry.name)
            if not entry.is_file():
                kind = "folder" if entry.is_dir() else "entry, not a regular file"
                problems.append(f"{entry}: stray {kind} (expected only <i>{ext} files)")
            elif match:
                indices[modality].add(int(match.group(1)))
            else:
                problems.append(f"{entry}: {sample_name_hint(ext)}")
    found = max((max(s) + 1 for s in indices.values() if s), default=0)
    count = found if group.expected_count is None else group.expected_count
    for modality in present:
        ext = group.extensions[modality]
        for i in range(max(count, found)):
            path = group.folder / modality / f"{i}{ext}"
            if i >= count:
                if i in indices[modality]:
                    problems.append(f"{path}: no matching {group.counterpart / f'{i}{group.counterpart_ext}'}")
            elif i not in indices[modality]:
                problems.append(f"{path}: missing file")
            else:
                files.append((path, modality))
    return count


# ----------------------------------------------------------------------------------------- file contents
def image_header(path: Path) -> tuple[str | None, str | None]:
    """(format, mode) as PIL reads them from the header, or (None, None) if PIL cannot identify the file."""
    try:
        with Image.open(path) as image:  # reads the header only
            return image.format, image.mode
    except Exception:  # unidentified or unreadable: the format's reader names the cause
        return None, None


def content_problem(path: Path, real_format: str | None) -> str | None:
    """A file whose content is another image format than its extension says (a PNG named .jpg)."""
    expected = IMAGE_FORMATS.get(path.suffix)
    if expected is not None and real_format is not None and real_format not in expected:
        return f"{path}: content is {real_format}, but the {path.suffix} extension requires {expected[0]}"
    return None


FileCheck = Callable[[Path, str], tuple[str | None, str | None, tuple[int, int] | None]]


def check_files(
    files: Sequence[tuple[Path, str]], check_one: FileCheck, result: CheckResult, progress: bool = True
) -> list[tuple[Path, tuple[int, int]]]:
    """Run ``check_one(path, kind) -> (problem, warning, (width, height) or None)`` on every queued file,
    adding to ``result``; returns the sizes of the files that loaded."""
    sizes: list[tuple[Path, tuple[int, int]]] = []
    for path, kind in tqdm(files, desc="checking", unit="file", file=sys.stderr, delay=2.0, disable=not progress):
        problem, warning, size = check_one(path, kind)
        if problem is not None:
            result.problems.append(problem)
        if warning is not None:
            result.warnings.append(warning)
        if size is not None:
            sizes.append((path, size))
    result.files_checked += len(files)
    return sizes


def size_problems(sizes: Iterable[tuple[Path, tuple[int, int]]], what: str = "the dataset's images") -> list[str]:
    """Every file whose (width, height) differs from the most common one."""
    sizes = list(sizes)
    if not sizes:
        return []
    common = Counter(size for _, size in sizes).most_common(1)[0][0]
    return [f"{path}: size {w}x{h}, but {what} are {common[0]}x{common[1]}" for path, (w, h) in sizes if (w, h) != common]


# ------------------------------------------------------------------------------------------------ output
def _print(line: str) -> None:
    """Print a line even when a file name cannot be encoded for the terminal (e.g. undecodable bytes)."""
    encoding = getattr(sys.stdout, "encoding", None) or "utf-8"
    print(line.encode(encoding, "backslashreplace").decode(encoding, "replace"))


def print_result(root: str | Path, result: CheckResult) -> int:
    """Print every problem, then every warning, then a summary; 1 if there is a problem, else 0
    (warnings alone leave the exit code 0)."""
    for line in result.notes + result.problems + result.warnings:
        _print(line)
    warned = f", {len(result.warnings)} warning(s)" if result.warnings else ""
    if result.problems:
        _print(f"{root}: {len(result.problems)} problem(s) found, {result.files_checked} files checked{warned}")
        return 1
    _print(f"{root}: OK, {result.files_checked} files checked, no problem found{warned}")
    return 0
