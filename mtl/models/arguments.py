"""Command-line flags of the model zoo (course names first), shared by training and `mtl complexity`.

Torch-free on purpose: commands add these flags when the CLI is built, and `mtl --help` must stay quick.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator

from mtl.cli.args import bool_list, int_list, positive_int, str2bool

MAIN_MODELS = ("deeplabv3p", "branched", "distillation")
EXTRA_SKIP_SCALES = (2, 8)


class _RegisteredNames:
    """argparse ``choices`` that read a registry only when a value is checked or help is shown."""

    def __init__(self, table: str):
        self.table = table

    def _names(self) -> list[str]:
        import mtl.models

        return sorted(getattr(mtl.models, self.table))

    def __contains__(self, name: object) -> bool:
        return name in self._names()

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())


def _dilations(value: str) -> tuple[bool, ...]:
    flags = bool_list(value)
    if len(flags) != 3:
        raise argparse.ArgumentTypeError(f"expected 3 booleans for layer2, layer3, layer4 (e.g. F,F,T), got {value!r}")
    return flags


def _positive_ints(value: str) -> tuple[int, ...]:
    numbers = int_list(value)
    if not numbers or min(numbers) <= 0:
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {value!r}")
    return numbers


def _odd_positive_ints(value: str) -> tuple[int, ...]:
    numbers = _positive_ints(value)
    if any(n % 2 == 0 for n in numbers):
        raise argparse.ArgumentTypeError(f"expected odd rates (each branch averages a rate × rate window), got {value!r}")
    return numbers


def _extra_skips(value: str) -> tuple[int, ...]:
    scales = int_list(value)
    if any(s not in EXTRA_SKIP_SCALES for s in scales) or len(set(scales)) != len(scales):
        raise argparse.ArgumentTypeError(f"expected distinct scales among {EXTRA_SKIP_SCALES}, got {value!r}")
    return scales


def _square(value: str) -> int:
    number = positive_int(value)
    if math.isqrt(number) ** 2 != number:
        raise argparse.ArgumentTypeError(f"expected a square number (latents come from a √n × √n grid), got {value}")
    return number


def _flag(group: argparse._ArgumentGroup, name: str, help: str) -> None:
    group.add_argument(name, type=str2bool, nargs="?", const=True, default=False, help=help)


def add_model_arguments(parser: argparse.ArgumentParser, several_models: bool = False) -> argparse._ArgumentGroup:
    """Add the "model" argument group. ``several_models``: ``--model_name`` takes one or more names
    (default: the three main models; used by `mtl complexity`)."""
    group = parser.add_argument_group("model")
    if several_models:
        group.add_argument(
            "--model_name", nargs="+", action="extend", choices=_RegisteredNames("MODELS"), default=None, metavar="NAME",
            help=f"one or more of %(choices)s (default: {' '.join(MAIN_MODELS)})",
        )
    else:
        group.add_argument(
            "--model_name", choices=_RegisteredNames("MODELS"), default="deeplabv3p", metavar="NAME",
            help="model architecture: %(choices)s (default %(default)s)",
        )
    group.add_argument(
        "--model_encoder_name", choices=_RegisteredNames("ENCODERS"), default="resnet34", metavar="NAME",
        help="encoder: %(choices)s (default %(default)s)",
    )
    _flag(group, "--pretrained", "initialise the encoder with ImageNet weights (torchvision file, read locally)")
    group.add_argument(
        "--pretrained_path", default=None,
        help="torchvision ResNet weights file (default: <torch hub dir>/checkpoints/<official file name>)",
    )
    group.add_argument(
        "--dilations", type=_dilations, default=(False, False, False), metavar="B,B,B",
        help="replace the stride of layer2,layer3,layer4 by dilation (F,F,T: output stride 16; F,T,T: 8); "
        "default F,F,F as in the course template",
    )
    group.add_argument("--aspp_rates", type=_positive_ints, default=(3, 6, 9), metavar="R,R,R", help="ASPP atrous rates")
    group.add_argument("--aspp_channels", type=positive_int, default=256, help="channels of ASPP / vortex pooling")
    group.add_argument("--decoder_channels", type=positive_int, default=256, help="channels of the decoder features")
    group.add_argument("--skip_channels", type=positive_int, default=48, help="channels of each projected skip")
    group.add_argument(
        "--decoder_depth", type=positive_int, default=2,
        help="3×3 convolutions after the skip concat; with --head_kernel 3 the last of them is the prediction conv",
    )
    group.add_argument(
        "--head_kernel", type=int, choices=(1, 3), default=None,
        help="kernel of the prediction conv (default 3; 1 with --short_circuit, as the template)",
    )
    _flag(group, "--short_circuit", "the course template's start: ASPP = one 1×1 ConvBNReLU, decoder = upsample + 1×1 conv")
    group.add_argument("--context", choices=("aspp", "vortex"), default="aspp", help="context module on the bottleneck")
    group.add_argument(
        "--vortex_rates", type=_odd_positive_ints, default=(3, 9, 27), metavar="R,R,R", help="vortex pooling rates (odd)"
    )
    _flag(group, "--se", "Squeeze-and-Excitation (r=16) after the ASPP projection and after each decoder block")
    group.add_argument(
        "--extra_skips", type=_extra_skips, default=(), metavar="S[,S]",
        help="extra decoder skip connections at these scales (2 and/or 8) besides 4",
    )
    _flag(group, "--sa_scale", "learned scale α (initialised to 0) on the distillation self-attention features")
    _flag(group, "--task_encoders", "one encoder per task instead of a shared one (branched, distillation)")
    group.add_argument("--depth_head", choices=("plain", "adabins"), default="plain", help="depth prediction head")
    group.add_argument("--adabins_bins", type=_square, default=256, help="adaptive bins (a square number)")
    group.add_argument("--adabins_layers", type=positive_int, default=2, help="transformer layers of the adaptive-bins head")
    group.add_argument("--adabins_heads", type=positive_int, default=4, help="attention heads of the adaptive-bins head")
    return group
