"""Command-line flags of the model zoo (course names first) and their mapping onto typed options.

Torch-free on purpose: commands add these flags when the CLI is built, and `mtl --help` must stay quick.
Model and encoder names are checked against their registries, which import the model modules (and torch)
only when a name is checked, never for `--help`.
"""

from __future__ import annotations

import argparse

from mtl.flags import bool_flag, bool_list, int_list, positive_int
from mtl.models.options import ContextOptions, DecoderOptions, EncoderOptions, ModelOptions
from mtl.models.registry import ENCODERS, MODELS

MAIN_MODELS = ("deeplabv3p", "branched", "distillation")
EXTRA_SKIP_SCALES = (2, 8)


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


def add_model_arguments(parser: argparse.ArgumentParser, several_models: bool = False) -> argparse._ArgumentGroup:
    """Add the "model" argument group. ``several_models``: ``--model_name`` takes one or more names
    (default: the three main models; used by `mtl complexity`)."""
    group = parser.add_argument_group("model")
    model = ModelOptions()  # every default below is the typed options' own
    encoder, context, decoder = model.encoder, model.context, model.decoder
    models = f"{', '.join(MAIN_MODELS)} or another registered model"
    if several_models:
        group.add_argument(
            "--model_name", nargs="+", action="extend", choices=MODELS.choices(), default=None, metavar="NAME",
            help=f"one or more models: {models} (default: {' '.join(MAIN_MODELS)})",
        )
    else:
        group.add_argument(
            "--model_name", choices=MODELS.choices(), default="deeplabv3p", metavar="NAME",
            help=f"model architecture: {models} (default %(default)s)",
        )
    group.add_argument(
        "--model_encoder_name", choices=ENCODERS.choices(), default=encoder.name, metavar="NAME",
        help="encoder: resnet18, resnet34, resnet50, resnet101 or another registered encoder (default %(default)s)",
    )
    bool_flag(group, "--pretrained", encoder.pretrained, "initialise the encoder with ImageNet weights (torchvision file, read locally)")
    group.add_argument(
        "--pretrained_path", default=encoder.pretrained_path,
        help="torchvision ResNet weights file (default: <torch hub dir>/checkpoints/<official file name>)",
    )
    group.add_argument(
        "--dilations", type=_dilations, default=encoder.dilations, metavar="B,B,B",
        help="replace the stride of layer2,layer3,layer4 by dilation (F,F,T: output stride 16; F,T,T: 8); "
        "default F,F,F as in the course template",
    )
    group.add_argument(
        "--aspp_rates", type=_positive_ints, default=context.aspp_rates, metavar="R,R,R", help="ASPP atrous rates"
    )
    group.add_argument(
        "--aspp_channels", type=positive_int, default=context.channels, help="channels of ASPP / vortex pooling"
    )
    group.add_argument(
        "--decoder_channels", type=positive_int, default=decoder.channels, help="channels of the decoder features"
    )
    group.add_argument(
        "--skip_channels", type=positive_int, default=decoder.skip_channels, help="channels of each projected skip"
    )
    group.add_argument(
        "--decoder_depth", type=positive_int, default=decoder.depth,
        help="3×3 convolutions after the skip concat; with --head_kernel 3 the last of them is the prediction conv",
    )
    group.add_argument(
        "--head_kernel", type=int, choices=(1, 3), default=decoder.head_kernel,
        help="kernel of the prediction conv (default 3; 1 with --short_circuit, as the template)",
    )
    bool_flag(group, "--short_circuit", decoder.short_circuit, "the course template's start: ASPP = one 1×1 ConvBNReLU, decoder = upsample + 1×1 conv")
    group.add_argument("--context", choices=("aspp", "vortex"), default=context.kind, help="context module on the bottleneck")
    group.add_argument(
        "--vortex_rates", type=_odd_positive_ints, default=context.vortex_rates, metavar="R,R,R",
        help="vortex pooling rates (odd)",
    )
    bool_flag(group, "--se", decoder.se, "Squeeze-and-Excitation (r=16) after the ASPP projection and after each decoder block")
    group.add_argument(
        "--extra_skips", type=_extra_skips, default=decoder.extra_skips, metavar="S[,S]",
        help="extra decoder skip connections at these scales (2 and/or 8) besides 4",
    )
    bool_flag(group, "--sa_scale", model.sa_scale, "learned scale α (initialised to 0) on the distillation self-attention features")
    bool_flag(group, "--task_encoders", model.task_encoders, "one encoder per task instead of a shared one (branched, distillation)")
    return group


def model_options(flags: argparse.Namespace) -> ModelOptions:
    """The one place the model flags map onto typed options; refuses meaningless combinations naming the flags."""
    if flags.short_circuit:
        clashes = [
            flag
            for flag, used in (("--context vortex", flags.context != "aspp"), ("--se", flags.se), ("--extra_skips", bool(flags.extra_skips)))
            if used
        ]
        if clashes:
            raise ValueError(f"--short_circuit replaces ASPP and the decoder; it cannot be combined with {', '.join(clashes)}")
    decoder = DecoderOptions(
        channels=flags.decoder_channels,
        skip_channels=flags.skip_channels,
        depth=flags.decoder_depth,
        head_kernel=flags.head_kernel,
        extra_skips=tuple(flags.extra_skips),
        se=flags.se,
        short_circuit=flags.short_circuit,
    )
    if not flags.short_circuit and decoder.blocks < 1:
        raise ValueError(
            f"--decoder_depth {flags.decoder_depth} with a 3×3 prediction conv leaves no feature block; "
            "use --decoder_depth 2 or more, or --head_kernel 1"
        )
    return ModelOptions(
        encoder=EncoderOptions(flags.model_encoder_name, tuple(flags.dilations), flags.pretrained, flags.pretrained_path),
        context=ContextOptions(
            kind=flags.context,
            channels=flags.aspp_channels,
            aspp_rates=tuple(flags.aspp_rates),
            vortex_rates=tuple(flags.vortex_rates),
            se=flags.se,
            short_circuit=flags.short_circuit,
        ),
        decoder=decoder,
        task_encoders=flags.task_encoders,
        sa_scale=flags.sa_scale,
    )
