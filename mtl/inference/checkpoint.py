"""Reading checkpoints safely: they may come from other people (weights_only loading, a size limit, one-line errors).

A checkpoint describes what it holds in plain values (see ``mtl.inference.predictor.PredictorSpec``): typed
options are written as nested mappings (``plain``) and read back against the dataclass they came from
(``from_plain``), so that a key the current code no longer has is a warning and a value it cannot use is an
error naming the key.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

import torch

from mtl.config import warn_ignored

MAX_CHECKPOINT_BYTES = 4 << 30

T = TypeVar("T")


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


def plain(value: Any) -> Any:
    """A dataclass (nested ones included) as mappings, tuples as lists: what a weights_only checkpoint can hold."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: plain(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, Mapping):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    return value


def from_plain(cls: type[T], values: object, key: str, source: str) -> T:
    """The dataclass ``cls`` from ``plain`` values: fields missing take their defaults, keys ``cls`` has no field
    for are ignored with a warning naming them; ValueError naming the key (``key``.field) of an unusable value."""
    if not isinstance(values, Mapping):
        raise ValueError(f"{key}: expected a mapping, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {field.name: field for field in dataclasses.fields(cls) if field.init}
    for name in values:
        if name not in fields:
            warn_ignored(source, f"{key}.{name}")
    arguments = {}
    for name in fields:
        if name in values:
            arguments[name] = _typed(hints[name], values[name], f"{key}.{name}", source)
        elif fields[name].default is dataclasses.MISSING and fields[name].default_factory is dataclasses.MISSING:
            raise ValueError(f"{key}.{name}: missing")
    return cls(**arguments)


def _typed(annotation: Any, value: object, key: str, source: str) -> Any:
    """``value`` as ``annotation`` (str, int, float, bool, None, unions, tuples, mappings, dataclasses, Any)."""
    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if annotation is Any:
        return value
    if dataclasses.is_dataclass(annotation):
        return from_plain(annotation, value, key, source)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        for option in (a for a in args if a is not type(None)):
            try:
                return _typed(option, value, key, source)
            except ValueError:
                continue
        raise ValueError(f"{key}: expected {_describe(annotation)}, got {value!r}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_typed(args[0], item, f"{key}[{i}]", source) for i, item in enumerate(value))
        if len(value) != len(args):
            raise ValueError(f"{key}: expected {len(args)} values, got {value!r}")
        return tuple(_typed(a, item, f"{key}[{i}]", source) for i, (a, item) in enumerate(zip(args, value)))
    if origin in (dict, Mapping) or annotation in (dict, Mapping):
        if not isinstance(value, Mapping) or not all(isinstance(k, str) for k in value):
            raise ValueError(f"{key}: expected a mapping with names as keys, got {value!r}")
        item_type = args[1] if args else Any
        return {k: _typed(item_type, item, f"{key}.{k}", source) for k, item in value.items()}
    if annotation is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if annotation in (int, str, bool) and type(value) is annotation:
        return value
    raise ValueError(f"{key}: expected {_describe(annotation)}, got {value!r}")


def _describe(annotation: Any) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")
