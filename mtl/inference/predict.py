"""Prediction on the user's images (dataset-format files and pictures per image) and on a dataset split
(dataset-format files + metrics). One writer serves both, and the submission of a training run."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from tqdm import tqdm

from mtl.datasets import DATASETS, DatasetLayout, SplitDataset
from mtl.inference.evaluate import evaluate_split
from mtl.inference.images import load_image
from mtl.inference.predictor import Predictor


def write_predictions(
    layout: DatasetLayout, predictor: Predictor, folder: Path, names: Sequence[str], predictions: dict[str, Tensor]
) -> None:
    """Each task's prediction of a batch in the dataset's own format: ``folder/<task>/<name><suffix>``."""
    for name, prediction in predictions.items():
        task = predictor.tasks[name]
        for j, stem in enumerate(names):
            layout.write_prediction(folder, name, stem, task.to_array(prediction[j]))


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


def write_image_outputs(
    predictor: Predictor, out_dir: Path, stem: str, rgb: np.ndarray, predictions: dict[str, Tensor]
) -> None:
    """<stem>_<task><suffix> in the format of the dataset the model was trained on, each task's extra pictures
    (<stem>_<kind>.png) and <stem>_overview.png (RGB next to each task's picture)."""
    layout = DATASETS[predictor.dataset]
    panels = [rgb]
    for name, prediction in predictions.items():
        task = predictor.tasks[name]
        codec = layout.codec(name)
        codec.write(out_dir / f"{stem}_{name}{codec.suffix}", task.to_array(prediction))
        for kind, picture in task.extra_pictures(prediction).items():
            Image.fromarray(picture).save(out_dir / f"{stem}_{kind}.png")
        panels.append(task.overview_picture(rgb, prediction))
    Image.fromarray(np.concatenate(panels, axis=1)).save(out_dir / f"{stem}_overview.png")


@torch.no_grad()
def predict_images(predictor: Predictor, paths: Sequence[Path], out_dir: Path, batch_size: int, device: str) -> int:
    """Predict every image (any size) and write its files (``write_image_outputs``); returns the count."""
    predictor.eval().to(device)
    out_dir.mkdir(parents=True, exist_ok=True)
    count = 0
    with tqdm(total=len(paths), desc="predict", unit="image") as progress:
        for batch in _same_size_batches(paths, batch_size):
            rgb = torch.from_numpy(np.stack([image for _, image in batch])).permute(0, 3, 1, 2).to(device)
            predictions = {k: v.cpu() for k, v in predictor.predict(rgb).items()}
            for j, (path, image) in enumerate(batch):
                write_image_outputs(predictor, out_dir, path.stem, image, {k: v[j] for k, v in predictions.items()})
            count += len(batch)
            progress.update(len(batch))
    return count


def predict_dataset_split(
    predictor: Predictor, layout: DatasetLayout, split: str, out_dir: Path, batch_size: int, device: str
) -> dict[str, Any] | None:
    """Write every sample's predictions into out_dir/<task>/ in the dataset's format; the metrics when the
    split has ground truth (None otherwise)."""
    dataset = SplitDataset(layout, split, predictor.tasks)

    def write(batch: dict[str, Any], predictions: dict[str, Tensor]) -> None:
        names = [layout.sample_name(split, i) for i in batch["index"].tolist()]
        write_predictions(layout, predictor, out_dir, names, predictions)

    result = evaluate_split(predictor, dataset, batch_size, device, on_batch=write)
    return result if dataset.tasks else None
