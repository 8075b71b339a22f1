"""Loading ImageNet weights from a local torchvision-format ResNet file (no hub is reachable offline)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

DOWNLOAD_URL = "https://download.pytorch.org/models/{}"


def default_weights_path(weights_file: str) -> Path:
    """Where torch.hub caches the official file: ``$TORCH_HOME/hub/checkpoints/<file>``."""
    return Path(torch.hub.get_dir()) / "checkpoints" / weights_file


def load_pretrained(encoder: nn.Module, weights_file: str, path: str | Path | None = None) -> Path:
    """Load torchvision ResNet weights into ``encoder``; the classifier (``fc.*``) is dropped.

    Every encoder tensor must come from the file with the same shape (BatchNorm's
    ``num_batches_tracked`` may be absent, as in older torchvision files). Returns the file used.
    """
    source = Path(path) if path is not None else default_weights_path(weights_file)
    if not source.is_file():
        raise FileNotFoundError(
            f"ImageNet weights not found: {source}. Download {DOWNLOAD_URL.format(weights_file)} and either "
            f"put it at {default_weights_path(weights_file)} (the torch hub cache, $TORCH_HOME/hub/checkpoints/) "
            f"or pass --pretrained_path /path/to/{weights_file}"
        )
    state = torch.load(source, map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ValueError(f"{source}: expected a state dict (name → tensor), got {type(state).__name__}")
    state = {key: value for key, value in state.items() if not key.startswith("fc.")}
    expected = encoder.state_dict()
    missing = sorted(k for k in expected.keys() - state.keys() if not k.endswith("num_batches_tracked"))
    unexpected = sorted(state.keys() - expected.keys())
    if missing or unexpected:
        raise ValueError(
            f"{source} does not match the encoder: missing keys {missing or 'none'}; unexpected keys {unexpected or 'none'}"
        )
    for key, value in state.items():
        if not isinstance(value, torch.Tensor) or value.shape != expected[key].shape:
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise ValueError(f"{source}: {key} has shape {shape}, the encoder expects {tuple(expected[key].shape)}")
    encoder.load_state_dict(state, strict=True)
    return source
