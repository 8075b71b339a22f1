"""Loss and gradient weighting methods as plug-ins: one module per method, registered with
``@register_weighting`` (see ``mtl.weighting.base``)."""

from mtl.weighting.base import WEIGHTINGS, Weighting, build_weighting, register_weighting, renamed_flags

__all__ = ["WEIGHTINGS", "Weighting", "build_weighting", "register_weighting", "renamed_flags"]
