"""A trained network with its tasks: RGB in, raw outputs or decoded predictions (class ids, metres, …) out."""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mtl.config import recorded_flags
from mtl.data.transforms import normalize_rgb
from mtl.datasets import DATASETS
from mtl.hardware import autocast_dtype, choose
from mtl.inference.checkpoint import CheckpointError, read_checkpoint
from mtl.models import build_model, model_options
from mtl.tasks import Task, build_tasks, final


class Predictor(nn.Module):
    def __init__(
        self,
        model: nn.Module,
        tasks: Mapping[str, Task],
        dataset: str,
        channels_last: bool = False,
        compile: bool = False,
        precision: str = "32",
    ):
        super().__init__()
        self.dataset = dataset  # the layout whose file formats predictions are written in
        self.model = model.to(memory_format=torch.channels_last) if channels_last else model
        self.tasks = dict(tasks)
        self.channels_last = channels_last
        self.precision = precision  # of predict(); training's autocast is the trainer's
        # Not registered as a submodule: the compiled wrapper would duplicate every key in the state dict.
        object.__setattr__(self, "net", torch.compile(self.model) if compile else self.model)

    @classmethod
    def from_flags(
        cls, flags: argparse.Namespace, task_states: Mapping[str, Mapping[str, Any]], device: str = "cpu"
    ) -> Predictor:
        """Built from a run's flags and its tasks' measured state (``Task.prepare``), with --precision and
        --channels_last chosen for ``device`` where they say auto (or for the hardware MTL_HARDWARE names)."""
        tasks = build_tasks(flags.tasks, flags, DATASETS[flags.dataset].info_for(flags), task_states)
        model = build_model(flags.model_name, {name: task.output() for name, task in tasks.items()}, model_options(flags))
        choice = choose(flags.precision, flags.channels_last, device)
        return cls(model, tasks, flags.dataset, choice.channels_last, flags.compile, choice.precision)

    def forward(self, rgb: Tensor) -> dict[str, Tensor | list[Tensor]]:
        """uint8 (or float 0..255) RGB B×3×H×W → raw model outputs at input size."""
        x = normalize_rgb(rgb.float())
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return self.net(x)

    def decode(self, outputs: Mapping[str, Tensor | list[Tensor]]) -> dict[str, Tensor]:
        """Raw outputs → each task's prediction (from the final element of deep-supervision lists)."""
        return {name: self.tasks[name].decode(final(out).detach()) for name, out in outputs.items()}

    @torch.no_grad()
    def predict(self, rgb: Tensor) -> dict[str, Tensor]:
        """Each task's prediction, computed in the predictor's precision (decoded in fp32 by the tasks)."""
        dtype = autocast_dtype(self.precision)
        with torch.autocast(rgb.device.type, dtype=dtype, enabled=dtype is not None):
            return self.decode(self(rgb))

    def checkpoint(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """A weights-only checkpoint that ``load_predictor`` reads, laid out as the trainer writes them;
        ``config``: the flag values (``mtl.config.plain_values``)."""
        return {
            "state_dict": {f"predictor.{k}": v for k, v in self.state_dict().items()},
            "hyper_parameters": {"config": dict(config), "task_state": {n: t.state() for n, t in self.tasks.items()}},
        }


def checkpoint_flags(path: str | Path, checkpoint: Mapping[str, Any] | None = None) -> argparse.Namespace:
    """The flags a checkpoint was trained with, read back through the flag types; one-line errors."""
    checkpoint = read_checkpoint(path) if checkpoint is None else checkpoint
    try:
        return recorded_flags(checkpoint["hyper_parameters"]["config"])
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its recorded flags are unusable ({str(exc).splitlines()[0]})") from exc


def load_predictor(path: str | Path, device: str = "cpu", **overrides: Any) -> Predictor:
    """The trained Predictor of a checkpoint, in eval mode, for ``device`` (where --precision and --channels_last
    say auto, chosen for it); ``overrides`` change flag values (e.g. precision="32")."""
    checkpoint = read_checkpoint(path)
    flags = checkpoint_flags(path, checkpoint)
    for key, value in {"compile": False, "pretrained": False, **overrides}.items():
        setattr(flags, key, value)
    try:
        predictor = Predictor.from_flags(flags, checkpoint["hyper_parameters"]["task_state"], torch.device(device).type)
        state = {k.removeprefix("predictor."): v for k, v in checkpoint["state_dict"].items() if k.startswith("predictor.")}
        predictor.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: does not fit this version of mtl ({reason})") from exc
    return predictor.eval()
