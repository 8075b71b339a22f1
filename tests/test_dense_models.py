"""PAD-Net and MTI-Net: deep-supervision outputs for 1–3 tasks at every scale, gradients, hand counts of the
distillation, propagation, aggregation and prediction blocks, the complexity parts and a CPU training run."""

from __future__ import annotations

import json
from pathlib import Path

import onnxruntime as ort
import pytest
import torch
from conftest import FAST_TRAIN_FLAGS, make_tiny_dataset
from torch import nn

from mtl.cli.main import main
from mtl.models import TaskOutput, build_model, model_options
from mtl.models.feature_aggregation import FeatureAggregation
from mtl.models.feature_propagation import FeaturePropagation
from mtl.models.multimodal_distillation import MultiModalDistillation
from mtl.models.resnet import Bottleneck
from mtl.models.task_prediction import TaskPrediction
from mtl.inference.predictor import load_predictor
from mtl.tasks import final
from test_export import calibrated_checkpoint
from test_models_helpers import BOTH, build, make_cfg, num_params

SMALL = ("--model_encoder_name", "resnet18", "--decoder_channels", "16")
THREE = {"semseg": 19, "depth": 1, "normals": 3}
TASK_SETS = [{"depth": 1}, BOTH, THREE]
OUTPUTS = {"padnet": 2, "mtinet": 5}  # [initial, final]; [initial at layer4, layer3, layer2, layer1, final]


def small(name: str, desc: dict[str, int], *flags: str) -> nn.Module:
    torch.manual_seed(0)
    return build(make_cfg("--model_name", name, *SMALL, *flags), desc)


@pytest.mark.parametrize("name", OUTPUTS)
@pytest.mark.parametrize("desc", TASK_SETS, ids=["1task", "2tasks", "3tasks"])
def test_deep_supervision_lists_at_the_input_size(name, desc):
    model = small(name, desc, "--dilations", "F,F,T").eval()
    for height, width in ((64, 64), (50, 70)):
        with torch.no_grad():
            out = model(torch.randn(1, 3, height, width))
        assert list(out) == list(desc)
        for task, channels in desc.items():
            assert [o.shape for o in out[task]] == [(1, channels, height, width)] * OUTPUTS[name]


def test_mtinet_initial_predictions_come_from_every_stage():
    """Before the final upsampling each initial prediction is at its stage's size and each stage's task features
    have the per-task width (stage width × 16 / 256 here)."""
    model = small("mtinet", BOTH).eval()
    seen = []
    hooks = [m.register_forward_hook(lambda _m, _i, out: seen.append(out)) for m in model.initial]
    with torch.no_grad():
        model(torch.randn(1, 3, 64, 96))
    for hook in hooks:
        hook.remove()
    sizes = [(2, 3), (4, 6), (8, 12), (16, 24)]  # layer4 first: the order in which they are computed
    widths = [32, 16, 8, 4]
    for (predictions, features), size, width in zip(seen, sizes, widths):
        assert {t: p.shape for t, p in predictions.items()} == {"semseg": (1, 19, *size), "depth": (1, 1, *size)}
        assert {t: f.shape for t, f in features.items()} == {"semseg": (1, width, *size), "depth": (1, width, *size)}


@pytest.mark.parametrize("name", OUTPUTS)
@pytest.mark.parametrize("desc", [{"semseg": 19}, THREE], ids=["1task", "3tasks"])
def test_a_training_step_gives_finite_gradients_to_every_parameter(name, desc):
    model = small(name, desc).train()
    out = model(torch.randn(2, 3, 32, 48))
    sum(o.square().mean() for outputs in out.values() for o in outputs).backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())
    shared = {id(p) for p in model.shared_parameters()}
    assert {id(p) for p in model.encoder.parameters()} <= shared


def conv(cin: int, cout: int, k: int = 1, bias: bool = False) -> int:
    return cin * cout * k * k + (cout if bias else 0)


def basic_block(cin: int, cout: int) -> int:
    """Two 3×3 conv-BN, plus a 1×1 conv-BN shortcut when the width changes."""
    shortcut = conv(cin, cout) + 2 * cout if cin != cout else 0
    return conv(cin, cout, 3) + 2 * cout + conv(cout, cout, 3) + 2 * cout + shortcut


def test_block_parameter_counts_by_hand():
    # Distillation, 3 tasks at 8 channels: per ordered pair of tasks a 3×3 conv and a 3×3 gate conv, no bias.
    assert num_params(MultiModalDistillation(["a", "b", "c"], 8)) == 6 * 2 * 9 * 8 * 8 == 6912
    assert num_params(MultiModalDistillation(["a"], 8)) == 0
    # Propagation, 2 tasks at 8 channels (16 concatenated): f = basic blocks 16→4, 4→4 and a 1×1 conv 4→16 with
    # bias; a basic block 16→8; per task an SE on 8 channels with 4 hidden units (two 1×1 convs with bias).
    f = basic_block(16, 4) + basic_block(4, 4) + conv(4, 16, bias=True)
    se = conv(8, 4, bias=True) + conv(4, 8, bias=True)
    assert (f, basic_block(16, 8), se) == (1192, 1904, 76)
    assert num_params(FeaturePropagation(["a", "b"], 8)) == f + 1904 + 2 * se == 3248
    assert num_params(FeaturePropagation(["a"], 8)) == basic_block(8, 8) + se  # one task: no task attention
    # Aggregation of 4 + 8 channels for 3 outputs: 1×1 conv-BN-ReLU 12→12, 1×1 head with bias.
    assert num_params(FeatureAggregation([4, 8], {"a": TaskOutput(3)})) == conv(12, 12) + 24 + conv(12, 3, bias=True) == 207
    # PAD-Net's prediction: bottlenecks 32→16 (4 planes, with a shortcut) and 16→16, a 1×1 head with bias.
    bottleneck = conv(32, 4) + 8 + conv(4, 4, 3) + 8 + conv(4, 16) + 32
    shortcut = conv(32, 16) + 32
    second = conv(16, 4) + 8 + conv(4, 4, 3) + 8 + conv(4, 16) + 32
    assert num_params(TaskPrediction(Bottleneck, 32, 16, {"a": TaskOutput(2)})) == bottleneck + shortcut + second + conv(16, 2, bias=True)


def mtinet_heads(stage: list[int], task: list[int], outputs: list[int], se_hidden, fuse_bias: bool) -> int:
    """Parameters of MTI-Net besides the backbone, following the structure of MTL-PyTorch's models/mti_net.py
    (HRNet head as the aggregation) for stage widths ``stage`` and per-task widths ``task``, finest first."""
    n, total = len(outputs), 0
    for j, c in enumerate(task):
        cin = stage[j] + (task[j + 1] if j + 1 < len(task) else 0)
        total += n * (basic_block(cin, c) + basic_block(c, c)) + sum(conv(c, k, bias=True) for k in outputs)
        total += n * (n - 1) * 2 * conv(c, c, 3)  # distillation: conv and gate per ordered pair of tasks
        if j > 0:  # propagation from stage j to j - 1
            s = n * c
            total += basic_block(s, s // 4) + basic_block(s // 4, s // 4) + conv(s // 4, s, bias=True) + basic_block(s, c)
            total += n * (conv(c, se_hidden(c), bias=True) + conv(se_hidden(c), c, bias=True))
    agg = sum(task)
    return total + sum(conv(agg, agg, bias=fuse_bias) + 2 * agg + conv(agg, k, bias=True) for k in outputs)


def test_padnet_counts_what_mtl_pytorchs_structure_gives():
    """Dilated ResNet-18, C = 256, three tasks: per task bottlenecks 512→256 (with shortcut) and 256→256, a 1×1 head,
    a message conv and gate from each other task, two 256→256 bottlenecks and a 1×1 head (MTL-PyTorch's padnet.py)."""
    outputs = {"semseg": TaskOutput(13), "depth": TaskOutput(1), "normals": TaskOutput(3)}
    with torch.device("meta"):
        model = build_model("padnet", outputs, model_options(make_cfg("--model_encoder_name", "resnet18", "--dilations", "F,T,T")))

    def bottleneck(cin: int) -> int:
        shortcut = conv(cin, 256) + 512 if cin != 256 else 0
        return conv(cin, 64) + 128 + conv(64, 64, 3) + 128 + conv(64, 256) + 512 + shortcut

    per_task = bottleneck(512) + 3 * bottleneck(256) + 2 * 2 * conv(256, 256, 3)
    expected = 3 * per_task + sum(2 * conv(256, k, bias=True) for k in (13, 1, 3))
    assert num_params(model) - num_params(model.encoder) == expected == 8_375_330


@pytest.mark.parametrize("encoder", ["resnet18", "resnet50"])
def test_mtinet_at_72_channels_is_mtl_pytorchs_structure_at_hrnet18_widths(encoder):
    """Besides the encoder, mtinet counts what MTL-PyTorch's structure gives with HRNet-18's per-task widths, for
    the encoder's stage widths as inputs, an SE of at least 4 hidden units and no bias before the aggregation's BN."""
    outputs = {"semseg": TaskOutput(13), "depth": TaskOutput(1), "normals": TaskOutput(3)}
    with torch.device("meta"):
        model = build_model("mtinet", outputs, model_options(make_cfg("--model_encoder_name", encoder, "--decoder_channels", "72")))
    hrnet18 = [18, 36, 72, 144]
    assert [stage.task["semseg"].out_channels for stage in model.initial] == hrnet18
    stage = [64, 128, 256, 512] if encoder == "resnet18" else [256, 512, 1024, 2048]
    expected = mtinet_heads(stage, hrnet18, [13, 1, 3], lambda c: max(4, c // 16), fuse_bias=False)
    assert num_params(model) - num_params(model.encoder) == expected
    # MTL-PyTorch itself (HRNet-18 inputs, SE of c // 16 units, bias before the BN): 8 778 181.
    assert mtinet_heads(hrnet18, hrnet18, [13, 1, 3], lambda c: c // 16, fuse_bias=True) == 8_778_181


@pytest.mark.parametrize("name", OUTPUTS)
def test_refuse_task_encoders(name):
    with pytest.raises(ValueError, match=f"--task_encoders: {name} shares one encoder"):
        small(name, BOTH, "--task_encoders")


def test_complexity_parts_add_up(capsys):
    flags = ("--model_encoder_name", "resnet18", "--decoder_channels", "16", "--height", "32", "--width", "64")
    assert main(["complexity", "--json", "--model_name", "padnet", "mtinet", "--tasks", "semseg,depth,normals", *flags]) == 0
    padnet, mtinet = json.loads(capsys.readouterr().out)
    for result in (padnet, mtinet):
        assert sum(p["params"] for p in result["parts"].values()) == result["params"]
        assert abs(sum(p["gmac"] for p in result["parts"].values()) - result["gmac"]) < 1e-9
        assert "other" not in result["parts"]
    assert list(padnet["parts"])[:4] == ["encoder", "initial.semseg", "distillation.semseg", "final.semseg"]
    assert padnet["parts"]["distillation.semseg"]["params"] == 2 * 2 * 9 * 16 * 16
    assert list(mtinet["parts"])[:4] == ["encoder", "initial.layer1", "distillation.layer1", "initial.layer2"]
    assert mtinet["parts"]["distillation.layer4"]["params"] == 6 * 2 * 9 * 32 * 32


@pytest.mark.slow
@pytest.mark.parametrize("name", OUTPUTS)
def test_onnx_export_gives_the_final_predictions(name, tmp_path: Path):
    """`mtl export` (which itself checks the graph against PyTorch) keeps only the last element of each list."""
    data = make_tiny_dataset(tmp_path / "data", {"train": 1, "val": 1}, 32, 32)
    ckpt = calibrated_checkpoint(data, tmp_path / "model.ckpt", ["--model_name", name, "--decoder_channels", "16"])
    path = tmp_path / "model.onnx"
    assert main(["export", "--checkpoint", str(ckpt), "--out", str(path), "--height", "32", "--width", "64"]) == 0
    rgb = torch.randint(0, 256, (1, 3, 40, 56)).float()
    logits_onnx, depth_onnx = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(
        ["semseg_logits", "depth_m"], {"rgb": rgb.numpy()}
    )
    module = load_predictor(ckpt, precision="32")
    with torch.no_grad():
        outputs = module(rgb)
    assert len(outputs["semseg"]) == OUTPUTS[name]
    torch.testing.assert_close(torch.from_numpy(logits_onnx), final(outputs["semseg"]), rtol=1e-4, atol=1e-4)
    assert depth_onnx.shape == (1, 1, 40, 56)


@pytest.mark.slow
@pytest.mark.parametrize("name", OUTPUTS)
def test_trains_on_cpu(name, tiny_dataset: Path, tmp_path: Path):
    run = tmp_path / name
    flags = [*FAST_TRAIN_FLAGS, "--num_epochs", "1", "--prepare_submission", "no", "--decoder_channels", "16"]
    assert main(["train", "--dataset_root", str(tiny_dataset), "--log_dir", str(run), "--model_name", name, *flags]) == 0
    rows = (run / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    validation = [dict(zip(header, r.split(","))) for r in rows[1:] if r.split(",")[header.index("metrics_summary/grader")]]
    assert len(validation) == 1 and float(validation[0]["loss_val/total"]) > 0
    assert (run / "checkpoints" / "best.ckpt").is_file()
