"""Model zoo: registry, flags, parameter counts against the published figures, shapes, gradients."""

from __future__ import annotations

import argparse

import pytest
import torch
from torch import nn

from mtl.models import MODELS, add_model_arguments, register_model
from test_models_helpers import BOTH, build, make_cfg, num_params

# Narrow decoders keep the shape and gradient tests quick; the structure is the same at any width.
SMALL = ("--model_encoder_name", "resnet18", "--aspp_channels", "32", "--decoder_channels", "32", "--skip_channels", "8")

# torchvision's ResNet-34 has 21,797,672 parameters, of which fc (512·1000 + 1000) is dropped.
RESNET34_ENCODER = 21_797_672 - 513_000


def meta_model(*flags: str, outputs_desc=BOTH) -> nn.Module:
    """Build on the meta device: exact parameter shapes without allocating or initialising them."""
    with torch.device("meta"):
        return build(make_cfg(*flags), outputs_desc)


@pytest.mark.parametrize(
    ("name", "expected", "published_range"),
    [
        ("deeplabv3p", 26_166_708, (26.17e6, 26.72e6)),
        ("branched", 31_002_644, (31.00e6, 32.14e6)),
        ("distillation", 34_588_712, (34.59e6, 35.69e6)),
    ],
)
def test_default_parameter_counts_match_solution_b(name, expected, published_range):
    count = num_params(meta_model("--model_name", name))
    assert count == expected
    lo, hi = published_range
    assert lo - 5e3 <= count <= hi + 5e3  # published figures are rounded to 10 k


def test_default_count_decomposes_into_the_documented_parts():
    # Independent arithmetic: ASPP (1×1, three 3×3 atrous, pooling, 5·256 → 256 projection, each + BN),
    # decoder (64 → 48 skip, 304 → 256 3×3 block), head 3×3 conv 256 → 20 with bias.
    aspp = (512 * 256 + 512) * 2 + (512 * 256 * 9 + 512) * 3 + (5 * 256 * 256 + 512)
    decoder = (64 * 48 + 96) + (304 * 256 * 9 + 512)
    head = 20 * (256 * 9 + 1)
    assert RESNET34_ENCODER + aspp + decoder + head == 26_166_708
    model = meta_model()
    assert num_params(model.encoder) == RESNET34_ENCODER
    assert num_params(model.context) == aspp
    assert num_params(model.decoder.head) == head


@pytest.mark.parametrize(("name", "expected"), [("deeplabv3p", 26_716_084), ("branched", 32_142_356)])
def test_head_kernel_1_reproduces_solution_a(name, expected):
    assert num_params(meta_model("--model_name", name, "--head_kernel", "1")) == expected


def test_short_circuit_is_the_course_template():
    model = meta_model("--short_circuit")
    # One 1×1 ConvBNReLU 512 → 256 and a 1×1 conv 256 → 20 with bias on top of the encoder.
    assert num_params(model) == RESNET34_ENCODER + (512 * 256 + 512) + (256 * 20 + 20)
    assert model.decoder.head.conv.kernel_size == (1, 1)


def test_variants_change_the_parameter_count_as_designed():
    base = num_params(meta_model("--model_name", "distillation"))
    # SA scale: one α per attention module.
    assert num_params(meta_model("--model_name", "distillation", "--sa_scale")) == base + 2
    # Deeper decoder: one more 256 → 256 3×3 ConvBNReLU in each of the four decoders.
    assert num_params(meta_model("--model_name", "distillation", "--decoder_depth", "3")) == base + 4 * (256 * 256 * 9 + 512)
    # Task encoders: a second ResNet-34.
    assert num_params(meta_model("--model_name", "branched", "--task_encoders")) == 31_002_644 + RESNET34_ENCODER
    # SE after the ASPP projection and the decoder block (256 → 16 → 256 with biases, twice).
    se = 256 * 16 + 16 + 16 * 256 + 256
    assert num_params(meta_model("--se")) == 26_166_708 + 2 * se


@pytest.mark.parametrize(
    ("dilations", "channels"),
    [
        ("F,F,F", {1: 3, 2: 64, 4: 64, 8: 128, 16: 256, 32: 512}),
        ("F,F,T", {1: 3, 2: 64, 4: 64, 8: 128, 16: 512}),
        ("F,T,T", {1: 3, 2: 64, 4: 64, 8: 512}),
    ],
)
def test_encoder_pyramid_scales_and_channels(dilations, channels):
    model = build(make_cfg("--model_encoder_name", "resnet18", "--dilations", dilations), BOTH).eval()
    with torch.no_grad():
        features = model.encoder(torch.randn(1, 3, 64, 64))
    assert {scale: f.shape[1] for scale, f in features.items()} == channels
    assert all(f.shape[-2:] == (64 // scale, 64 // scale) for scale, f in features.items())
    assert model.encoder.bottleneck_scale == max(channels)
    assert model.encoder.channels == channels


def test_resnet34_pyramid_matches_spec():
    with torch.device("meta"):
        encoder = build(make_cfg("--dilations", "F,F,T"), BOTH).encoder
    assert encoder.channels == {1: 3, 2: 64, 4: 64, 8: 128, 16: 512}
    assert encoder.bottleneck_scale == 16


def _randomise_batchnorm(module: nn.Module, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    for bn in module.modules():
        if isinstance(bn, nn.BatchNorm2d):
            bn.weight.data = torch.rand(bn.weight.shape, generator=generator) + 0.5
            bn.bias.data = torch.randn(bn.bias.shape, generator=generator) * 0.1
            bn.running_mean = torch.randn(bn.running_mean.shape, generator=generator) * 0.1
            bn.running_var = torch.rand(bn.running_var.shape, generator=generator) + 0.5


@pytest.mark.parametrize(("dilations", "step"), [("F,F,T", 2), ("F,T,T", 4)])
def test_dilated_encoder_computes_the_strided_one_densely(dilations, step):
    """Atrous equivalence: same weights, the dilated bottleneck subsampled equals the strided one."""
    strided = build(make_cfg("--model_encoder_name", "resnet18"), BOTH).encoder
    _randomise_batchnorm(strided)
    dilated = build(make_cfg("--model_encoder_name", "resnet18", "--dilations", dilations), BOTH).encoder
    dilated.load_state_dict(strided.state_dict())
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        coarse = strided.eval()(x)[32]
        dense = dilated.eval()(x)[dilated.bottleneck_scale]
    assert dense.shape[-1] == coarse.shape[-1] * step
    torch.testing.assert_close(dense[..., ::step, ::step], coarse, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["deeplabv3p", "branched", "distillation"])
@pytest.mark.parametrize("outputs_desc", [BOTH, {"depth": 1}, {"semseg": 19}], ids=["both", "depth", "semseg"])
def test_outputs_have_the_input_size(name, outputs_desc):
    model = build(make_cfg("--model_name", name, *SMALL), outputs_desc).eval()
    for height, width in ((64, 64), (50, 70)):
        with torch.no_grad():
            out = model(torch.randn(1, 3, height, width))
        assert list(out) == list(outputs_desc)
        for task, channels in outputs_desc.items():
            predictions = out[task] if name == "distillation" else [out[task]]
            assert len(predictions) == (2 if name == "distillation" else 1)
            assert all(p.shape == (1, channels, height, width) for p in predictions)


@pytest.mark.parametrize(
    "flags",
    [
        ("--model_name", "deeplabv3p", "--depth_head", "adabins", "--adabins_bins", "16", "--se", "--extra_skips", "2,8", "--dilations", "F,F,T"),
        ("--model_name", "branched", "--context", "vortex", "--task_encoders", "--dilations", "F,T,T", "--extra_skips", "2"),
        ("--model_name", "distillation", "--sa_scale", "--depth_head", "adabins", "--adabins_bins", "16"),
        ("--model_name", "distillation", "--short_circuit"),
    ],
    ids=["joint-variants", "branched-variants", "distillation-variants", "distillation-short-circuit"],
)
def test_gradients_reach_every_parameter(flags):
    """No unused parameters (DDP would need find_unused_parameters), and the output size is the input's."""
    torch.manual_seed(0)
    model = build(make_cfg(*SMALL, *flags), BOTH).train()
    out = model(torch.randn(2, 3, 34, 42))  # 2 images: the image-pooling BatchNorm needs > 1 value
    loss = sum(p.float().square().mean() for v in out.values() for p in (v if isinstance(v, list) else [v]))
    loss.backward()
    unused = [name for name, p in model.named_parameters() if p.grad is None]
    assert unused == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    for value in out.values():
        for p in value if isinstance(value, list) else [value]:
            assert p.shape[-2:] == (34, 42)


def test_compiles_as_one_graph_with_channels_last_and_bf16():
    model = build(make_cfg(*SMALL, "--depth_head", "adabins", "--adabins_bins", "16", "--se", "--extra_skips", "2"), BOTH).eval()
    model = model.to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 64, 64).to(memory_format=torch.channels_last)
    compiled = torch.compile(model, fullgraph=True, backend="eager")  # fails on graph breaks (.item(), data-dependent ifs)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out = compiled(x)
        reference = model(x)
    assert out["semseg"].dtype == torch.bfloat16
    for task in BOTH:
        torch.testing.assert_close(out[task], reference[task])


def test_build_model_rejects_unknown_names_listing_the_known_ones():
    cfg = make_cfg()
    cfg.model_name = "unet"
    with pytest.raises(ValueError, match=r"unknown model 'unet'; known: .*branched.*deeplabv3p.*distillation"):
        build(cfg, BOTH)


def test_register_model_adds_a_buildable_model():
    @register_model("tiny_test_model")
    class Tiny(nn.Module):
        def __init__(self, outputs, options):
            super().__init__()
            self.conv = nn.Conv2d(3, sum(out.channels for out in outputs.values()), 1)

        def forward(self, x):
            return {"depth": self.conv(x)}

    try:
        cfg = make_cfg()
        cfg.model_name = "tiny_test_model"
        assert isinstance(build(cfg, {"depth": 1}), Tiny)
        with pytest.raises(ValueError, match="registered twice"):
            register_model("tiny_test_model")(Tiny)
    finally:
        MODELS.unregister("tiny_test_model")


def test_flag_defaults():
    cfg = make_cfg()
    assert cfg.model_name == "deeplabv3p" and cfg.model_encoder_name == "resnet34"
    assert cfg.pretrained is False and cfg.pretrained_path is None
    assert cfg.dilations == (False, False, False)
    assert cfg.aspp_rates == (3, 6, 9) and cfg.aspp_channels == 256
    assert (cfg.decoder_channels, cfg.skip_channels, cfg.decoder_depth, cfg.head_kernel) == (256, 48, 2, None)
    assert cfg.short_circuit is False and cfg.extra_skips == () and cfg.context == "aspp" and cfg.depth_head == "plain"


@pytest.mark.parametrize(
    ("flags", "attribute", "value"),
    [
        (["--pretrained"], "pretrained", True),
        (["--pretrained", "no"], "pretrained", False),
        (["--pretrained", "Yes"], "pretrained", True),
        (["--dilations", "F,F,T"], "dilations", (False, False, True)),
        (["--dilations", "[false,true,1]"], "dilations", (False, True, True)),
        (["--aspp_rates", "6,12,18"], "aspp_rates", (6, 12, 18)),
        (["--extra_skips", "2,8"], "extra_skips", (2, 8)),
        (["--short_circuit", "t"], "short_circuit", True),
    ],
)
def test_flag_parsing(flags, attribute, value):
    assert getattr(make_cfg(*flags), attribute) == value


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--dilations", "F,T"], "argument --dilations: expected 3 booleans"),
        (["--dilations", "F,F,maybe"], "argument --dilations: expected a boolean"),
        (["--aspp_rates", "3,0,9"], "argument --aspp_rates: expected comma-separated positive integers"),
        (["--vortex_rates", "3,6"], "argument --vortex_rates: expected odd rates"),
        (["--extra_skips", "4"], "argument --extra_skips: expected distinct scales among (2, 8)"),
        (["--adabins_bins", "10"], "argument --adabins_bins: expected a square number"),
        (["--model_encoder_name", "vgg16"], "argument --model_encoder_name: invalid choice: 'vgg16'"),
        (["--head_kernel", "5"], "argument --head_kernel: invalid choice: 5"),
    ],
)
def test_bad_flags_are_refused_naming_the_flag(flags, message, capsys):
    with pytest.raises(SystemExit):
        make_cfg(*flags)
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--short_circuit", "--se"], "--short_circuit replaces ASPP and the decoder; it cannot be combined with --se"),
        (["--decoder_depth", "1"], "--decoder_depth 1 with a 3×3 prediction conv leaves no feature block"),
        (["--dilations", "F,T,T", "--extra_skips", "8"], "--extra_skips 8 needs the bottleneck below that scale, but --dilations F,T,T"),
        (["--task_encoders"], "--task_encoders needs per-task branches"),
    ],
)
def test_meaningless_flag_combinations_are_refused(flags, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        meta_model(*flags)


def test_several_models_mode_for_complexity():
    parser = argparse.ArgumentParser()
    add_model_arguments(parser, several_models=True)
    assert parser.parse_args([]).model_name is None
    assert parser.parse_args(["--model_name", "branched", "distillation"]).model_name == ["branched", "distillation"]
    assert parser.parse_args(["--model_name", "branched", "--model_name", "deeplabv3p"]).model_name == ["branched", "deeplabv3p"]
