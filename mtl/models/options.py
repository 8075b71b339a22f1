"""Typed options of the model zoo's building blocks, and the outputs a model must produce.

Torch-free: the command line maps its flags onto these (``mtl.models.arguments.model_options``), and
the models and builders take them instead of the flag namespace.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class TaskOutput:
    """What a model must produce for one task: ``channels`` maps, or a dedicated head built on the
    decoder's feature width (``head(in_channels) -> nn.Module`` returning B×channels×h×w)."""

    channels: int
    head: Callable[[int], nn.Module] | None = None


@dataclass(frozen=True)
class EncoderOptions:
    name: str = "resnet34"
    dilations: tuple[bool, bool, bool] = (False, False, False)  # layer2, layer3, layer4: stride → dilation
    pretrained: bool = False
    pretrained_path: str | None = None


@dataclass(frozen=True)
class ContextOptions:
    """The context module on the bottleneck: ASPP, vortex pooling, or the template's short circuit."""

    kind: str = "aspp"
    channels: int = 256
    aspp_rates: tuple[int, ...] = (3, 6, 9)
    vortex_rates: tuple[int, ...] = (3, 9, 27)
    se: bool = False
    short_circuit: bool = False


@dataclass(frozen=True)
class DecoderOptions:
    channels: int = 256
    skip_channels: int = 48
    depth: int = 2  # 3×3 convolutions after the skip concat, a 3×3 head included
    head_kernel: int | None = None  # None: 3, or 1 when short-circuited (the template)
    extra_skips: tuple[int, ...] = ()
    se: bool = False
    short_circuit: bool = False

    @property
    def kernel(self) -> int:
        if self.head_kernel is not None:
            return self.head_kernel
        return 1 if self.short_circuit else 3

    @property
    def blocks(self) -> int:
        """3×3 ConvBNReLU blocks per decoder: ``depth`` counts the 3×3 convs, a 3×3 head included."""
        return self.depth - (1 if self.kernel == 3 else 0)


@dataclass(frozen=True)
class ModelOptions:
    encoder: EncoderOptions = EncoderOptions()
    context: ContextOptions = ContextOptions()
    decoder: DecoderOptions = DecoderOptions()
    task_encoders: bool = False  # one encoder per task (branched, distillation)
    sa_scale: bool = False  # learned scale on the distillation self-attention features
