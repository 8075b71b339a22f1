"""Reading checkpoints safely: they may come from other people (weights_only loading, a size limit, one-line errors)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

MAX_CHECKPOINT_BYTES = 4 << 30


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the one-line message names the file."""


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's dict, without executing any pickled code (weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size > MAX_CHECKPOINT_BYTES:
        raise CheckpointError(f"{path}: checkpoint larger than {MAX_CHECKPOINT_BYTES >> 30} GiB; refusing to load")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # unpickling and archive errors come in many types
        # torch's message ends with advice to retry with weights_only=False: dangerous for a file from someone
        # else, so only its first line is kept.
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: not a loadable mtl checkpoint ({reason})") from exc
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("hyper_parameters"), dict) or not isinstance(
        checkpoint.get("state_dict"), dict
    ):
        raise CheckpointError(f"{path}: not an mtl checkpoint (no state_dict / hyper_parameters)")
    return checkpoint
