"""Typed options → model parts. The models call these so that every option means the same in every model."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from torch import nn

from mtl.models.aspp import ASPP
from mtl.models.decoder import DeepLabV3PlusDecoder, RefineDecoder
from mtl.models.heads import PredictionHead
from mtl.models.options import ContextOptions, DecoderOptions, EncoderOptions, TaskOutput
from mtl.models.pretrained import load_pretrained
from mtl.models.registry import ENCODERS
from mtl.models.resnet import ResNet
from mtl.models.short_circuit import ShortCircuitASPP, ShortCircuitDecoder
from mtl.models.vortex import VortexPooling

CONTEXTS: dict[str, Callable[[ContextOptions, int], nn.Module]] = {
    "aspp": lambda options, in_channels: ASPP(in_channels, options.channels, options.aspp_rates, options.se),
    "vortex": lambda options, in_channels: VortexPooling(in_channels, options.channels, options.vortex_rates, options.se),
}


def build_encoder(options: EncoderOptions) -> ResNet:
    encoder = ENCODERS[options.name](options.dilations)
    if options.pretrained:
        load_pretrained(encoder, encoder.weights_file, options.pretrained_path)
    return encoder


def build_context(options: ContextOptions, in_channels: int) -> nn.Module:
    if options.short_circuit:
        return ShortCircuitASPP(in_channels, options.channels)
    if options.kind not in CONTEXTS:
        raise ValueError(f"unknown context module {options.kind!r}; known: {', '.join(sorted(CONTEXTS))}")
    return CONTEXTS[options.kind](options, in_channels)


def build_head(options: DecoderOptions, outputs: Mapping[str, TaskOutput], in_channels: int) -> PredictionHead:
    return PredictionHead(in_channels, outputs, options.kernel)


def build_decoder(options: DecoderOptions, in_channels: int, encoder: ResNet, outputs: Mapping[str, TaskOutput]) -> nn.Module:
    """Decoder with its head; ``forward(context, features) -> (predictions dict, features)``."""
    if options.short_circuit:
        return ShortCircuitDecoder(in_channels, build_head(options, outputs, in_channels))
    too_coarse = [s for s in options.extra_skips if s >= encoder.bottleneck_scale]
    if too_coarse:
        dilations = ",".join("T" if d else "F" for d in encoder.dilations)
        raise ValueError(
            f"--extra_skips {too_coarse[0]} needs the bottleneck below that scale, but --dilations "
            f"{dilations} puts it at scale {encoder.bottleneck_scale}"
        )
    head = build_head(options, outputs, options.channels)
    return DeepLabV3PlusDecoder(
        in_channels, encoder.channels, head, options.channels, options.skip_channels, options.blocks, options.extra_skips, options.se
    )


def build_refine_decoder(options: DecoderOptions, in_channels: int, outputs: Mapping[str, TaskOutput]) -> RefineDecoder:
    """The distillation's final decoder: the decoder's refinement without the skip (just the head when short-circuited)."""
    blocks = 0 if options.short_circuit else options.blocks
    channels = options.channels if blocks else in_channels
    return RefineDecoder(in_channels, build_head(options, outputs, channels), channels, blocks, options.se)
