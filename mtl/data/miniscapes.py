"""Paths and sample count of the MiniScapes layout: <root>/<split>/{rgb,semseg,depth}/<i>.{jpg,png}.

The dataset plug-in ``mtl.datasets.miniscapes`` (what training, prediction, `mtl data check` and
`mtl data stats` use) builds on these. ``MiniScapes`` is the former torch ``Dataset`` of the course's
two modalities, kept for code that imports it; it imports torch only when an item is taken.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mtl.data.check import count_indexed_files
from mtl.data.formats import DataFormatError, read_depth, read_rgb, read_semseg

SPLITS = ("train", "val", "test")
MODALITY_EXT = {"rgb": ".jpg", "semseg": ".png", "depth": ".png"}


def sample_path(root: Path, split: str, modality: str, index: int) -> Path:
    return Path(root) / split / modality / f"{index}{MODALITY_EXT[modality]}"


def split_size(root: Path, split: str) -> int:
    """Number of samples of a split, discovered from the RGB folder (indices must run 0..N-1).

    Only ``<i>.jpg`` with ``<i>`` in ASCII digits without leading zeros is a sample. A ``.jpg`` whose
    name still reads as a number (``03.jpg``, ``+3.jpg``, ``٣.jpg``: ``int()`` accepts them all) is an
    error naming the file rather than a silent alias of a sample; other files (``notes.txt``,
    ``cover.jpg``) are ignored here (``mtl data check`` reports them).
    """
    folder = Path(root) / split / "rgb"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: split folder not found (expected <root>/{split}/rgb/<i>.jpg)")
    return count_indexed_files(folder, MODALITY_EXT["rgb"])


class MiniScapes:
    """One split of a MiniScapes-layout dataset.

    Each item is a dict: ``rgb`` uint8 tensor 3×H×W, ``semseg`` int64 H×W (255 = ignore) and ``depth``
    float32 H×W in metres (NaN = invalid) when the split has them, and ``index``. Ground truth is
    optional per modality (the official test split ships RGB only); ``modalities`` picks what to load.
    """

    def __init__(self, root: str | Path, split: str, modalities: tuple[str, ...] | None = None) -> None:
        if split not in SPLITS:
            raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")
        self.root = Path(root)
        self.split = split
        self.size = split_size(self.root, split)
        available = tuple(m for m in MODALITY_EXT if (self.root / split / m).is_dir())
        if modalities is None:
            modalities = available
        missing = [m for m in modalities if m not in available]
        if missing:
            raise FileNotFoundError(f"{self.root / split}: no {missing} folder")
        self.modalities = tuple(modalities)

    def __len__(self) -> int:
        return self.size

    def read(self, index: int) -> dict[str, np.ndarray]:
        """The raw arrays of one sample (uint8 RGB, uint8 semseg, float32 depth), size-checked."""
        out: dict[str, np.ndarray] = {}
        readers = {"rgb": read_rgb, "semseg": read_semseg, "depth": read_depth}
        for modality in self.modalities:
            path = sample_path(self.root, self.split, modality, index)
            out[modality] = readers[modality](path)
            if out[modality].shape[:2] != out[self.modalities[0]].shape[:2]:
                raise DataFormatError(
                    f"{path}: size {out[modality].shape[1]}x{out[modality].shape[0]} differs from its "
                    f"{self.modalities[0]} image {out[self.modalities[0]].shape[1]}x{out[self.modalities[0]].shape[0]}"
                )
        return out

    def __getitem__(self, index: int) -> dict[str, Any]:
        import torch

        if not 0 <= index < self.size:
            raise IndexError(index)
        arrays = self.read(index)
        item: dict[str, Any] = {"index": index}
        if "rgb" in arrays:
            item["rgb"] = torch.from_numpy(arrays["rgb"]).permute(2, 0, 1).contiguous()
        if "semseg" in arrays:
            item["semseg"] = torch.from_numpy(arrays["semseg"].astype(np.int64))
        if "depth" in arrays:
            item["depth"] = torch.from_numpy(arrays["depth"])
        return item
