"""Model zoo: ResNet encoders, DeepLabV3+ parts and the joint / branched / distillation models.

Importing the package is cheap (no torch): ``add_model_arguments`` is ready at once, and the first
access to the registries or ``build_model`` imports every module of the package, so a new model or
encoder is one file with a ``@register_model`` / ``@register_encoder`` decorator.
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from mtl.models.arguments import MAIN_MODELS, add_model_arguments

_REGISTRY_NAMES = ("ENCODERS", "MODELS", "build_model", "register_encoder", "register_model")
_loaded = False


def load_all() -> None:
    """Import every module of the package once, which fills the registries."""
    global _loaded
    if _loaded:
        return
    _loaded = True
    for module in pkgutil.iter_modules(__path__):
        importlib.import_module(f"{__name__}.{module.name}")


def __getattr__(name: str) -> Any:
    if name in _REGISTRY_NAMES:
        load_all()
        return getattr(importlib.import_module(f"{__name__}.registry"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["MAIN_MODELS", "add_model_arguments", "load_all", *_REGISTRY_NAMES]
