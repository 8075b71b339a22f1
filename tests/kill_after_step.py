"""`mtl train` that SIGKILLs itself right after a given optimiser step (and that step's checkpoint), for tests
of resuming after a crash that do not depend on timing: python kill_after_step.py STEP TRAIN_FLAGS…"""

from __future__ import annotations

import os
import signal
import sys

import pytorch_lightning as pl

from mtl.config import parse_config
from mtl.engine.train import run_training


class KillAfterStep(pl.Callback):
    """Runs after LastCheckpoint (extra callbacks come last), so the step's checkpoint is on disk."""

    def __init__(self, step: int) -> None:
        self.step = step

    def on_train_batch_end(self, trainer: pl.Trainer, *args: object) -> None:
        if trainer.global_step == self.step:
            os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    run_training(parse_config(sys.argv[2:]), [KillAfterStep(int(sys.argv[1]))])
