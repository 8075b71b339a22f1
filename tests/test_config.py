"""`mtl train` configuration: course defaults, YAML presets under flags, errors that name the flag, cmd.txt keys."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import make_tiny_dataset

from mtl.engine import schedule
from mtl.config import experiment_items, parse_config


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_dataset(tmp_path_factory.mktemp("cfg") / "data"))


def test_course_defaults(root: str) -> None:
    cfg = parse_config(["--dataset_root", root])
    assert (cfg.num_epochs, cfg.batch_size, cfg.batch_size_validation, cfg.aug_input_crop_size) == (16, 4, 8, 256)
    assert (cfg.optimizer, cfg.optimizer_lr, cfg.optimizer_momentum, cfg.optimizer_weight_decay) == ("sgd", 0.01, 0.9, 1e-4)
    assert (cfg.lr_scheduler, cfg.lr_scheduler_power, cfg.model_name, cfg.model_encoder_name) == (
        "poly", 0.9, "deeplabv3p", "resnet34")
    assert (cfg.loss_weight_semseg, cfg.loss_weight_depth, cfg.workers, cfg.workers_validation) == (0.5, 0.5, 16, 4)
    assert cfg.aug_geom_reflect is False and cfg.observe_valid_ids == (0, 100) and cfg.tasks == ("semseg", "depth")


def test_evaluation_protocol_defaults_to_the_datasets_and_is_recorded(root: str, capsys) -> None:
    assert parse_config(["--dataset_root", root]).eval_protocol == "course"  # MiniScapes: the course's grader
    assert parse_config(["--dataset_root", root, "--eval_protocol", "libmtl"]).eval_protocol == "libmtl"
    assert experiment_items(parse_config(["--dataset_root", root]))["eval_protocol"] == "course"  # cmd.txt, resume
    from mtl.datasets import DATASETS

    assert DATASETS["nyuv2"].eval_protocol == DATASETS["cityscapes_npy"].eval_protocol == "mtan"  # their tables'
    with pytest.raises(SystemExit):
        parse_config(["--dataset_root", root, "--eval_protocol", "nash"])
    assert "--eval_protocol: invalid choice: 'nash'" in capsys.readouterr().err


@pytest.mark.parametrize("text,expected", [("yes", True), ("T", True), ("1", True), ("n", False), ("False", False)])
def test_course_boolean_spellings(root: str, text: str, expected: bool) -> None:
    assert parse_config(["--dataset_root", root, "--aug_geom_reflect", text]).aug_geom_reflect is expected


def test_yaml_preset_is_overridden_by_flags(root: str, tmp_path: Path) -> None:
    preset = tmp_path / "p.yaml"
    preset.write_text("optimizer: adam\noptimizer_lr: 0.0001\ndilations: [false, false, true]\nbatch_size: 16\n")
    cfg = parse_config(["--config", str(preset), "--dataset_root", root, "--batch_size", "8"])
    assert (cfg.optimizer, cfg.optimizer_lr, cfg.dilations, cfg.batch_size) == ("adam", 1e-4, (False, False, True), 8)


@pytest.mark.parametrize(
    "flags,message",
    [
        (["--model_name", "unet"], "--model_name"),
        (["--optimizer_lr", "-0.1"], "--optimizer_lr"),
        (["--batch_size", "0"], "--batch_size"),
        (["--aug_geom_tilt_max_deg", "60"], "--aug_geom_tilt_max_deg"),
        (["--aug_geom_reflect", "maybe"], "--aug_geom_reflect"),
        (["--dilations", "F,T"], "--dilations"),
        (["--tasks", "semseg,normals"], "--tasks"),
        (["--depth_stats", "27,-1"], "--depth_stats"),
        (["--aug_geom_scale_min", "2", "--aug_geom_scale_max", "1"], "--aug_geom_scale_min"),
    ],
)
def test_bad_values_stop_with_the_flag_named(root: str, flags: list[str], message: str, capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        parse_config(["--dataset_root", root, *flags])
    assert exc.value.code == 2
    assert message in capsys.readouterr().err


def test_missing_dataset_and_bad_preset_are_named(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        parse_config(["--dataset_root", str(tmp_path / "nowhere")])
    err = capsys.readouterr().err
    assert "--dataset_root" in err and "no train/ folder" in err
    preset = tmp_path / "bad.yaml"
    preset.write_text("optimizer_learning_rate: 0.1\n")
    with pytest.raises(SystemExit):
        parse_config(["--config", str(preset), "--dataset_root", str(tmp_path)])
    assert "unknown flag 'optimizer_learning_rate'" in capsys.readouterr().err


def test_cmd_txt_keeps_only_experiment_flags(root: str) -> None:
    items = experiment_items(parse_config(["--dataset_root", root, "--workers", "3", "--log_dir", "/tmp/x"]))
    assert "optimizer_lr" in items and "model_name" in items and "seed" in items
    for key in ("dataset_root", "log_dir", "workers", "workers_validation", "batch_size_validation", "resume",
                "num_steps_visualization_interval", "observe_valid_ids", "num_epochs"):
        assert key not in items


def test_poly_schedule_matches_the_course_and_extends_without_a_jump() -> None:
    segments = [schedule.Segment(0, 16, 1.0)]
    course = [(1 - e / 16) ** 0.9 for e in range(16)]
    assert [schedule.poly_factor(e, segments, 0.9) for e in range(16)] == pytest.approx(course)
    # a finished 16-epoch run continued to 32 epochs: the factor keeps falling, never rises
    extended = schedule.extend(segments, 16, 32, 0.9)
    factors = [schedule.poly_factor(e, extended, 0.9) for e in range(32)]
    assert factors[:16] == pytest.approx(course)
    assert all(b < a for a, b in zip(factors[15:-1], factors[16:]))
    assert factors[16] < course[15]
    with pytest.raises(ValueError, match="only grow"):
        schedule.extend(segments, 8, 10, 0.9)
    # warm-up scales the first factors linearly
    assert schedule.poly_factor(0, segments, 0.9, warmup=3) == pytest.approx(0.25)


def test_flag_defaults_are_the_typed_options_defaults(root: str) -> None:
    """One source for each default: the flags left alone give exactly the dataclasses' own defaults."""
    from mtl.models import model_options
    from mtl.models.options import ModelOptions
    from mtl.optimization import OptimizerOptions, ScheduleOptions

    cfg = parse_config(["--dataset_root", root])
    assert model_options(cfg) == ModelOptions()
    assert OptimizerOptions.from_flags(cfg) == OptimizerOptions()
    assert ScheduleOptions.from_flags(cfg) == ScheduleOptions()


def test_every_optimizer_name_is_a_choice_and_builds_its_optimizer(root: str) -> None:
    import torch

    from mtl.config import build_parser
    from mtl.engine.optim import build_optimizer
    from mtl.optimization import OPTIMIZERS, OptimizerOptions

    choices = next(a.choices for a in build_parser()._actions if a.dest == "optimizer")
    assert tuple(choices) == tuple(OPTIMIZERS) == ("sgd", "adam", "adamw")
    expected = {"sgd": torch.optim.SGD, "adam": torch.optim.Adam, "adamw": torch.optim.AdamW}
    for name in choices:
        options = OptimizerOptions.from_flags(parse_config(["--dataset_root", root, "--optimizer", name,
                                                            "--optimizer_lr", "0.5", "--optimizer_momentum", "0.7"]))
        optimizer = build_optimizer([{"params": [torch.nn.Parameter(torch.zeros(1))]}], options)
        group = optimizer.param_groups[0]
        assert type(optimizer) is expected[name] and (group["lr"], group["weight_decay"]) == (0.5, 1e-4)
        assert group.get("momentum") == (0.7 if name == "sgd" else None)
    with pytest.raises(ValueError, match="unknown optimizer 'lion'; choose among sgd, adam, adamw"):
        build_optimizer([{"params": [torch.nn.Parameter(torch.zeros(1))]}], OptimizerOptions("lion"))
