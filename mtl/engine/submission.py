"""Test-split predictions from a checkpoint, and submission.zip in the course's layout.

Layout: predictions/semseg/<i>.png (mode P), predictions/depth/<i>.png (mode L, clamp policy),
checkpoints/*.ckpt, source.zip, metrics.csv.
"""

from __future__ import annotations

import zipfile
from pathlib import Path

import torch
from tqdm import tqdm

from mtl.data.formats import write_depth, write_semseg
from mtl.data.miniscapes import MiniScapes
from mtl.engine.checkpoint import load_module


@torch.no_grad()
def predict_split(module: torch.nn.Module, dataset: MiniScapes, out_dir: Path, batch_size: int, device: str) -> int:
    """Write semseg and depth PNGs of every sample of ``dataset`` (full resolution) into ``out_dir``."""
    module.eval().to(device)
    for sub in ("semseg", "depth"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=min(2, batch_size))
    count = 0
    for batch in tqdm(loader, desc=f"predict {dataset.split}", unit="batch", leave=False):
        pred = module.predict(batch["rgb"].to(device))
        for j, index in enumerate(batch["index"].tolist()):
            if "semseg" in pred:
                write_semseg(out_dir / "semseg" / f"{index}.png", pred["semseg"][j].cpu().numpy())
            if "depth" in pred:
                write_depth(out_dir / "depth" / f"{index}.png", pred["depth"][j].cpu().numpy(), "clamp")
            count += 1
    return count


def pack_submission(log_dir: Path) -> Path:
    """submission.zip next to the run's predictions, checkpoints, source.zip and metrics.csv."""
    path = log_dir / "submission.zip"
    tmp = path.with_name("submission.zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for file in sorted((log_dir / "predictions").rglob("*.png")):
            zf.write(file, file.relative_to(log_dir).as_posix())
        for file in sorted((log_dir / "checkpoints").glob("*.ckpt")):
            zf.write(file, f"checkpoints/{file.name}", compress_type=zipfile.ZIP_STORED)
        for name in ("source.zip", "metrics.csv"):
            if (log_dir / name).is_file():
                zf.write(log_dir / name, name)
    tmp.replace(path)
    return path


def make_submission(log_dir: Path, dataset_root: Path, batch_size: int, device: str | None = None) -> Path:
    """Predict the test split with the run's best checkpoint (last if no validation ran) and pack it."""
    checkpoints = log_dir / "checkpoints"
    ckpt = checkpoints / "best.ckpt" if (checkpoints / "best.ckpt").is_file() else checkpoints / "last.ckpt"
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    module = load_module(ckpt)
    dataset = MiniScapes(dataset_root, "test", ("rgb",))
    predict_split(module, dataset, log_dir / "predictions", batch_size, device)
    return pack_submission(log_dir)
