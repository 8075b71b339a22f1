"""Model zoo: ResNet encoders, DeepLabV3+ parts and the joint / branched / distillation models.

Importing the package is cheap (no torch): flags, options and ``TaskOutput`` are ready at once; the
registries and ``build_model`` import the model modules on first use, so a new model or encoder is one
file with a ``@register_model`` / ``@register_encoder`` decorator.
"""

from __future__ import annotations

import importlib
from typing import Any

from mtl.models.arguments import MAIN_MODELS, add_model_arguments, model_options
from mtl.models.options import ContextOptions, DecoderOptions, EncoderOptions, ModelOptions, TaskOutput

_REGISTRY_NAMES = ("ENCODERS", "MODELS", "build_model", "register_encoder", "register_model")


def __getattr__(name: str) -> Any:
    if name in _REGISTRY_NAMES:
        return getattr(importlib.import_module(f"{__name__}.registry"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "MAIN_MODELS",
    "ContextOptions",
    "DecoderOptions",
    "EncoderOptions",
    "ModelOptions",
    "TaskOutput",
    "add_model_arguments",
    "model_options",
    *_REGISTRY_NAMES,
]
