"""Model parts against independent computations: ASPP, self-attention, heads, adaptive bins, decoders."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from mtl.models.adabins import AdaBinsHead
from mtl.models.aspp import ASPP
from mtl.models.attention import SelfAttention
from mtl.models.decoder import DeepLabV3PlusDecoder
from mtl.models.heads import PredictionHead
from mtl.models.vortex import VortexPooling
from test_models_helpers import BOTH, build, make_cfg

from mtl.models import TaskOutput


def _conv_bn_relu(x, seq, dilation=1, padding=0):
    conv, bn = seq[0], seq[1]
    y = F.conv2d(x, conv.weight, None, padding=padding, dilation=dilation)
    y = F.batch_norm(y, bn.running_mean, bn.running_var, bn.weight, bn.bias, training=False)
    return y.clamp_min(0)


def test_aspp_matches_a_direct_computation():
    torch.manual_seed(0)
    aspp = ASPP(8, 4, rates=(1, 2)).eval()
    for module in aspp.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2)
            module.weight.data.normal_()
            module.bias.data.normal_()
    x = torch.randn(2, 8, 5, 7)
    b = aspp.branches
    pooled = _conv_bn_relu(x.mean(dim=(2, 3), keepdim=True), b[3].conv).expand(-1, -1, 5, 7)
    branches = [_conv_bn_relu(x, b[0]), _conv_bn_relu(x, b[1], 1, 1), _conv_bn_relu(x, b[2], 2, 2), pooled]
    expected = _conv_bn_relu(torch.cat(branches, dim=1), aspp.project[0])
    with torch.no_grad():
        torch.testing.assert_close(aspp(x), expected)


def test_vortex_pooling_averages_before_each_atrous_branch():
    torch.manual_seed(0)
    vortex = VortexPooling(4, 4, rates=(3,)).eval()
    x = torch.randn(1, 4, 9, 9)
    branch = vortex.branches[1]
    averaged = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    with torch.no_grad():
        torch.testing.assert_close(branch(x), _conv_bn_relu(averaged, branch[1], 3, 3))
    with pytest.raises(ValueError, match="odd positive rates"):
        VortexPooling(4, 4, rates=(4,))


def test_self_attention_formula_and_zero_initialised_gate():
    torch.manual_seed(0)
    sa = SelfAttention(6, 5)
    x = torch.randn(2, 6, 7, 9)
    assert sa.conv.bias is None and sa.attention.bias is None
    assert torch.count_nonzero(sa.attention.weight) == 0
    with torch.no_grad():
        torch.testing.assert_close(sa(x), 0.5 * F.conv2d(x, sa.conv.weight, padding=1))
        sa.attention.weight.normal_()
        expected = F.conv2d(x, sa.conv.weight, padding=1) * torch.sigmoid(F.conv2d(x, sa.attention.weight, padding=1))
        torch.testing.assert_close(sa(x), expected)


def test_learned_scale_starts_closed_but_learns():
    sa = SelfAttention(4, 4, learned_scale=True)
    x = torch.randn(1, 4, 6, 6)
    out = sa(x)
    assert torch.count_nonzero(out) == 0
    out.sum().backward()
    assert sa.scale.grad.abs().item() > 0


def test_prediction_head_splits_in_outputs_desc_order():
    head = PredictionHead(8, {"depth": TaskOutput(1), "semseg": TaskOutput(3)}, kernel_size=3)
    x = torch.randn(1, 8, 5, 5)
    out = head(x)
    full = F.conv2d(x, head.conv.weight, head.conv.bias, padding=1)
    assert list(out) == ["depth", "semseg"]
    torch.testing.assert_close(out["depth"], full[:, :1])
    torch.testing.assert_close(out["semseg"], full[:, 1:])


def test_adabins_depth_is_a_convex_combination_of_ordered_centres():
    torch.manual_seed(0)
    head = AdaBinsHead(16, num_bins=9, num_layers=1, num_heads=2, value_range=(2.0, 5.0)).eval()
    features = torch.randn(2, 16, 6, 7)
    with torch.no_grad():
        depth = head(features)
        # Independent recomputation of the centres and the per-pixel softmax weights.
        latents = F.adaptive_avg_pool2d(features, 3).flatten(2).transpose(1, 2)
        latents = head.transformer(latents + head.position)
        widths = torch.softmax(head.width(latents).squeeze(-1), dim=1)
        edges = torch.cat([torch.zeros(2, 1), torch.cumsum(widths, 1)], dim=1)
        centres = 2.0 + 3.0 * (edges[:, :-1] + edges[:, 1:]) / 2
        scores = torch.einsum("bchw,bnc->bnhw", head.queries(features), latents) / 4.0
        expected = (torch.softmax(scores, 1) * centres[:, :, None, None]).sum(1, keepdim=True)
    assert depth.shape == (2, 1, 6, 7)
    torch.testing.assert_close(depth, expected)
    assert torch.all(centres[:, 1:] > centres[:, :-1])
    assert depth.min() >= 2.0 and depth.max() <= 5.0


def test_adabins_range_is_the_depth_units_range():
    flags = ["--model_encoder_name", "resnet18", "--depth_head", "adabins", "--adabins_bins", "4", "--adabins_layers", "1"]
    cfg = make_cfg(*flags, "--depth_unit", "inverse")  # zmin/z: (4/300, 1] on MiniScapes
    model = build(cfg, BOTH).eval()
    adabins = model.decoder.head.special["depth"]
    assert (adabins.lo, adabins.hi) == pytest.approx((4 / 300, 1.0))
    assert model.decoder.head.conv.out_channels == 19  # depth comes from the bins, not the conv
    with torch.no_grad():
        depth = model(torch.randn(1, 3, 64, 64))["depth"]
    assert depth.min() >= 4 / 300 - 1e-6 and depth.max() <= 1.0 + 1e-6


def test_extra_skips_refine_up_to_scale_2():
    encoder_channels = {2: 10, 4: 12, 8: 14}
    head = PredictionHead(16, {"depth": TaskOutput(1)}, kernel_size=3)
    decoder = DeepLabV3PlusDecoder(20, encoder_channels, head, channels=16, skip_channels=6, num_blocks=1, extra_skips=(8, 2))
    assert decoder.scales == [8, 4, 2]
    features = {2: torch.randn(1, 10, 32, 32), 4: torch.randn(1, 12, 16, 16), 8: torch.randn(1, 14, 8, 8)}
    predictions, out = decoder(torch.randn(1, 20, 4, 4), features)
    assert out.shape == (1, 16, 32, 32) and predictions["depth"].shape == (1, 1, 32, 32)
    assert decoder.stages["scale8"][0][0].in_channels == 26 and decoder.stages["scale2"][0][0].in_channels == 22


def test_distillation_final_stage_uses_the_other_tasks_features():
    torch.manual_seed(0)
    model = build(make_cfg("--model_name", "distillation", "--model_encoder_name", "resnet18"), BOTH).eval()
    assert sorted(model.attention) == ["depth_to_semseg", "semseg_to_depth"]
    x = torch.randn(1, 3, 64, 64)
    with torch.no_grad():
        before = model(x)
        model.attention["depth_to_semseg"].conv.weight.zero_()  # cut depth → semseg
        after = model(x)
    torch.testing.assert_close(after["semseg"][0], before["semseg"][0])  # initial predictions unaffected
    assert not torch.allclose(after["semseg"][1], before["semseg"][1])
    torch.testing.assert_close(after["depth"][1], before["depth"][1])
    single = build(make_cfg("--model_name", "distillation", "--model_encoder_name", "resnet18"), {"depth": 1})
    assert len(single.attention) == 0
