"""Name → class registries for models and encoders, so adding one is a file and a decorator (no if/elif).

Torch-free: the flags check names against these registries, which import the model modules only then."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

from mtl.models.options import ModelOptions, TaskOutput
from mtl.plugins import Registry

if TYPE_CHECKING:
    from torch import nn

MODELS: Registry[type[nn.Module]] = Registry("model", "mtl.models")
ENCODERS: Registry[Callable[..., nn.Module]] = Registry("encoder", "mtl.models")

# Class decorator: the class is built as ``cls(outputs, options)`` for ``--model_name name``.
register_model = MODELS.register
# Decorator for a factory ``fn(dilations) -> encoder`` used for ``--model_encoder_name name``.
register_encoder = ENCODERS.register


def build_model(name: str, outputs: Mapping[str, TaskOutput], options: ModelOptions = ModelOptions()) -> nn.Module:
    """Build model ``name`` producing ``outputs`` (task → TaskOutput, e.g. {"semseg": TaskOutput(19), …})."""
    if not outputs:
        raise ValueError("a model needs at least one task output")
    return MODELS[name](dict(outputs), options)
