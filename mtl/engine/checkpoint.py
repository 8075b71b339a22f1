"""Loading a trained model from a checkpoint, safely (checkpoints may come from other people)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

MAX_CHECKPOINT_BYTES = 4 << 30


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint's dict, without executing any pickled code (weights_only=True)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    if path.stat().st_size > MAX_CHECKPOINT_BYTES:
        raise ValueError(f"{path}: checkpoint larger than {MAX_CHECKPOINT_BYTES >> 30} GiB; refusing to load")
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except Exception as exc:  # unpickling errors come in many types
        raise ValueError(f"{path}: not a loadable mtl checkpoint ({exc})") from exc
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint or "hyper_parameters" not in checkpoint:
        raise ValueError(f"{path}: not an mtl checkpoint (no state_dict / hyper_parameters)")
    return checkpoint


def load_module(path: str | Path, **overrides: Any) -> torch.nn.Module:
    """The trained MultiTaskModule in eval mode; ``overrides`` change config values (e.g. compile=False)."""
    from mtl.engine.module import MultiTaskModule

    checkpoint = read_checkpoint(path)
    hparams = dict(checkpoint["hyper_parameters"])
    config = {**hparams["config"], "compile": False, "pretrained": False, **overrides}
    module = MultiTaskModule(config, hparams["depth_mean"], hparams["depth_std"])
    module.load_state_dict(checkpoint["state_dict"])
    return module.eval()
