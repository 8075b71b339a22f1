"""Checkpoints describe themselves (the model's name and typed options, each task's flags and measured state, the
dataset's name and facts, the precision) and are rebuilt from that, not through the `mtl train` parser: a flag
removed since is a warning naming it, an unusable value one line naming its key. The fixtures were written by
tests/fixtures/make_checkpoint.py: checkpoint.ckpt by today's code, checkpoint_flags_only.ckpt by the code before
checkpoints described themselves; both hold the same tiny network."""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

import pytest
import torch

import mtl.config
from mtl.cli.main import main
from mtl.config import build_parser
from mtl.inference.checkpoint import CheckpointError
from mtl.inference.predictor import PredictorSpec, checkpoint_flags, load_predictor

FIXTURES = Path(__file__).resolve().parent / "fixtures"
CURRENT = FIXTURES / "checkpoint.ckpt"
FLAGS_ONLY = FIXTURES / "checkpoint_flags_only.ckpt"


@pytest.fixture(autouse=True)
def fixture_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fixtures' encoder (module fixture_encoder, recorded in checkpoint.ckpt) can be imported."""
    monkeypatch.syspath_prepend(str(FIXTURES))


def without_flag(monkeypatch: pytest.MonkeyPatch, flag: str) -> None:
    """A version of mtl whose `mtl train` no longer has ``flag``."""
    original = mtl.config.build_parser

    def build() -> argparse.ArgumentParser:
        parser = original()
        action = parser._option_string_actions[flag]
        parser._handle_conflict_resolve(action, [(option, action) for option in action.option_strings])
        return parser

    monkeypatch.setattr(mtl.config, "build_parser", build)


def image() -> torch.Tensor:
    return torch.randint(0, 256, (2, 3, 32, 64), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)


def test_a_checkpoint_is_rebuilt_without_the_train_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_parser() -> None:
        raise AssertionError("the mtl train parser was used")

    monkeypatch.setattr(mtl.config, "build_parser", no_parser)
    predictor = load_predictor(CURRENT)
    spec = predictor.spec
    assert (spec.model, spec.options.encoder.name) == ("deeplabv3p", "fixture_tiny")
    assert spec.options.context.aspp_rates == (1, 2, 3)
    assert (spec.options.decoder.channels, spec.options.decoder.skip_channels) == (8, 4)
    assert list(spec.tasks) == ["semseg", "depth"] and spec.tasks["depth"].loss_depth == "l2"
    assert spec.states["depth"] == {"mean": 27.0727, "std": 29.1264}
    assert (spec.dataset, spec.dataset_info.name, spec.precision) == ("miniscapes", "miniscapes", "32")
    weights = torch.load(CURRENT, weights_only=True)["state_dict"]
    loaded = predictor.state_dict()
    assert {f"predictor.{k}" for k in loaded} == set(weights)
    assert all(torch.equal(value, weights[f"predictor.{key}"]) for key, value in loaded.items())


def test_a_checkpoint_from_before_loads_after_a_flag_is_removed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    expected = load_predictor(CURRENT).predict(image())
    importlib.import_module("fixture_encoder")  # that checkpoint does not record its plug-in modules
    without_flag(monkeypatch, "--wandb_project")
    capsys.readouterr()
    predictor = load_predictor(FLAGS_ONLY)
    warning = f"warning: {FLAGS_ONLY}: ignoring 'wandb_project', which this version of mtl does not know"
    assert warning in capsys.readouterr().err.splitlines()
    got = predictor.predict(image())
    assert got.keys() == expected.keys() and all(torch.equal(got[task], expected[task]) for task in got)
    flags = checkpoint_flags(FLAGS_ONLY)  # what `mtl predict --split` reads the dataset's flags from
    assert flags.dataset == "miniscapes" and flags.tasks == ("semseg", "depth") and not hasattr(flags, "wandb_project")


def test_a_checkpoint_loads_after_a_flag_is_removed(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    without_flag(monkeypatch, "--wandb_project")
    load_predictor(CURRENT)
    flags = checkpoint_flags(CURRENT)
    assert flags.model_encoder_name == "fixture_tiny" and not hasattr(flags, "wandb_project")
    warning = f"warning: {CURRENT}: ignoring 'wandb_project', which this version of mtl does not know"
    assert capsys.readouterr().err.splitlines().count(warning) == 1


def edited(tmp_path: Path, edit) -> Path:
    checkpoint = torch.load(CURRENT, weights_only=True)
    edit(checkpoint["hyper_parameters"])
    path = tmp_path / "edited.ckpt"
    torch.save(checkpoint, path)
    return path


def test_keys_this_version_does_not_know_are_warnings_naming_them(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    def add_keys(hyper_parameters: dict) -> None:
        described = hyper_parameters["predictor"]
        described["tasks"]["depth"]["depth_removed_flag"] = 3
        described["model"]["options"]["decoder"]["removed_option"] = True
        described["dataset"]["info"]["removed_fact"] = "x"

    path = edited(tmp_path, add_keys)
    expected = load_predictor(CURRENT).predict(image())
    capsys.readouterr()
    got = load_predictor(path).predict(image())
    assert all(torch.equal(got[task], expected[task]) for task in expected)
    err = capsys.readouterr().err.splitlines()
    for key in ("predictor.tasks.depth.depth_removed_flag", "predictor.model.options.decoder.removed_option",
                "predictor.dataset.info.removed_fact"):
        assert f"warning: {path}: ignoring '{key}', which this version of mtl does not know" in err


def _set(keys: tuple[str, ...], value: object):
    def edit(hyper_parameters: dict) -> None:
        target = hyper_parameters
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return edit


@pytest.mark.parametrize(
    ("keys", "value", "reason"),
    [
        (("predictor", "tasks", "depth", "loss_depth"), "nope", "predictor.tasks.depth: --loss_depth must be one of "),
        (("predictor", "model", "options", "decoder", "channels"), "many",
         "predictor.model.options.decoder.channels: expected int, got 'many'"),
        (("predictor", "model", "options", "context", "aspp_rates"), [1, "x"],
         "predictor.model.options.context.aspp_rates[1]: expected int, got 'x'"),
        (("predictor", "model", "name"), 5, "predictor.model.name: expected a name, got 5"),
        (("predictor", "precision"), "64",
         "predictor.precision: expected one of auto, 32, bf16-mixed, 16-mixed, got '64'"),
        (("predictor", "dataset", "info"), None, "predictor.dataset.info: expected a mapping, got NoneType"),
    ],
)
def test_an_unusable_value_is_one_line_naming_its_key(
    keys: tuple[str, ...], value: object, reason: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = edited(tmp_path, _set(keys, value))
    assert main(["export", "--checkpoint", str(path), "--out", str(tmp_path / "m.onnx")]) == 1
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith(f"mtl export: error: {path}: its description is unusable ({reason}"), err
    with pytest.raises(CheckpointError):
        load_predictor(path)


@pytest.mark.parametrize(
    "argv",
    [
        ["--tasks", "semseg,depth"],
        ["--model_name", "branched", "--context", "vortex", "--vortex_rates", "3,5,7", "--dilations", "F,T,T",
         "--extra_skips", "2", "--se", "--head_kernel", "1", "--task_encoders", "--tasks", "semseg,depth,normals",
         "--depth_head", "adabins", "--adabins_bins", "64", "--loss_normals", "l1", "--precision", "bf16-mixed",
         "--channels_last", "true"],
        ["--dataset", "cityscapes_npy", "--num_classes", "7", "--tasks", "depth,semseg", "--depth_unit", "log"],
    ],
)
def test_a_spec_survives_the_checkpoint(argv: list[str], tmp_path: Path) -> None:
    flags = build_parser().parse_args(argv)
    spec = PredictorSpec.from_flags(flags, {"depth": {"mean": 2.5, "std": 1.25}})
    torch.save({"predictor": spec.to_plain(), "task_state": dict(spec.states)}, tmp_path / "spec.pt")
    saved = torch.load(tmp_path / "spec.pt", weights_only=True)
    assert PredictorSpec.from_plain(saved["predictor"], saved["task_state"], "spec.pt") == spec


def test_a_checkpoint_cannot_make_mtl_import_a_module_of_the_standard_library(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    path = edited(tmp_path, _set(("plugins",), ["antigravity"]))  # its import opens a web browser
    assert main(["export", "--checkpoint", str(path), "--out", str(tmp_path / "m.onnx")]) == 1
    assert capsys.readouterr().err.splitlines() == [
        f"mtl export: error: {path}: records 'antigravity' as a plug-in module, a module of Python's standard library"
    ]
    assert "antigravity" not in sys.modules
