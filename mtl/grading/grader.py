"""Score a submission.zip against a ground-truth folder, treating the archive as untrusted input.

Submission layout (SPEC §6): ``predictions/semseg/<i>.png`` (mode P or L trainIds 0..18) and
``predictions/depth/<i>.png`` (mode L disparity codes 1..255, clamp policy) for every index ``i`` of the
ground truth (``<gt>/semseg/<i>.png``, ``<gt>/depth/<i>.png``). Everything outside ``predictions/``
(checkpoints, source.zip, metrics.csv) and the prediction folders of other tasks (``predictions/<task>/…``,
e.g. normals: a submission packs every prediction file a run writes) is ignored: never read, never unpickled,
only its declared size counts towards the archive limit, and its name is vetted like every other (no path that
escapes, no link). The archive's layout is validated in full before any image is decoded.

Grading streams one image at a time: each prediction is read from the archive into memory, decoded,
compared with its ground truth and dropped, so memory stays flat whatever the number of images.
"""

from __future__ import annotations

import io
import re
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError
from tqdm import tqdm

from mtl.data.classes import CLASS_NAMES, NUM_CLASSES
from mtl.data.formats import DataFormatError, decode_depth, read_depth, read_semseg
from mtl.metrics.depth import DepthMetrics
from mtl.grading.safezip import GiB, MiB, SafeZip, SubmissionError, _reason, _shown
from mtl.datasets.miniscapes import COURSE_TASKS, grader_score, total_score
from mtl.metrics.semseg import SemsegMetrics

PREDICTION_MODES = {"semseg": ("P", "L"), "depth": ("L",)}
DEFAULT_MAX_TOTAL_BYTES = 2 * GiB
DEFAULT_MAX_ENTRY_BYTES = 64 * MiB

_PREDICTION_NAME = re.compile(r"predictions/(semseg|depth)/(0|[1-9][0-9]*)\.png")
_TASK_FOLDER = re.compile(r"predictions/([A-Za-z0-9_]+)/.+", re.DOTALL)  # a task's predictions (a task name is a word)


def ground_truth_indices(gt_dir: str | Path) -> list[int]:
    """Indices present in ``<gt>/semseg`` and ``<gt>/depth`` (they must agree)."""
    gt = Path(gt_dir)
    found: dict[str, set[int]] = {}
    for task in COURSE_TASKS:
        folder = gt / task
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: ground-truth folder not found (expected {gt}/{task}/<i>.png)")
        found[task] = {int(p.stem) for p in folder.glob("*.png") if p.stem.isdigit()}
    for task, other in (("semseg", "depth"), ("depth", "semseg")):
        lacking = sorted(found[other] - found[task])
        if lacking:
            raise DataFormatError(f"{gt / task / f'{lacking[0]}.png'}: missing ground-truth file ({other} has it)")
    if not found["semseg"]:
        raise DataFormatError(f"{gt}: no ground-truth images in semseg/ and depth/")
    return sorted(found["semseg"])


def _prediction_entries(archive: SafeZip, indices: list[int], gt: Path) -> dict[tuple[str, int], str]:
    """Map (task, index) → entry name, rejecting stray and missing predictions."""
    wanted = set(indices)
    entries: dict[tuple[str, int], str] = {}
    for name in archive.file_names():
        if not name.startswith("predictions/"):
            continue
        match = _PREDICTION_NAME.fullmatch(name)
        if not match:
            other = _TASK_FOLDER.fullmatch(name)
            if other and other.group(1) not in COURSE_TASKS:
                continue  # another task's prediction: not scored, never read
            raise SubmissionError(
                f"{archive.path}: unexpected entry {_shown(name)} "
                "(predictions/ holds semseg/<i>.png, depth/<i>.png and other tasks' folders)"
            )
        task, index = match.group(1), int(match.group(2))
        if index not in wanted:
            raise SubmissionError(f"{archive.path}: entry {name!r} has no ground truth (no index {index} in {gt})")
        entries[(task, index)] = name
    missing = [f"predictions/{task}/{i}.png" for task in COURSE_TASKS for i in indices if (task, i) not in entries]
    if missing:
        more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
        raise SubmissionError(f"{archive.path}: missing entry {missing[0]!r}{more}")
    return entries


def _read_prediction(archive: SafeZip, name: str, task: str, size: tuple[int, int]) -> np.ndarray:
    """Decode one prediction PNG as uint8 codes, checking format, mode and size before decoding pixels."""
    where = f"{archive.path}: entry {name!r}"
    data = archive.read(name)
    try:
        with warnings.catch_warnings():
            # A header declaring a huge image only warns; make it a rejection like any other bad header.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))  # reads the header only
    except MemoryError:
        raise
    except Exception as exc:
        # By design, not by listing: PIL raises many types for garbage input (UnidentifiedImageError, OSError,
        # SyntaxError, ValueError, struct.error, zlib.error, DecompressionBombError, …).
        why = "not an image format PIL knows" if isinstance(exc, UnidentifiedImageError) else _reason(exc)
        raise SubmissionError(f"{where} is not a decodable PNG ({why})") from exc
    if image.format != "PNG":
        raise SubmissionError(f"{where} is a {image.format} image, expected PNG")
    if image.mode not in PREDICTION_MODES[task]:
        raise SubmissionError(f"{where} has mode {image.mode!r}, expected {' or '.join(PREDICTION_MODES[task])}")
    if image.size != size:
        raise SubmissionError(
            f"{where} has size {image.size[0]}x{image.size[1]}, the ground truth is {size[0]}x{size[1]}"
        )
    try:
        # Size and mode were checked, so decoding costs at most one ground-truth-sized image. PIL refuses
        # truncated data (ImageFile.LOAD_TRUNCATED_IMAGES: False by default, never set by mtl), so no partial image
        # is scored.
        image.load()
        codes = np.asarray(image, dtype=np.uint8)
    except MemoryError:
        raise
    except Exception as exc:  # as above: whatever PIL raises, the entry cannot be decoded
        raise SubmissionError(f"{where} is not a decodable PNG ({_reason(exc)})") from exc
    if task == "semseg":
        bad = codes >= NUM_CLASSES
        if bad.any():
            values = sorted(np.unique(codes[bad]).tolist())[:5]
            raise SubmissionError(
                f"{where} holds class ids {values} outside 0..{NUM_CLASSES - 1} (a prediction may not use 255/ignore)"
            )
    elif (codes == 0).any():
        raise SubmissionError(
            f"{where} has {int((codes == 0).sum())} pixels with depth code 0 (invalid); "
            "a prediction needs a depth everywhere (codes 1..255)"
        )
    return codes


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch single-threaded: one image's tensors are too small for intra-op threads to pay, and on a
    busy machine they collapse (200 images of 512×256 on a loaded 2-core box: 180 s with 2 threads, 17 s with 1)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def grade_submission(
    zip_path: str | Path,
    gt_dir: str | Path,
    *,
    max_total_bytes: int = DEFAULT_MAX_TOTAL_BYTES,
    max_entry_bytes: int = DEFAULT_MAX_ENTRY_BYTES,
    progress: bool = True,
) -> dict[str, Any]:
    """Score ``zip_path`` against ``gt_dir``.

    Returns ``grader``, ``miou``, ``si_log_rmse``, ``total``, ``iou_per_class`` (class name → IoU),
    ``depth_metrics`` (name → value) and ``num_images``. Raises SubmissionError for a bad archive and
    DataFormatError / FileNotFoundError for a bad ground-truth folder; messages name the entry or file.
    """
    gt = Path(gt_dir)
    indices = ground_truth_indices(gt)
    semseg_metrics = SemsegMetrics()
    depth_metrics = DepthMetrics()
    with SafeZip(zip_path, max_total_bytes=max_total_bytes, max_entry_bytes=max_entry_bytes) as archive, _one_thread():
        entries = _prediction_entries(archive, indices, gt)
        for i in tqdm(indices, desc="grading", unit="img", file=sys.stderr, delay=2.0, disable=not progress):
            gt_ids = read_semseg(gt / "semseg" / f"{i}.png")
            pred_ids = _read_prediction(archive, entries[("semseg", i)], "semseg", gt_ids.shape[::-1])
            semseg_metrics.update(torch.tensor(pred_ids), torch.tensor(gt_ids))
            gt_depth = read_depth(gt / "depth" / f"{i}.png")
            pred_codes = _read_prediction(archive, entries[("depth", i)], "depth", gt_depth.shape[::-1])
            depth_metrics.update(torch.tensor(decode_depth(pred_codes)), torch.tensor(gt_depth))
    if int(depth_metrics.count) == 0:
        raise DataFormatError(f"{gt / 'depth'}: no image has a valid depth pixel, so depth cannot be scored")
    semseg_result = semseg_metrics.compute()
    depth_result = depth_metrics.compute()
    miou, si = float(semseg_result["miou"]), float(depth_result["si_log_rmse"])
    return {
        "grader": grader_score(miou, si),
        "miou": miou,
        "si_log_rmse": si,
        "total": total_score(miou, si),
        "iou_per_class": {name: float(v) for name, v in zip(CLASS_NAMES, semseg_result["iou_per_class"])},
        "depth_metrics": {name: float(v) for name, v in depth_result.items()},
        "num_images": len(indices),
    }
