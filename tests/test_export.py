"""`mtl export`: the ONNX graph matches PyTorch to 1e-4 at two sizes, for a joint and a deep-supervision model."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from conftest import make_tiny_dataset

from mtl.cli.main import main
from mtl.data.classes import CLASS_NAMES
from mtl.config import parse_config, plain_values
from mtl.inference.export import ExportModel, check_onnx
from mtl.inference.predictor import Predictor, load_predictor
from mtl.tasks import final

HEIGHT, WIDTH = 48, 64


def calibrated_checkpoint(root: Path, path: Path, flags: list[str]) -> Path:
    """A checkpoint without training: random weights, BatchNorm statistics measured on random images.

    Measured statistics keep activations at unit scale, so the outputs vary across pixels like a trained
    model's (the default running statistics give nearly constant outputs, which would make a weak test).
    """
    cfg = parse_config(["--dataset_root", str(root), "--model_encoder_name", "resnet18", *flags])
    torch.manual_seed(0)
    module = Predictor.from_flags(cfg, {"depth": {"mean": 27.0727, "std": 29.1264}})
    for layer in module.modules():
        if isinstance(layer, torch.nn.BatchNorm2d):
            layer.reset_running_stats()
            layer.momentum = None  # cumulative average over the calibration batches
    module.train()
    with torch.no_grad():
        for _ in range(2):
            module(torch.rand(2, 3, HEIGHT, WIDTH) * 255)
    torch.save(module.checkpoint(plain_values(cfg)), path)
    return path


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_dataset(tmp_path_factory.mktemp("export") / "data", {"train": 1, "val": 1}, 32, 32)


@pytest.fixture(scope="module", params=["deeplabv3p", "distillation"])
def exported(request: pytest.FixtureRequest, dataset: Path) -> dict:
    """`mtl export` of a calibrated checkpoint; distillation (deep supervision) also uses the log depth unit."""
    name = request.param
    flags = ["--model_name", name] + (["--depth_unit", "log"] if name == "distillation" else [])
    ckpt = calibrated_checkpoint(dataset, dataset.parent / f"{name}.ckpt", flags)
    path = dataset.parent / f"{name}.onnx"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        flags = ["--out", str(path), "--height", str(HEIGHT), "--width", str(WIDTH)]
        code = main(["export", "--checkpoint", str(ckpt), *flags])
    module = load_predictor(ckpt, precision="32")  # the graph is exported in fp32: compared in fp32
    return {"name": name, "module": module, "onnx": path, "code": code, "printed": printed.getvalue()}


def test_onnx_runtime_matches_pytorch_at_two_sizes(exported: dict) -> None:
    assert exported["code"] == 0
    module = exported["module"]
    session = ort.InferenceSession(str(exported["onnx"]), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(1)
    for shape in [(1, 3, HEIGHT, WIDTH), (2, 3, 45, 70)]:
        rgb = torch.randint(0, 256, shape, generator=generator).float()
        logits_onnx, depth_onnx = session.run(["semseg_logits", "depth_m"], {"rgb": rgb.numpy()})
        with torch.no_grad():
            outputs = module(rgb)  # the module's own normalisation, not the export wrapper's
            logits = final(outputs["semseg"]).numpy()
            depth = module.tasks["depth"].unit.decode(final(outputs["depth"])).numpy()
        assert logits_onnx.shape == (shape[0], 19, *shape[2:]) and depth_onnx.shape == (shape[0], 1, *shape[2:])
        # The outputs really depend on the input (a near-constant model would make this test weak).
        assert depth.std() > 0.05 and len(np.unique(logits.argmax(1))) > 1
        for got, ref in ((logits_onnx, logits), (depth_onnx, depth)):
            assert np.abs(got - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max())
        np.testing.assert_allclose(depth_onnx[:, 0], module.predict(rgb)["depth"].numpy(), rtol=1e-4)


def test_export_prints_the_check_per_size_and_output(exported: dict) -> None:
    lines = exported["printed"].splitlines()
    assert lines[0] == (
        f"wrote {exported['onnx']} (opset 17; dynamic batch, height and width; outputs semseg_logits, depth_m)"
    )
    rows = [line.split() for line in lines[2:]]
    assert [(r[0], r[1], r[-1]) for r in rows] == [
        ("1×3×48×64", "semseg_logits", "yes"),
        ("1×3×48×64", "depth_m", "yes"),
        ("2×3×37×51", "semseg_logits", "yes"),
        ("2×3×37×51", "depth_m", "yes"),
    ]


def test_graph_has_dynamic_axes_final_outputs_and_metadata(exported: dict) -> None:
    model = onnx.load(str(exported["onnx"]))
    onnx.checker.check_model(model)
    dims = lambda value: [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]  # noqa: E731
    assert [(i.name, dims(i)) for i in model.graph.input] == [("rgb", ["batch", 3, "height", "width"])]
    assert [(o.name, dims(o)) for o in model.graph.output] == [
        ("semseg_logits", ["batch", 19, "height", "width"]),
        ("depth_m", ["batch", 1, "height", "width"]),
    ]
    props = {p.key: p.value for p in model.metadata_props}
    assert json.loads(props["semseg_classes"]) == list(CLASS_NAMES)
    assert props["model_name"] == exported["name"] and props["depth_unit"] == "metres"


def test_check_reports_a_graph_that_differs_from_pytorch(exported: dict) -> None:
    wrapper = ExportModel(exported["module"]).eval()
    assert all(row["ok"] for row in check_onnx(exported["onnx"], wrapper, [(1, 40, 56)]))
    first_conv = next(wrapper.model.parameters())
    original = first_conv.detach().clone()
    with torch.no_grad():
        first_conv.mul_(1.5)  # every output changes
    try:
        rows = check_onnx(exported["onnx"], wrapper, [(1, 40, 56)])
    finally:
        with torch.no_grad():
            first_conv.copy_(original)  # the module is shared with the other tests
    assert not any(row["ok"] for row in rows)
    assert all(row["max_abs_diff"] > row["tolerance"] == 1e-4 * max(1.0, row["scale"]) for row in rows)


def test_unloadable_checkpoint_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(b"not a checkpoint")
    assert main(["export", "--checkpoint", str(bad), "--out", str(tmp_path / "m.onnx")]) == 1
    assert f"mtl export: error: {bad}: not a loadable mtl checkpoint" in capsys.readouterr().err
    assert not (tmp_path / "m.onnx").exists()


@pytest.mark.filterwarnings("ignore::torch.jit.TracerWarning")  # shape checks inside nn.MultiheadAttention
def test_adaptive_bins_head_exports_at_a_fixed_size(
    dataset: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Its pooling to a fixed grid has no ONNX form for a dynamic size: a clear error, then --fixed_size works."""
    flags = ["--model_name", "deeplabv3p", "--depth_head", "adabins"]
    ckpt = calibrated_checkpoint(dataset, tmp_path / "adabins.ckpt", flags)
    path = tmp_path / "adabins.onnx"
    base = ["export", "--checkpoint", str(ckpt), "--out", str(path), "--height", "64", "--width", "64"]
    assert main(base) == 1
    err = capsys.readouterr().err
    assert f"mtl export: error: {ckpt}: the ONNX exporter cannot express this model with a dynamic height" in err
    assert "try --fixed_size" in err
    assert main([*base, "--fixed_size"]) == 0
    out = capsys.readouterr().out
    assert "dynamic batch, fixed 64×64" in out and out.count(" yes") == 4
    model = onnx.load(str(path))
    dims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
    assert dims == ["batch", 3, 64, 64]
