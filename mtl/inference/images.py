"""Reading the user's own pictures: any size, any common PIL mode, converted to RGB with a note."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageOps

from mtl.data.formats import DataFormatError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")
_SIXTEEN_BIT_MODES = ("I", "I;16", "I;16B", "I;16L")


def list_images(path: str | Path) -> list[Path]:
    """``path`` itself if it is a file, else the .jpg/.jpeg/.png files directly inside it, sorted by name.

    Two inputs with the same stem would write the same output files, so that is an error.
    """
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise FileNotFoundError(f"--input {path}: no such file or folder")
    files = sorted(p for p in path.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise FileNotFoundError(f"--input {path}: no {'/'.join(IMAGE_SUFFIXES)} images in this folder")
    seen: dict[str, Path] = {}
    for file in files:
        if file.stem in seen:
            raise ValueError(f"--input {path}: {seen[file.stem].name} and {file.name} would write the same outputs")
        seen[file.stem] = file
    return files


def load_image(path: str | Path) -> tuple[np.ndarray, str | None]:
    """(H×W×3 uint8 RGB, a note saying what was converted or None).

    The EXIF orientation is applied, so a phone photo is predicted the way it is displayed.
    """
    path = Path(path)
    try:
        with Image.open(path) as opened:
            image = ImageOps.exif_transpose(opened)
            image.load()
    except Exception as exc:  # PIL raises many types for unreadable, truncated or non-image files
        raise DataFormatError(f"{path}: cannot read as an image ({exc})") from exc
    if image.mode == "RGB":
        return np.asarray(image, dtype=np.uint8), None
    if image.mode in _SIXTEEN_BIT_MODES:
        # PIL's convert("RGB") clips 16-bit values at 255; scale 0..65535 to 0..255 instead.
        grey = np.round(np.asarray(image, dtype=np.float64) / 257.0).clip(0, 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2), f"{path}: 16-bit {image.mode} image scaled to 8-bit RGB"
    dropped = " (transparency dropped)" if "A" in image.mode or "transparency" in image.info else ""
    return np.asarray(image.convert("RGB"), dtype=np.uint8), f"{path}: mode {image.mode} converted to RGB{dropped}"
