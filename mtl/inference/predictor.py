"""A trained network with its tasks: RGB in, raw outputs or decoded predictions (class ids, metres, …) out.

A Predictor is built from a ``PredictorSpec``: the model's name and typed options, each task's own flags and
measured state, the dataset's name and facts, the precision. Every checkpoint holds the spec in plain values,
so a checkpoint is read back without the `mtl train` parser: a flag added, renamed or removed since (even one
of a plug-in) does not make older checkpoints unusable.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from mtl.config import plugin_arguments, plugin_flags, plugin_modules, recorded_flags
from mtl.data.transforms import normalize_rgb
from mtl.datasets import DATASETS, DatasetInfo
from mtl.errors import one_line
from mtl.hardware import PRECISIONS, autocast_dtype, choose
from mtl.metrics.protocol import PROTOCOLS
from mtl.inference.checkpoint import CheckpointError, from_plain, plain, read_checkpoint
from mtl.models import ModelOptions, build_model, model_options
from mtl.plugins import PluginError, import_recorded
from mtl.tasks import TASKS, Task, final


@dataclass(frozen=True)
class PredictorSpec:
    """What a Predictor is built from; recorded in every checkpoint (``to_plain``) and read back (``from_plain``)."""

    model: str
    options: ModelOptions
    tasks: Mapping[str, argparse.Namespace]  # each task's own flags (its add_arguments), in --tasks order
    states: Mapping[str, Mapping[str, Any]]  # what each task measured on the training data (Task.prepare)
    dataset: str  # the layout whose file formats predictions are written in
    dataset_info: DatasetInfo
    precision: str = "auto"  # --precision and --channels_last as given: auto is chosen where the predictor runs
    channels_last: bool | str = "auto"
    eval_protocol: str = "course"  # how its metrics are computed (mtl.metrics.protocol); runs before it: course's

    @classmethod
    def from_flags(cls, flags: argparse.Namespace, states: Mapping[str, Mapping[str, Any]]) -> PredictorSpec:
        return cls(
            model=flags.model_name,
            options=model_options(flags),
            tasks={
                name: argparse.Namespace(**{key: getattr(flags, key) for key in plugin_flags(TASKS[name])})
                for name in flags.tasks
            },
            states={name: dict(states.get(name, {})) for name in flags.tasks},
            dataset=flags.dataset,
            dataset_info=DATASETS[flags.dataset].info_for(flags),
            precision=flags.precision,
            channels_last=flags.channels_last,
            eval_protocol=getattr(flags, "eval_protocol", None) or DATASETS[flags.dataset].eval_protocol,
        )

    def to_plain(self) -> dict[str, Any]:
        """The spec but the tasks' states (a checkpoint's ``task_state``), in plain values."""
        return {
            "model": {"name": self.model, "options": plain(self.options)},
            "tasks": {name: plain(vars(arguments)) for name, arguments in self.tasks.items()},
            "dataset": {"name": self.dataset, "info": plain(self.dataset_info)},
            "precision": self.precision,
            "channels_last": self.channels_last,
            "eval_protocol": self.eval_protocol,
        }

    @classmethod
    def from_plain(cls, values: Any, states: Any, source: str) -> PredictorSpec:
        """``to_plain``'s values (and the tasks' states) back; a key unknown to this version is a warning naming it
        (``source`` names the file), an unusable value a ValueError naming its key."""
        model, tasks, dataset = (_mapping(values, key, "predictor") for key in ("model", "tasks", "dataset"))
        if not isinstance(states, Mapping):
            raise ValueError(f"task_state: expected a mapping, got {states!r}")
        arguments = {
            name: plugin_arguments(TASKS[name], recorded, source, f"predictor.tasks.{name}")
            for name, recorded in tasks.items()
        }
        precision = values.get("precision", "auto")
        if precision not in PRECISIONS:
            raise ValueError(f"predictor.precision: expected one of {', '.join(PRECISIONS)}, got {precision!r}")
        eval_protocol = values.get("eval_protocol", "course")
        if eval_protocol not in PROTOCOLS:
            raise ValueError(f"predictor.eval_protocol: expected one of {', '.join(PROTOCOLS)}, got {eval_protocol!r}")
        channels_last = values.get("channels_last", "auto")
        if channels_last != "auto" and not isinstance(channels_last, bool):
            raise ValueError(f"predictor.channels_last: expected true, false or auto, got {channels_last!r}")
        return cls(
            model=_name(model, "predictor.model"),
            options=from_plain(ModelOptions, model.get("options", {}), "predictor.model.options", source),
            tasks=arguments,
            states={name: dict(_mapping(states, name, "task_state")) for name in arguments if name in states},
            dataset=_name(dataset, "predictor.dataset"),
            dataset_info=_dataset_info(dataset.get("info"), source),
            precision=precision,
            channels_last=channels_last,
            eval_protocol=eval_protocol,
        )


def _dataset_info(values: Any, source: str) -> DatasetInfo:
    """The recorded DatasetInfo, each task's facts rebuilt as that task's dataclass (``Task.info_type``)."""
    info = from_plain(DatasetInfo, values, "predictor.dataset.info", source)
    facts = {}
    for task, recorded in info.task_info.items():
        kind = TASKS[task].info_type if task in TASKS else None
        key = f"predictor.dataset.info.task_info.{task}"
        facts[task] = from_plain(kind, recorded, key, source) if kind is not None else recorded
    return dataclasses.replace(info, task_info=facts)


def _mapping(values: Any, key: str, parent: str) -> Mapping[str, Any]:
    value = values.get(key) if isinstance(values, Mapping) else None
    if not isinstance(value, Mapping):
        raise ValueError(f"{parent}.{key}: expected a mapping, got {value!r}")
    return value


def _name(values: Mapping[str, Any], key: str) -> str:
    if not isinstance(values.get("name"), str):
        raise ValueError(f"{key}.name: expected a name, got {values.get('name')!r}")
    return values["name"]


class Predictor(nn.Module):
    def __init__(self, spec: PredictorSpec, device: str = "cpu", compile: bool = False):
        """The tasks and the network of ``spec``, with --precision and --channels_last chosen for ``device`` where
        they say auto (or for the hardware MTL_HARDWARE names)."""
        super().__init__()
        self.spec = spec
        self.tasks: dict[str, Task] = {
            name: TASKS[name].from_flags(arguments, spec.dataset_info, spec.states.get(name, {}))
            for name, arguments in spec.tasks.items()
        }
        model = build_model(spec.model, {name: task.output() for name, task in self.tasks.items()}, spec.options)
        choice = choose(spec.precision, spec.channels_last, device)
        self.dataset = spec.dataset
        self.channels_last = choice.channels_last
        self.model = model.to(memory_format=torch.channels_last) if self.channels_last else model
        self.precision = choice.precision  # of predict(); training's autocast is the trainer's
        self.protocol = PROTOCOLS[spec.eval_protocol]  # how its predictions are scored (validation, evaluate_split)
        # Not registered as a submodule: the compiled wrapper would duplicate every key in the state dict.
        object.__setattr__(self, "net", torch.compile(self.model) if compile else self.model)

    @classmethod
    def from_flags(
        cls, flags: argparse.Namespace, task_states: Mapping[str, Mapping[str, Any]], device: str = "cpu"
    ) -> Predictor:
        """Built from a run's flags and its tasks' measured state (``Task.prepare``)."""
        return cls(PredictorSpec.from_flags(flags, task_states), device, flags.compile)

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

    def hyper_parameters(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """What a checkpoint holds besides the weights, in plain values (weights_only loading): the run's flags
        (``config``: ``mtl.config.plain_values``), each task's measured state, the modules outside mtl that
        define the run's plug-ins, and the spec the predictor is rebuilt from."""
        return {
            "config": dict(config),
            "task_state": {name: task.state() for name, task in self.tasks.items()},
            "plugins": plugin_modules(config),
            "predictor": self.spec.to_plain(),
        }

    def checkpoint(self, config: Mapping[str, Any]) -> dict[str, Any]:
        """A weights-only checkpoint that ``load_predictor`` reads, laid out as the trainer writes them."""
        return {
            "state_dict": {f"predictor.{k}": v for k, v in self.state_dict().items()},
            "hyper_parameters": self.hyper_parameters(config),
        }


def checkpoint_spec(path: str | Path, checkpoint: Mapping[str, Any] | None = None) -> PredictorSpec:
    """The spec of a checkpoint, after importing the plug-in modules it records; one-line errors naming the file.
    A checkpoint written before checkpoints described themselves is read through its recorded flags."""
    checkpoint = read_checkpoint(path) if checkpoint is None else checkpoint
    hyper_parameters = checkpoint["hyper_parameters"]
    import_recorded(hyper_parameters.get("plugins"), str(path))
    try:
        states = hyper_parameters.get("task_state", {})
        if "predictor" in hyper_parameters:
            return PredictorSpec.from_plain(hyper_parameters["predictor"], states, str(path))
        return PredictorSpec.from_flags(recorded_flags(hyper_parameters.get("config"), str(path)), states)
    except PluginError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its description is unusable ({one_line(exc)})") from exc


def checkpoint_flags(path: str | Path, checkpoint: Mapping[str, Any] | None = None) -> argparse.Namespace:
    """The flags a checkpoint was trained with, read back through the flag types (a flag removed since is a warning
    naming it); one-line errors."""
    checkpoint = read_checkpoint(path) if checkpoint is None else checkpoint
    hyper_parameters = checkpoint["hyper_parameters"]
    import_recorded(hyper_parameters.get("plugins"), str(path))
    try:
        return recorded_flags(hyper_parameters["config"], str(path))
    except PluginError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: its recorded flags are unusable ({one_line(exc)})") from exc


def load_predictor(
    path: str | Path, device: str = "cpu", precision: str | None = None, channels_last: bool | None = None
) -> Predictor:
    """The trained Predictor of a checkpoint, in eval mode, for ``device`` (where --precision and --channels_last
    say auto, chosen for it); ``precision`` and ``channels_last`` replace the recorded ones."""
    checkpoint = read_checkpoint(path)
    spec = checkpoint_spec(path, checkpoint)
    options = dataclasses.replace(spec.options, encoder=dataclasses.replace(spec.options.encoder, pretrained=False))
    spec = dataclasses.replace(
        spec,
        options=options,
        precision=spec.precision if precision is None else precision,
        channels_last=spec.channels_last if channels_last is None else channels_last,
    )
    try:
        predictor = Predictor(spec, torch.device(device).type)
        state = {k.removeprefix("predictor."): v for k, v in checkpoint["state_dict"].items() if k.startswith("predictor.")}
        predictor.load_state_dict(state)
    except (KeyError, TypeError, ValueError, RuntimeError) as exc:
        raise CheckpointError(f"{path}: does not fit this version of mtl ({one_line(exc)})") from exc
    return predictor.eval()
