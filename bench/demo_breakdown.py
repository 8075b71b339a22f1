"""Where a training run's wall time goes: start-up, optimiser steps, waiting for data, validation, checkpoints,
pictures, test prediction.

Usage: python bench/demo_breakdown.py DATA_ROOT RUN_DIR [mtl train flags…]   (default: configs/demo.yaml)

Runs `mtl train` in this process with a callback that timestamps Lightning's hooks, then predicts the test
split as `mtl train` does, and prints each phase's seconds and its share. "steps" is the time inside the
training step (forward, backward, optimiser); "data" the wait for the next batch between steps.
"""

from __future__ import annotations

import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from benchlib import hardware_line

START = time.perf_counter()

from mtl.grading.submission import make_submission  # noqa: E402  (imports are part of the start-up measured)
from mtl.config import parse_config  # noqa: E402
from mtl.engine.callbacks import LastCheckpoint  # noqa: E402
from mtl.engine.pictures import Pictures  # noqa: E402
from mtl.engine.train import run_training  # noqa: E402


class Phases(pl.Callback):
    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.mark = time.perf_counter()
        self.first_batch: float | None = None
        self.steps = 0

    def _lap(self, phase: str) -> None:
        now = time.perf_counter()
        self.seconds[phase] += now - self.mark
        self.mark = now

    def on_train_start(self, *args: Any) -> None:
        self._lap("start-up (imports, data, model, first checkpoint)")

    def on_train_batch_start(self, *args: Any) -> None:
        self._lap("data (waiting for the next batch)")

    def on_train_batch_end(self, *args: Any) -> None:
        self._lap("steps (forward, backward, optimiser)")
        self.steps += 1

    def on_validation_start(self, *args: Any) -> None:
        self._lap("data (waiting for the next batch)")

    def on_validation_end(self, *args: Any) -> None:
        self._lap("validation")

    def on_train_end(self, *args: Any) -> None:
        self._lap("epoch ends (checkpoints, logs)")


def main() -> None:
    data, run, *flags = sys.argv[1:]
    cfg = parse_config(["--config", "configs/demo.yaml", "--dataset_root", data, "--log_dir", run,
                        "--prepare_submission", "no", *flags])
    phases = Phases()
    # Checkpoints and pictures are written inside other hooks: their time is counted apart (and out of the
    # phase they interrupt).
    for cls, hook, phase in ((LastCheckpoint, "on_train_batch_end", "checkpoints"), (LastCheckpoint, "on_train_epoch_end", "checkpoints"),
                             (Pictures, "on_train_batch_end", "pictures"), (Pictures, "on_validation_epoch_end", "pictures")):
        original = getattr(cls, hook)

        def wrapper(self: Any, *args: Any, _original: Any = original, _phase: str = phase, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return _original(self, *args, **kwargs)
            finally:
                spent = time.perf_counter() - start
                phases.seconds[_phase] += spent
                phases.mark += spent

        setattr(cls, hook, wrapper)
    phases.mark = START
    run_training(cfg, [phases])
    fit_end = time.perf_counter()
    make_submission(Path(run), Path(data), cfg.batch_size_validation)
    phases.seconds["test prediction and submission.zip"] = time.perf_counter() - fit_end
    total = time.perf_counter() - START
    print(hardware_line("cpu"))
    print(f"{phases.steps} optimiser steps; total {total:.1f} s\n")
    print("| phase | seconds | share of the run | share of the training phase |")
    print("|---|---|---|---|")
    training_phase = sum(v for k, v in phases.seconds.items() if not k.startswith(("start-up", "test prediction")))
    for phase, seconds in sorted(phases.seconds.items(), key=lambda kv: -kv[1]):
        inside = "" if phase.startswith(("start-up", "test prediction")) else f"{100 * seconds / training_phase:.1f} %"
        print(f"| {phase} | {seconds:.1f} | {100 * seconds / total:.1f} % | {inside} |")


if __name__ == "__main__":
    main()
