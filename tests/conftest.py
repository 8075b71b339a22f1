"""Shared fixtures: a tiny dataset in the MiniScapes layout, written through the project's format writers.

The suite runs as on an AVX2 CPU without bf16 units (MTL_HARDWARE=avx2, inherited by every subprocess), so
``--precision auto`` means fp32 and ``--accelerator auto`` the CPU on every machine, with or without bf16 units
or a GPU: tests that compare numbers compare fp32 numbers. The other paths (bf16-mixed, 16-mixed with a
gradient scaler) are run end to end by tests/test_precision_paths.py, which names the hardware itself, and
tests/test_hardware.py checks what is detected without the override.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import yaml

from mtl.data.formats import write_depth, write_rgb, write_semseg
from mtl.datasets import DatasetLayout

os.environ.setdefault("MTL_HARDWARE", "avx2")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # `make test` runs one worker per core (pytest-xdist): one thread each (and in their subprocesses), so that
    # the workers share the cores instead of oversubscribing them.
    os.environ["OMP_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

SPLIT_ORDER = ("train", "val", "test")

# `mtl train` flags that keep a test run small: ResNet-18, 64² crops, no worker processes, fixed depth stats.
FAST_TRAIN_FLAGS = [
    "--model_encoder_name", "resnet18",
    "--batch_size", "2",
    "--batch_size_validation", "2",
    "--aug_input_crop_size", "64",
    "--workers", "0",
    "--workers_validation", "0",
    "--depth_stats", "miniscapes",
    "--progress_bar", "false",
    "--log_every_n_steps", "1",
]


def make_tiny_dataset(
    root: str | Path,
    sizes: dict[str, int] | None = None,
    width: int = 64,
    height: int = 32,
    seed: int = 0,
    test_gt: bool = True,
) -> Path:
    """Write random-but-valid samples to ``root/<split>/{rgb,semseg,depth}/<i>.{jpg,png}`` and return ``root``.

    Semseg: random trainIds 0..18 with ~5 % ignore (255). Depth: log-uniform 3–400 m, so some pixels fall
    outside [4, 300] m and are stored invalid (0), plus a NaN (invalid) top band like the sky.
    The test split gets RGB only; with ``test_gt`` its ground truth goes to ``root/test_gt/{semseg,depth}``
    (the grader's GT layout). Same arguments → same files.
    """
    root = Path(root)
    sizes = {"train": 4, "val": 2, "test": 2} if sizes is None else sizes
    rng = np.random.default_rng(seed)
    for split in SPLIT_ORDER:
        for i in range(sizes.get(split, 0)):
            rgb = rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)
            ids = rng.integers(0, 19, size=(height, width)).astype(np.uint8)
            ids[rng.random((height, width)) < 0.05] = 255
            depth = np.exp(rng.uniform(np.log(3.0), np.log(400.0), size=(height, width)))
            depth[: max(1, height // 8)] = np.nan
            if split == "test":
                gt_root = root / "test_gt" if test_gt else None
            else:
                gt_root = root / split
            (root / split / "rgb").mkdir(parents=True, exist_ok=True)
            write_rgb(root / split / "rgb" / f"{i}.jpg", rgb)
            if gt_root is not None:
                (gt_root / "semseg").mkdir(parents=True, exist_ok=True)
                (gt_root / "depth").mkdir(parents=True, exist_ok=True)
                write_semseg(gt_root / "semseg" / f"{i}.png", ids)
                write_depth(gt_root / "depth" / f"{i}.png", depth, "invalidate")
    return root


def train_in_process(*argv: str, threads: int = 1) -> None:
    """`mtl train ARGV` in this process with ``threads`` torch threads: the numbers of a subprocess started with
    OMP_NUM_THREADS=threads (a kill test's victim), without the seconds a new Python spends importing torch and
    Lightning."""
    import torch

    from mtl.cli.main import main

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        code = main(["train", *argv])
    finally:
        torch.set_num_threads(before)
    assert code == 0, f"mtl train {' '.join(argv)} exited with {code}"


def val_split(root: str | Path, predictor, split: str = "val"):
    """A split of a MiniScapes-layout dataset with the ground truth of the predictor's tasks."""
    from mtl.datasets import DATASETS, SplitDataset

    return SplitDataset(DATASETS["miniscapes"](root), split, predictor.tasks)


@pytest.fixture
def tiny_dataset(tmp_path: Path) -> Path:
    """A fresh tiny dataset (4 train, 2 val, 2 test + test_gt) at 64×32."""
    return make_tiny_dataset(tmp_path / "data")


def write_run(folder: Path, config: dict, epochs: list[dict[str, float]], event_times: tuple[float, ...] = ()) -> Path:
    """config.yaml, the validation rows of metrics.csv (one per epoch) and optionally an event file whose
    records carry ``event_times`` (the training time is last − first)."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    keys = sorted({k for row in epochs for k in row})
    lines = ["step,epoch," + ",".join(keys)]
    lines += [f"{2 * (e + 1)},{e}," + ",".join(str(row.get(k, "")) for k in keys) for e, row in enumerate(epochs)]
    (folder / "metrics.csv").write_text("\n".join(lines) + "\n")
    if event_times:
        from tensorboard.compat.proto.event_pb2 import Event
        from tensorboard.summary.writer.record_writer import RecordWriter

        with (folder / "events.out.tfevents.1.host.1.0").open("wb") as f:
            writer = RecordWriter(f)
            for step, wall_time in enumerate(event_times):
                writer.write(Event(wall_time=wall_time, step=step).SerializeToString())
    return folder


class NpzSamplesLayout(DatasetLayout):
    """A layout for tests that define their own tasks: ``<root>/<split>/<i>.npz`` holding ``rgb`` and one array per
    stored task, under the task's name. Subclasses set ``info`` (and ``codecs``) and register themselves."""

    def splits(self) -> tuple[str, ...]:
        return tuple(s for s in ("train", "val") if (self.root / s).is_dir())

    def split_size(self, split: str) -> int:
        return len(list((self.root / split).glob("*.npz")))

    def stored_tasks_in(self, split: str) -> tuple[str, ...]:
        return self.info.stored_tasks

    def read(self, split: str, index: int, tasks: Sequence[str]) -> dict[str, np.ndarray]:
        with np.load(self.root / split / f"{index}.npz") as sample:
            return {"rgb": sample["rgb"], **{task: sample[task] for task in tasks}}
