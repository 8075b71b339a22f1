"""Model zoo: ResNet encoders, DeepLabV3+ parts and the joint / branched / distillation models.

Every module of this package is imported here, so a new model or encoder is one file with a
``@register_model`` / ``@register_encoder`` decorator.
"""

from __future__ import annotations

import importlib
import pkgutil

from mtl.models.arguments import MAIN_MODELS, add_model_arguments
from mtl.models.registry import ENCODERS, MODELS, build_model, register_encoder, register_model

for _module in pkgutil.iter_modules(__path__):
    importlib.import_module(f"{__name__}.{_module.name}")

__all__ = ["ENCODERS", "MAIN_MODELS", "MODELS", "add_model_arguments", "build_model", "register_encoder", "register_model"]
