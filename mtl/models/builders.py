"""cfg → model parts. The models call these so that every flag means the same in every model."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Mapping

from torch import nn

from mtl.models.adabins import AdaBinsHead
from mtl.models.aspp import ASPP
from mtl.models.decoder import DeepLabV3PlusDecoder, RefineDecoder
from mtl.models.heads import PredictionHead
from mtl.models.pretrained import load_pretrained
from mtl.models.registry import ENCODERS, lookup
from mtl.models.resnet import ResNet
from mtl.models.short_circuit import ShortCircuitASPP, ShortCircuitDecoder
from mtl.models.vortex import VortexPooling

DEFAULT_DEPTH_TARGET_RANGE = (-1.0, 10.0)

CONTEXTS: dict[str, Callable[[argparse.Namespace, int], nn.Module]] = {
    "aspp": lambda cfg, in_channels: ASPP(in_channels, cfg.aspp_channels, cfg.aspp_rates, cfg.se),
    "vortex": lambda cfg, in_channels: VortexPooling(in_channels, cfg.aspp_channels, cfg.vortex_rates, cfg.se),
}


def check_config(cfg: argparse.Namespace) -> None:
    """Refuse flag combinations that have no meaning, naming the flags."""
    if cfg.short_circuit:
        clashes = [
            flag
            for flag, used in (("--context vortex", cfg.context != "aspp"), ("--se", cfg.se), ("--extra_skips", bool(cfg.extra_skips)))
            if used
        ]
        if clashes:
            raise ValueError(f"--short_circuit replaces ASPP and the decoder; it cannot be combined with {', '.join(clashes)}")
    else:
        decoder_blocks(cfg)


def head_kernel(cfg: argparse.Namespace) -> int:
    if cfg.head_kernel is not None:
        return cfg.head_kernel
    return 1 if cfg.short_circuit else 3


def decoder_blocks(cfg: argparse.Namespace) -> int:
    """3×3 ConvBNReLU blocks per decoder: --decoder_depth counts the 3×3 convs, a 3×3 head included."""
    blocks = cfg.decoder_depth - (1 if head_kernel(cfg) == 3 else 0)
    if blocks < 1:
        raise ValueError(
            f"--decoder_depth {cfg.decoder_depth} with a 3×3 prediction conv leaves no feature block; "
            "use --decoder_depth 2 or more, or --head_kernel 1"
        )
    return blocks


def build_encoder(cfg: argparse.Namespace) -> ResNet:
    encoder = lookup(ENCODERS, "encoder", cfg.model_encoder_name)(cfg.dilations)
    if cfg.pretrained:
        load_pretrained(encoder, encoder.weights_file, cfg.pretrained_path)
    return encoder


def build_context(cfg: argparse.Namespace, in_channels: int) -> nn.Module:
    if cfg.short_circuit:
        return ShortCircuitASPP(in_channels, cfg.aspp_channels)
    return lookup(CONTEXTS, "context module", cfg.context)(cfg, in_channels)


def build_head(cfg: argparse.Namespace, outputs_desc: Mapping[str, int], in_channels: int) -> PredictionHead:
    special: dict[str, nn.Module] = {}
    if cfg.depth_head == "adabins" and "depth" in outputs_desc:
        if outputs_desc["depth"] != 1:
            raise ValueError(f"--depth_head adabins predicts one depth channel, outputs_desc asks {outputs_desc['depth']}")
        value_range = getattr(cfg, "depth_target_range", DEFAULT_DEPTH_TARGET_RANGE)
        special["depth"] = AdaBinsHead(in_channels, cfg.adabins_bins, cfg.adabins_layers, cfg.adabins_heads, value_range)
    return PredictionHead(in_channels, outputs_desc, head_kernel(cfg), special)


def build_decoder(cfg: argparse.Namespace, in_channels: int, encoder: ResNet, outputs_desc: Mapping[str, int]) -> nn.Module:
    """Decoder with its head; ``forward(context, features) -> (predictions dict, features)``."""
    if cfg.short_circuit:
        return ShortCircuitDecoder(in_channels, build_head(cfg, outputs_desc, in_channels))
    too_coarse = [s for s in cfg.extra_skips if s >= encoder.bottleneck_scale]
    if too_coarse:
        raise ValueError(
            f"--extra_skips {too_coarse[0]} needs the bottleneck below that scale, but --dilations "
            f"{','.join('T' if d else 'F' for d in cfg.dilations)} puts it at scale {encoder.bottleneck_scale}"
        )
    head = build_head(cfg, outputs_desc, cfg.decoder_channels)
    return DeepLabV3PlusDecoder(
        in_channels, encoder.channels, head, cfg.decoder_channels, cfg.skip_channels, decoder_blocks(cfg), cfg.extra_skips, cfg.se
    )


def build_refine_decoder(cfg: argparse.Namespace, in_channels: int, outputs_desc: Mapping[str, int]) -> RefineDecoder:
    """The distillation's final decoder: the decoder's refinement without the skip (just the head when short-circuited)."""
    blocks = 0 if cfg.short_circuit else decoder_blocks(cfg)
    channels = cfg.decoder_channels if blocks else in_channels
    return RefineDecoder(in_channels, build_head(cfg, outputs_desc, channels), channels, blocks, cfg.se)
