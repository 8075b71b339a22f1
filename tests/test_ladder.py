"""scripts/ladder.sh and the table helpers scripts/ladder_table.py (docs/LADDER.md) and scripts/methods_table.py
(docs/METHODS.md), without training.

The table helpers run on hand-made run folders (config.yaml + metrics.csv, conftest.write_run builds
them, plus one TensorBoard event file for the training time); the shell script runs with LADDER_DRY=1,
which prints its commands instead of running them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import write_run

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
TABLE = REPO / "scripts" / "ladder_table.py"
LADDER = REPO / "scripts" / "ladder.sh"


def scores(miou: float, si: float) -> dict[str, float]:
    return {
        "metrics_summary/semseg": miou,
        "metrics_summary/depth": si,
        "metrics_summary/grader": max(miou - 50, 0) + max(50 - si, 0),
        "metrics_summary/total": miou - si,
    }


def run_table(runs: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(TABLE), str(runs), *args], capture_output=True, text=True, timeout=120)


def test_table_of_two_hand_made_runs(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    # template: best epoch is epoch 1 (grader 10 + 5 = 15); 2 min of training
    write_run(runs / "1_template" / "seed0", {"model_name": "deeplabv3p", "seed": 0, "optimizer": "sgd"},
              [scores(55.0, 48.0), scores(60.0, 45.0)], event_times=(100.0, 160.0, 220.0))
    # Adam: best epoch 0 (grader 20 + 10 = 30); no event file, so no training time
    write_run(runs / "2_adam" / "seed0", {"model_name": "deeplabv3p", "seed": 0, "optimizer": "adam"},
              [scores(70.0, 40.0), scores(52.0, 49.0)])
    result = run_table(runs, "--out", str(tmp_path / "ladder.md"))
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith("| step | grader | mIoU | SI-logRMSE | total |")
    rows = {line.split(" | ")[0].lstrip("| "): [c.strip() for c in line.strip("|").split("|")] for line in lines[2:]}
    template = rows["1_template — template default (SGD 0.01, batch 4)"]
    adam = rows["2_adam — Adam 1e-4"]
    # grader, mIoU, SI-logRMSE, total of the best epoch; Δ against the step above; published figures; time
    assert template[1:6] == ["15.00", "60.00", "45.00", "15.00", "— / —"]
    assert template[7] == "39.84 / 40.05 / 43.53" and template[8] == "2.0 min"
    assert adam[1:6] == ["30.00", "70.00", "40.00", "30.00", "+15.00 / +15.00"]
    assert adam[6] == "+3.64 / +3.37 / -0.38" and adam[8] == "—"
    assert (tmp_path / "ladder.md").read_text() == result.stdout


def test_mean_and_seeds_and_the_skipped_imagenet_step(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed, miou in ((0, 60.0), (1, 64.0)):
        write_run(runs / "3_batch16" / f"seed{seed}", {"seed": seed}, [scores(miou, 30.0)])
    write_run(runs / "4_dilation" / "seed0", {"seed": 0}, [scores(70.0, 30.0)])
    result = run_table(runs)
    assert result.returncode == 0, result.stderr
    text = result.stdout
    assert "| 32.00 (30.00, 34.00) | 62.00 (60.00, 64.00) | 30.00 (30.00, 30.00) |" in text
    lines = text.splitlines()
    imagenet = next(i for i, line in enumerate(lines) if line.startswith("| ImageNet-pretrained encoder"))
    assert "not run" in lines[imagenet] and lines[imagenet + 1].startswith("| 4_dilation")
    assert "+8.00 / +8.00" in lines[imagenet + 1]  # against batch16's mean 32, not against the skipped step


def test_table_names_an_empty_or_missing_folder(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    result = run_table(tmp_path / "empty")
    assert result.returncode == 0 and "no run directories" in result.stderr
    result = run_table(tmp_path / "absent")
    assert result.returncode == 1 and "absent" in result.stderr


def test_ladder_script_dry_run_lists_every_step(tmp_path: Path) -> None:
    env = {**os.environ, "LADDER_DRY": "1", "LADDER_SCALE": "tiny", "LADDER_DIR": str(tmp_path / "ladder"),
           "LADDER_SEEDS": "0 1"}
    result = subprocess.run(["bash", str(LADDER)], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    commands = [line for line in result.stdout.splitlines() if line.startswith("+ ")]
    assert " data synth " in commands[0] and "--num-train 16" in commands[0]
    trains = [c for c in commands if " train " in c]
    assert len(trains) == 14  # 7 steps × 2 seeds
    expected = ["course_template", "course_template", "course_tuned_optimizer", "course_pretrained_dilation",
                "course_aspp_decoder", "course_branched", "course_distillation"]
    for command, config in zip(trains[::2], expected):
        assert f"configs/{config}.yaml" in command and "--model_encoder_name resnet18" in command
    # steps held constant: batch 4 for E = 1 epoch, batch 16 (from the config) for 4 epochs
    assert "--num_epochs 1 " in trains[0] and "--optimizer adam --optimizer_lr 0.0001" in trains[2]
    assert all("--num_epochs 4 " in c and "--pretrained false" in c for c in trains[4:])
    assert commands[-1].endswith("ladder.md") and "ladder_table.py" in commands[-1]
    for config in expected:  # every config the script names exists
        assert (REPO / "configs" / f"{config}.yaml").is_file()
    bad = subprocess.run(["bash", str(LADDER)], capture_output=True, text=True, timeout=60,
                         env={**env, "LADDER_TRAIN": "20"})
    assert bad.returncode == 2 and "multiple of 16" in bad.stderr


def test_methods_table_means_the_seeds_of_each_method_with_delta_m(tmp_path: Path) -> None:
    """scripts/methods_table.py (docs/METHODS.md): Δm per seed against the same seed's single-task runs, by hand."""
    runs = tmp_path / "runs"

    def row(miou: float = 0.0, accuracy: float = 0.0, mae: float = 0.0, rel: float = 0.0) -> dict[str, float]:
        return {**scores(miou, 30.0), "metrics_task_semseg/pixel_accuracy": accuracy,
                "metrics_task_depth/mae": mae, "metrics_task_depth/rel": rel}

    for seed in (0, 1):
        base = {"model_name": "deeplabv3p", "seed": seed, "loss_weighting": "fixed"}
        write_run(runs / f"single_semseg_seed{seed}", {**base, "tasks": ["semseg"]}, [row(miou=40, accuracy=80)])
        write_run(runs / f"single_depth_seed{seed}", {**base, "tasks": ["depth"]}, [row(mae=5, rel=0.5)])
    both = {"model_name": "deeplabv3p", "loss_weighting": "fixed", "tasks": ["semseg", "depth"]}
    # seed 0: mIoU +10 %, abs error −10 % → Δm = (10 + 0 + 10 + 0) / 4 = 5; seed 1: mIoU −10 % → −2.5
    write_run(runs / "fixed_seed0", {**both, "seed": 0}, [row(miou=44, accuracy=80, mae=4.5, rel=0.5)])
    write_run(runs / "fixed_seed1", {**both, "seed": 1}, [row(miou=36, accuracy=80, mae=5, rel=0.5)])

    done = subprocess.run([sys.executable, str(REPO / "scripts" / "methods_table.py"), str(runs)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    fixed = next(line for line in done.stdout.splitlines() if line.startswith("| fixed |"))
    assert "| 40.00 | 80.00 | 4.75 | 0.50 | 1.25 (5.00, -2.50) |" in fixed
    assert "| single_semseg | — | 40.00 | 80.00 |  |  | 0 (baseline) |" in done.stdout
