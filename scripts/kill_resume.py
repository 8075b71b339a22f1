"""Kill a training run at random moments (SIGKILL, no warning), resume it each time, and compare with a run that
was never interrupted: same final weights bit for bit, same metrics.csv rows, same global step.

    python scripts/kill_resume.py --kills 6 --seed 0 [--workdir DIR]

Uses a small generated dataset and deterministic CPU kernels. Each attempt is killed after a delay drawn
uniformly up to half the uninterrupted run's duration, so kills fall anywhere: during a step, a checkpoint
write, validation, start-up.
"""

from __future__ import annotations

import argparse
import csv
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

FLAGS = ["--model_encoder_name", "resnet18", "--batch_size", "2", "--batch_size_validation", "2",
         "--aug_input_crop_size", "64", "--workers", "1", "--workers_validation", "0", "--depth_stats", "miniscapes",
         "--num_epochs", "3", "--checkpoint_every_n_steps", "2", "--deterministic", "true", "--progress_bar", "false",
         "--prepare_submission", "false", "--optimizer", "adam", "--optimizer_lr", "0.001", "--log_every_n_steps", "1"]


def mtl(*args: str) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "mtl.cli.main", *args], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def rows(run: Path) -> list[dict[str, str]]:
    with (run / "metrics.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--kills", type=int, default=6)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--workdir", type=Path, default=None)
    args = parser.parse_args()
    work = args.workdir or Path(tempfile.mkdtemp(prefix="kill_resume_"))
    data = work / "data"
    if not data.exists():
        subprocess.run([sys.executable, "-m", "mtl.cli.main", "data", "synth", "--out", str(data), "--num-train", "12",
                        "--num-val", "3", "--num-test", "0", "--width", "128", "--height", "64"], check=True,
                       capture_output=True)
    common = ["--dataset_root", str(data), *FLAGS]
    reference, victim = work / "reference", work / "victim"
    start = time.monotonic()
    assert mtl("train", "--log_dir", str(reference), *common).wait() == 0
    duration = time.monotonic() - start
    rng = random.Random(args.seed)
    kills = 0
    while kills < args.kills:
        resume = ["--resume", str(victim)] if (victim / "checkpoints" / "last.ckpt").exists() else []
        process = mtl("train", "--log_dir", str(victim), *resume, *common)
        delay = rng.uniform(0.5, duration / 2)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
            print(f"kill {kills}: after {delay:.1f} s", flush=True)
            continue
        print(f"finished before the kill at {delay:.1f} s (exit {process.returncode}); starting over", flush=True)
        break
    final = mtl("train", "--log_dir", str(victim), "--resume", str(victim), *common)
    code = final.wait()
    a = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(victim / "checkpoints" / "last.ckpt", weights_only=True)
    same_weights = all(torch.equal(v, b["state_dict"][k]) for k, v in a["state_dict"].items())
    same_rows = rows(reference) == rows(victim)
    print(f"{kills} kills, final resume exit {code}; global step {a['global_step']} vs {b['global_step']}; "
          f"weights identical: {same_weights}; metrics.csv rows identical: {same_rows} ({work})")
    return 0 if same_weights and same_rows and a["global_step"] == b["global_step"] else 1


if __name__ == "__main__":
    sys.exit(main())
