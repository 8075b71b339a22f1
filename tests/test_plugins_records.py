"""A run records the flags of the plug-ins it uses only (its dataset's, its tasks', its weighting's, and the general
flags) in config.yaml, cmd.txt and checkpoints; a run begun when cmd.txt held every flag still resumes; the results
table compares a flag between the runs that record it."""

from __future__ import annotations

import zipfile
from pathlib import Path

from conftest import write_run

from mtl.config import NON_EXPERIMENT_KEYS, build_parser, experiment_items, parse_config, plain_values
from mtl.engine.rundir import check_resume, write_source_zip
from mtl.reporting.runs import load_runs
from mtl.reporting.table import differing_keys
from mtl.tasks import TASKS

PLUGIN_GROUPS = ("task ", "dataset ", "weighting ")


def flags_in_use(tasks: set[str], dataset: str, weighting: str) -> set[str]:
    """Every `mtl train` flag but those of the other plug-ins, read from the parser's groups ("task depth", …)."""
    parser = build_parser()
    chosen = {f"task {t}" for t in tasks} | {f"dataset {dataset}", f"weighting {weighting}"}
    flags = {action.dest for action in parser._actions if action.dest != "help"}
    for group in parser._action_groups:
        if group.title.startswith(PLUGIN_GROUPS) and group.title not in chosen:
            flags -= {action.dest for action in group._group_actions}
    return flags - {f"loss_weight_{name}" for name in TASKS if name not in tasks}


def test_a_run_records_the_flags_of_the_plugins_it_uses(tiny_dataset: Path) -> None:
    cfg = parse_config(["--dataset_root", str(tiny_dataset), "--tasks", "semseg", "--loss_weighting", "gradnorm",
                        "--weighting_gradnorm_alpha", "0.5"])
    values = plain_values(cfg)
    expected = flags_in_use({"semseg"}, "miniscapes", "gradnorm")
    assert set(values) == expected
    assert {"loss_depth", "loss_normals", "loss_weight_depth", "dataset_resize", "num_classes"}.isdisjoint(values)
    assert values["weighting_gradnorm_alpha"] == 0.5 and values["tasks"] == ["semseg"]
    assert set(experiment_items(cfg)) == expected - NON_EXPERIMENT_KEYS


def test_a_run_begun_when_cmd_txt_held_every_flag_resumes(tiny_dataset: Path, tmp_path: Path) -> None:
    cfg = parse_config(["--dataset_root", str(tiny_dataset), "--log_dir", str(tmp_path / "run")])
    write_source_zip(tmp_path, cfg)
    with zipfile.ZipFile(tmp_path / "source.zip") as zf:
        files = {name: zf.read(name) for name in zf.namelist()}
    every_flag = {**{k: str(v) for k, v in vars(cfg).items() if k not in NON_EXPERIMENT_KEYS}, **experiment_items(cfg)}
    assert "weighting_gradnorm_alpha" in every_flag and "loss_normals" in every_flag
    files["cmd.txt"] = "".join(f"{key}: {value}\n" for key, value in sorted(every_flag.items())).encode()
    with zipfile.ZipFile(tmp_path / "source.zip", "w") as zf:
        for name, data in files.items():
            zf.writestr(name, data)
    assert check_resume(tmp_path, cfg) == []
    cfg.optimizer_lr = 0.02
    cfg.allow_changed_code = True
    assert check_resume(tmp_path, cfg) == ["--optimizer_lr: 0.01 → 0.02"]


def test_a_flag_only_some_runs_record_is_a_column_only_where_their_values_differ(tmp_path: Path) -> None:
    epochs = [{"metrics_summary/semseg": 50.0, "metrics_summary/total": 50.0}]
    base = {"dataset": "miniscapes", "tasks": ["semseg"], "model_name": "deeplabv3p", "optimizer_lr": 0.01}
    write_run(tmp_path / "fixed", {**base, "loss_weighting": "fixed"}, epochs)
    write_run(tmp_path / "gradnorm", {**base, "loss_weighting": "gradnorm", "weighting_gradnorm_alpha": 1.5}, epochs)
    runs, errors = load_runs(tmp_path)
    assert errors == [] and differing_keys(runs) == ["loss_weighting"]
    low = {**base, "loss_weighting": "gradnorm", "weighting_gradnorm_alpha": 0.5}
    write_run(tmp_path / "gradnorm_low", low, epochs)
    runs, _ = load_runs(tmp_path)
    assert differing_keys(runs) == ["loss_weighting", "weighting_gradnorm_alpha"]
