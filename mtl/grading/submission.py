"""Test-split predictions from a run's best checkpoint, and submission.zip in the course's layout.

Layout: predictions/<task>/<name><suffix>, every file the dataset's layout writes for a prediction (MiniScapes:
<i>.png; Cityscapes: <name>_labelIds.png and <name>_depth.npy), checkpoints/best.ckpt (the best model's weights
and flags, not the resumable last.ckpt), source.zip, metrics.csv. A grader reads what it scores and ignores the
rest (``mtl.grading.grader``).
"""

from __future__ import annotations

import zipfile
from pathlib import Path

from mtl.datasets import build_dataset
from mtl.hardware import default_device
from mtl.inference.predict import predict_dataset_split
from mtl.inference.predictor import checkpoint_flags, load_predictor


def pack_submission(log_dir: Path) -> Path:
    """submission.zip next to the run's predictions (every file under predictions/), best checkpoint, source.zip
    and metrics.csv."""
    path = log_dir / "submission.zip"
    tmp = path.with_name("submission.zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted(f for f in (log_dir / "predictions").rglob("*") if f.is_file()):
            zf.write(file, file.relative_to(log_dir).as_posix())
        best = log_dir / "checkpoints" / "best.ckpt"
        if best.is_file():
            zf.write(best, "checkpoints/best.ckpt", compress_type=zipfile.ZIP_STORED)
        for name in ("source.zip", "metrics.csv"):
            if (log_dir / name).is_file():
                zf.write(log_dir / name, name)
    tmp.replace(path)
    return path


def make_submission(log_dir: Path, dataset_root: Path, batch_size: int, device: str | None = None) -> Path:
    """Predict the test split with the run's best checkpoint (last if no validation ran) and pack it."""
    checkpoints = log_dir / "checkpoints"
    ckpt = checkpoints / "best.ckpt" if (checkpoints / "best.ckpt").is_file() else checkpoints / "last.ckpt"
    device = device or default_device()
    predictor = load_predictor(ckpt, device)
    flags = checkpoint_flags(ckpt)
    flags.dataset_root = str(dataset_root)
    predict_dataset_split(predictor, build_dataset(flags), "test", log_dir / "predictions", batch_size, device)
    return pack_submission(log_dir)
