"""MTAN and cross-stitch: shapes for 1–3 tasks, gradients, identity start of the cross-stitch units, MTAN's
attention masks over the one shared encoder, parameter counts, complexity parts and a CPU training run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import FAST_TRAIN_FLAGS
from torch import nn

from mtl.cli.main import main
from mtl.models import MODELS as MODEL_REGISTRY
from mtl.models.cross_stitch import CrossStitchUnit
from mtl.models.stages import StagedEncoder
from test_models_helpers import BOTH, build, make_cfg, num_params

SMALL = ("--model_encoder_name", "resnet18", "--aspp_channels", "16", "--decoder_channels", "16", "--skip_channels", "8")
THREE = {"semseg": 19, "depth": 1, "normals": 3}
TASK_SETS = [{"depth": 1}, BOTH, THREE]
MODELS = ("mtan", "cross_stitch")

RESNET34_ENCODER = 21_797_672 - 513_000  # torchvision's ResNet-34 without fc
BRANCHED = 31_002_644  # the branched model's default count (tests/test_models.py)


def small(name: str, desc: dict[str, int], *flags: str, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build(make_cfg("--model_name", name, *SMALL, *flags), desc)


def losses(out: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {task: value.float().square().mean() for task, value in out.items()}


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("desc", TASK_SETS, ids=["1task", "2tasks", "3tasks"])
@pytest.mark.parametrize("dilations", ["F,F,F", "F,T,T"])
def test_outputs_have_the_input_size_for_any_number_of_tasks(name, desc, dilations):
    model = small(name, desc, "--dilations", dilations).eval()
    for height, width in ((64, 64), (50, 70)):  # odd sizes: the attention chain's pooling must meet the stride-2 convs
        with torch.no_grad():
            out = model(torch.randn(1, 3, height, width))
        assert list(out) == list(desc)
        assert all(out[task].shape == (1, channels, height, width) for task, channels in desc.items())


@pytest.mark.parametrize("name", MODELS)
@pytest.mark.parametrize("desc", [{"semseg": 19}, THREE], ids=["1task", "3tasks"])
def test_gradients_reach_every_parameter_and_each_task_reaches_the_shared_ones(name, desc):
    model = small(name, desc, "--dilations", "F,F,T").train()
    x = torch.randn(2, 3, 34, 42)  # two images: the image-pooling BatchNorm needs more than one value
    out = model(x)
    sum(losses(out).values()).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())

    shared = {id(p) for p in model.shared_parameters()}
    assert shared and shared < {id(p) for p in model.parameters()}
    for task in desc:  # what shared_parameters() promises: every task's loss alone reaches each of them
        model.zero_grad(set_to_none=True)
        losses(model(x))[task].backward()
        assert [n for n, p in model.named_parameters() if id(p) in shared and p.grad is None] == []


CONTRACT_OPTIONS = [(), ("--task_encoders",), ("--sa_scale",), ("--depth_head", "adabins")]


def reached_by_every_task(model: nn.Module, desc: dict[str, int]) -> set[str]:
    """Names of the parameters some element of which gets a non-zero gradient from every task's loss alone (a
    parameter made of per-task slices, like a joint head's output channels, belongs to no task in common)."""
    params = dict(model.named_parameters())
    out = model(torch.randn(2, 3, 40, 48))
    common = None
    for task in desc:
        loss = sum(o.float().square().mean() for o in (out[task] if isinstance(out[task], list) else [out[task]]))
        grads = torch.autograd.grad(loss, list(params.values()), retain_graph=True, allow_unused=True)
        nonzero = {n: torch.zeros_like(p, dtype=torch.bool) if g is None else g != 0 for (n, p), g in zip(params.items(), grads)}
        common = nonzero if common is None else {n: common[n] & nonzero[n] for n in params}
    return {n for n, mask in common.items() if mask.any()}


@pytest.mark.parametrize("name", sorted(MODEL_REGISTRY))
@pytest.mark.parametrize("options", CONTRACT_OPTIONS, ids=lambda o: " ".join(o) or "defaults")
def test_shared_parameters_are_exactly_those_every_task_reaches(name, options):
    """What gradient methods combine (mtl.weighting): for every registered model and option that changes what is
    shared, shared_parameters() are the parameters every task's loss reaches, no more, no fewer."""
    for desc in (BOTH, THREE):
        try:
            model = small(name, desc, *options).train()
        except ValueError:  # e.g. --task_encoders on a model with one encoder
            assert options, f"{name} must build with its defaults"
            return
        with torch.no_grad():  # away from the start, where zero-initialised parts (α, identity units) hide paths
            for p in model.parameters():
                p.add_(0.05 * torch.randn_like(p))
        names = {id(p): n for n, p in model.named_parameters()}
        shared = {names[id(p)] for p in model.shared_parameters()}
        assert shared == reached_by_every_task(model, desc), (name, options, list(desc))


def test_cross_stitch_units_mix_channel_by_channel():
    unit = CrossStitchUnit(3, 4)
    xs = [torch.randn(2, 4, 5, 6) for _ in range(3)]
    assert torch.equal(unit.weight.detach(), torch.eye(3)[:, :, None].expand(3, 3, 4))
    for got, x in zip(unit(xs), xs):
        assert torch.equal(got, x)  # the identity start is exact
    with torch.no_grad():
        unit.weight.normal_()
    alpha = unit.weight.detach()
    for i, got in enumerate(unit(xs)):
        expected = sum(alpha[i, j].view(1, 4, 1, 1) * xs[j] for j in range(3))
        torch.testing.assert_close(got, expected)


def test_cross_stitch_starts_as_independent_task_encoders():
    """Each task's encoder computes what a lone encoder would; the whole model is branched --task_encoders."""
    model = small("cross_stitch", THREE, "--dilations", "F,F,T").eval()
    x = torch.randn(2, 3, 48, 40)
    with torch.no_grad():
        pyramids = model.pyramids(x)
        for task in THREE:
            alone = model.encoder[task](x)  # the ResNet's own forward, nothing stitched
            assert pyramids[task].keys() == alone.keys()
            for scale in alone:
                assert torch.equal(pyramids[task][scale], alone[scale])
        assert not torch.equal(pyramids["semseg"][16], pyramids["depth"][16])  # really one encoder per task

        branched = small("branched", THREE, "--dilations", "F,F,T", "--task_encoders", seed=1).eval()
        result = branched.load_state_dict(model.state_dict(), strict=False)
        assert result.missing_keys == [] and all(k.startswith("stitch.") for k in result.unexpected_keys)
        reference, out = branched(x), model(x)
        for task in THREE:
            torch.testing.assert_close(out[task], reference[task], rtol=0, atol=0)

        model.stitch[1].weight.fill_(1.0 / 3)  # mixing after layer2 makes the tasks' deeper features agree
        mixed = model.pyramids(x)
    torch.testing.assert_close(mixed["semseg"][8], mixed["normals"][8])


def test_mtan_masks_select_from_one_shared_encoder():
    model = small("mtan", THREE, "--dilations", "F,F,T")
    assert isinstance(model.encoder, StagedEncoder)  # one encoder, not one per task
    model.eval()
    x = torch.randn(2, 3, 50, 66)
    with torch.no_grad():
        shared = model.encoder(x)  # the encoder's own forward
        h, stage_outputs = model.encoder.maxpool(shared[2]), []
        for layer in (model.encoder.layer1, model.encoder.layer2, model.encoder.layer3, model.encoder.layer4):
            h = layer(h)
            stage_outputs.append(h)
        pyramids, masks = model.attend(x)
    scales = [4, 8, 16, 16]  # layer1..layer4, layer4 dilated: it overwrites layer3 at scale 16
    for task in THREE:
        assert len(masks[task]) == 4
        for mask, features in zip(masks[task], stage_outputs):
            assert mask.shape == features.shape  # one value per channel and pixel of the stage's output
            assert mask.min() >= 0 and mask.max() <= 1 and mask.std() > 0
        for j, scale in enumerate(scales):
            if j == len(scales) - 1 or scales[j + 1] != scale:
                torch.testing.assert_close(shared[scale], stage_outputs[j])
                torch.testing.assert_close(pyramids[task][scale], masks[task][j] * shared[scale], rtol=0, atol=0)
        assert torch.equal(pyramids[task][2], shared[2]) and torch.equal(pyramids[task][1], x)
    assert not torch.equal(masks["semseg"][0], masks["depth"][0])  # each task has its own attention
    shared_ids = {id(p) for p in model.shared_parameters()}
    assert shared_ids == {id(p) for p in [*model.encoder.parameters(), *model.shared.parameters()]}


def test_parameter_counts():
    with torch.device("meta"):
        mtan = build(make_cfg("--model_name", "mtan"), BOTH)
        stitch = build(make_cfg("--model_name", "cross_stitch"), BOTH)
    # MTAN = branched + the shared 3×3 ConvBNReLU blocks 64→128→256→512 + per task one mask per stage:
    # c (first stage) or 2c inputs → c/4 (1×1 ConvBNReLU) → c (1×1 conv, BN), for c = 64, 128, 256, 512.
    shared = sum(9 * a * b + 2 * b for a, b in ((64, 128), (128, 256), (256, 512)))
    masks = sum((c if j == 0 else 2 * c) * (c // 4) + 2 * (c // 4) + (c // 4) * c + 2 * c for j, c in enumerate((64, 128, 256, 512)))
    assert (shared, masks) == (1_550_080, 262_496)
    assert num_params(mtan) == BRANCHED + shared + 2 * masks == 33_077_716
    # Cross-stitch = branched with a second encoder + one α per task pair and channel after each stage.
    assert num_params(stitch) == BRANCHED + RESNET34_ENCODER + 4 * (64 + 128 + 256 + 512) == 52_291_156


def test_resnet50_mtan_uses_bottleneck_shared_blocks():
    with torch.device("meta"):
        model = build(make_cfg("--model_name", "mtan", "--model_encoder_name", "resnet50"), BOTH)
    assert [type(block).__name__ for block in model.shared] == ["Bottleneck"] * 3
    assert [block.conv3.out_channels for block in model.shared] == [512, 1024, 2048]


def test_mtan_refuses_task_encoders():
    with pytest.raises(ValueError, match="--task_encoders: mtan shares one encoder"):
        small("mtan", BOTH, "--task_encoders")


def test_complexity_lists_the_parts(capsys):
    flags = ("--model_encoder_name", "resnet18", "--height", "32", "--width", "64", "--tasks", "semseg,depth,normals")
    assert main(["complexity", "--json", "--model_name", *MODELS, *flags]) == 0
    results = json.loads(capsys.readouterr().out)
    assert [r["model_name"] for r in results] == list(MODELS)
    for result in results:
        assert abs(sum(p["params"] for p in result["parts"].values()) - result["params"]) == 0
        assert abs(sum(p["gmac"] for p in result["parts"].values()) - result["gmac"]) < 1e-9
        assert "other" not in result["parts"]
    mtan, stitch = (list(r["parts"]) for r in results)
    assert mtan[:2] == ["encoder", "attention.shared"] and mtan[2:6] == ["attention.semseg", "aspp.semseg", "decoder.semseg", "head.semseg"]
    assert stitch[:4] == ["encoder.semseg", "encoder.depth", "encoder.normals", "cross_stitch"]
    assert results[1]["parts"]["cross_stitch"]["params"] == 9 * (64 + 128 + 256 + 512)


@pytest.mark.parametrize("name", MODELS)
def test_compiles_as_one_graph_with_channels_last_and_bf16(name):
    model = small(name, BOTH).eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, 3, 32, 32).to(memory_format=torch.channels_last)
    compiled = torch.compile(model, fullgraph=True, backend="eager")
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        out, reference = compiled(x), model(x)
    for task in BOTH:
        torch.testing.assert_close(out[task], reference[task])


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_trains_on_cpu(name, tiny_dataset: Path, tmp_path: Path):
    run = tmp_path / name
    flags = [*FAST_TRAIN_FLAGS, "--num_epochs", "1", "--prepare_submission", "no", "--optimizer", "adam"]
    assert main(["train", "--dataset_root", str(tiny_dataset), "--log_dir", str(run), "--model_name", name, *flags]) == 0
    rows = (run / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    validation = [dict(zip(header, r.split(","))) for r in rows[1:] if r.split(",")[header.index("metrics_summary/grader")]]
    assert len(validation) == 1
    assert float(validation[0]["loss_val/total"]) > 0
    assert (run / "checkpoints" / "best.ckpt").is_file()
