"""The 19 Cityscapes training classes (trainIds 0..18) with their official colours."""

from __future__ import annotations

import numpy as np

IGNORE_INDEX = 255

CLASSES: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("road", (128, 64, 128)),
    ("sidewalk", (244, 35, 232)),
    ("building", (70, 70, 70)),
    ("wall", (102, 102, 156)),
    ("fence", (190, 153, 153)),
    ("pole", (153, 153, 153)),
    ("traffic light", (250, 170, 30)),
    ("traffic sign", (220, 220, 0)),
    ("vegetation", (107, 142, 35)),
    ("terrain", (152, 251, 152)),
    ("sky", (70, 130, 180)),
    ("person", (220, 20, 60)),
    ("rider", (255, 0, 0)),
    ("car", (0, 0, 142)),
    ("truck", (0, 0, 70)),
    ("bus", (0, 60, 100)),
    ("train", (0, 80, 100)),
    ("motorcycle", (0, 0, 230)),
    ("bicycle", (119, 11, 32)),
)

CLASS_NAMES: tuple[str, ...] = tuple(name for name, _ in CLASSES)
CLASS_COLORS: tuple[tuple[int, int, int], ...] = tuple(color for _, color in CLASSES)
NUM_CLASSES = len(CLASSES)
CLASS_ID = {name: i for i, name in enumerate(CLASS_NAMES)}


def palette() -> list[int]:
    """A 768-entry PIL palette: trainId colours, every other entry (255 = ignore included) black."""
    flat = [0] * 768
    for i, color in enumerate(CLASS_COLORS):
        flat[3 * i : 3 * i + 3] = color
    return flat


def colorize(ids: np.ndarray) -> np.ndarray:
    """Map an H×W array of trainIds to an H×W×3 uint8 RGB picture (ignore → black)."""
    lut = np.asarray(palette(), dtype=np.uint8).reshape(256, 3)
    return lut[ids]
