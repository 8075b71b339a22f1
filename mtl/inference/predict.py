"""Prediction on the user's images (four PNGs per image) and on a dataset split (dataset-format PNGs + metrics)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn
from tqdm import tqdm

from mtl.data.formats import write_depth, write_semseg
from mtl.data.miniscapes import MiniScapes
from mtl.engine.evaluate import evaluate_split
from mtl.engine.visualize import depth_picture
from mtl.inference.images import load_image
from mtl.inference.pictures import overview


def _same_size_batches(paths: Sequence[Path], batch_size: int) -> Iterator[list[tuple[Path, np.ndarray]]]:
    """Consecutive images of one size, at most ``batch_size`` at a time (a batch needs one size)."""
    batch: list[tuple[Path, np.ndarray]] = []
    for path in paths:
        rgb, note = load_image(path)
        if note:
            tqdm.write(f"note: {note}", file=sys.stderr)
        if batch and (len(batch) == batch_size or batch[0][1].shape != rgb.shape):
            yield batch
            batch = []
        batch.append((path, rgb))
    if batch:
        yield batch


def write_outputs(
    out_dir: Path, stem: str, rgb: np.ndarray, ids: np.ndarray | None, depth_m: np.ndarray | None
) -> None:
    """<stem>_semseg.png (palette), <stem>_depth.png (disparity codes, clamp), <stem>_depth_color.png,
    <stem>_overview.png."""
    if ids is not None:
        write_semseg(out_dir / f"{stem}_semseg.png", ids)
    if depth_m is not None:
        write_depth(out_dir / f"{stem}_depth.png", depth_m, "clamp")
        Image.fromarray(depth_picture(depth_m)).save(out_dir / f"{stem}_depth_color.png")
    Image.fromarray(overview(rgb, ids, depth_m)).save(out_dir / f"{stem}_overview.png")


@torch.no_grad()
def predict_images(predictor: nn.Module, paths: Sequence[Path], out_dir: Path, batch_size: int, device: str) -> int:
    """Predict every image (any size) with ``predictor.predict`` and write its four PNGs; returns the count."""
    predictor.eval().to(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    with tqdm(total=len(paths), desc="predict", unit="image") as progress:
        for batch in _same_size_batches(paths, batch_size):
            rgb = torch.from_numpy(np.stack([image for _, image in batch])).permute(0, 3, 1, 2).to(device)
            pred = {k: v.cpu().numpy() for k, v in predictor.predict(rgb).items()}
            for j, (path, image) in enumerate(batch):
                ids = pred["semseg"][j].astype(np.uint8) if "semseg" in pred else None
                depth_m = pred["depth"][j] if "depth" in pred else None
                write_outputs(out_dir, path.stem, image, ids, depth_m)
            count += len(batch)
            progress.update(len(batch))
    return count


class _SplitWriter(nn.Module):
    """Writes each batch's predictions as evaluate_split asks for them, so files and metrics take one pass.

    evaluate_split reads the split in order (an unshuffled DataLoader), so the k-th predicted image is sample k.
    """

    def __init__(self, predictor: nn.Module, out_dir: Path) -> None:
        super().__init__()
        self.predictor = predictor
        self.out_dir = out_dir
        self.next_index = 0

    def predict(self, rgb: Tensor) -> dict[str, Tensor]:
        pred = self.predictor.predict(rgb)
        for j in range(rgb.shape[0]):
            index = self.next_index + j
            if "semseg" in pred:
                write_semseg(self.out_dir / "semseg" / f"{index}.png", pred["semseg"][j].cpu().numpy())
            if "depth" in pred:
                write_depth(self.out_dir / "depth" / f"{index}.png", pred["depth"][j].cpu().numpy(), "clamp")
        self.next_index += rgb.shape[0]
        return pred


def predict_dataset_split(
    predictor: nn.Module, root: Path, split: str, out_dir: Path, batch_size: int, device: str
) -> dict[str, Any] | None:
    """Write out_dir/semseg/<i>.png and out_dir/depth/<i>.png for a split; the metrics when it has ground truth."""
    dataset = MiniScapes(root, split)
    for sub in ("semseg", "depth"):
        (out_dir / sub).mkdir(parents=True, exist_ok=True)
    result = evaluate_split(_SplitWriter(predictor, out_dir), dataset, batch_size, device)
    return result if "miou" in result or "si_log_rmse" in result else None
