"""`mtl complexity`: parameter and MAC counts, checked against counts made independently with hooks."""

from __future__ import annotations

import json

import torch
from torch import nn

from mtl.cli.main import main
from test_models_helpers import BOTH, build, make_cfg, num_params


def conv_macs_by_hooks(model: nn.Module, height: int, width: int) -> int:
    """MACs of every Conv2d: output elements × (input channels / groups) × kernel area."""
    total = 0

    def hook(module, inputs, output):
        nonlocal total
        kh, kw = module.kernel_size
        total += output.numel() * (module.in_channels // module.groups) * kh * kw

    handles = [m.register_forward_hook(hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    with torch.no_grad():
        model.eval()(torch.zeros(1, 3, height, width))
    for handle in handles:
        handle.remove()
    return total


def run_json(capsys, *flags: str) -> list[dict]:
    assert main(["complexity", "--json", *flags]) == 0
    return json.loads(capsys.readouterr().out)


def test_json_counts_match_independent_counts(capsys):
    flags = ("--model_encoder_name", "resnet18", "--height", "64", "--width", "96", "--dilations", "F,F,T")
    results = run_json(capsys, "--model_name", "deeplabv3p", "distillation", *flags)
    assert [r["model_name"] for r in results] == ["deeplabv3p", "distillation"]
    for result in results:
        cfg = make_cfg("--model_name", result["model_name"], "--model_encoder_name", "resnet18", "--dilations", "F,F,T")
        model = build(cfg, BOTH)
        assert result["params"] == num_params(model)
        # Only convolutions carry MACs in these models (SA's product and resizes are not counted).
        assert abs(result["gmac"] * 1e9 - conv_macs_by_hooks(model, 64, 96)) < 1
        assert sum(p["params"] for p in result["parts"].values()) == result["params"]
        assert abs(sum(p["gmac"] for p in result["parts"].values()) - result["gmac"]) < 1e-9
        assert "other" not in result["parts"]
    joint = results[0]["parts"]
    assert list(joint) == ["encoder", "aspp", "decoder", "head"]
    assert joint["head"]["params"] == 20 * (256 * 9 + 1)
    # The head runs at 4× (16 × 24 positions): its MACs are its weights × positions.
    assert abs(joint["head"]["gmac"] * 1e9 - 20 * 256 * 9 * 16 * 24) < 1


def test_single_task_and_default_models(capsys):
    results = run_json(capsys, "--model_encoder_name", "resnet18", "--height", "32", "--width", "32", "--tasks", "depth")
    assert [r["model_name"] for r in results] == ["deeplabv3p", "branched", "distillation"]
    assert list(results[1]["parts"]) == ["encoder", "aspp.depth", "decoder.depth", "head.depth"]


def test_table_output(capsys):
    assert main(["complexity", "--model_name", "branched", "--model_encoder_name", "resnet18", "--height", "32", "--width", "32"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "input 1×3×32×32, tasks semseg,depth, encoder resnet18"
    assert lines[2].split()[0] == "branched"
    assert [line.split()[0] for line in lines[3:]] == ["encoder", "aspp.semseg", "decoder.semseg", "head.semseg", "aspp.depth", "decoder.depth", "head.depth"]
