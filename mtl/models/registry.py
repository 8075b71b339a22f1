"""Name → class registries for models and encoders, so adding one is a file and a decorator (no if/elif)."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping
from typing import TypeVar

from torch import nn

T = TypeVar("T")

MODELS: dict[str, type[nn.Module]] = {}
ENCODERS: dict[str, Callable[..., nn.Module]] = {}


def _register(table: dict[str, T], kind: str, name: str) -> Callable[[T], T]:
    def decorator(obj: T) -> T:
        if name in table:
            raise ValueError(f"{kind} {name!r} is registered twice")
        table[name] = obj
        return obj

    return decorator


def register_model(name: str) -> Callable[[type[nn.Module]], type[nn.Module]]:
    """Class decorator: the class is built as ``cls(cfg, outputs_desc)`` for ``--model_name name``."""
    return _register(MODELS, "model", name)


def register_encoder(name: str) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator for a factory ``fn(dilations) -> encoder`` used for ``--model_encoder_name name``."""
    return _register(ENCODERS, "encoder", name)


def lookup(table: Mapping[str, T], kind: str, name: str) -> T:
    if name not in table:
        raise ValueError(f"unknown {kind} {name!r}; known: {', '.join(sorted(table))}")
    return table[name]


def build_model(cfg: argparse.Namespace, outputs_desc: Mapping[str, int]) -> nn.Module:
    """Build ``cfg.model_name`` for ``outputs_desc`` (task → channels, e.g. {"semseg": 19, "depth": 1})."""
    if not outputs_desc:
        raise ValueError("outputs_desc is empty: a model needs at least one task")
    return lookup(MODELS, "model", cfg.model_name)(cfg, dict(outputs_desc))
