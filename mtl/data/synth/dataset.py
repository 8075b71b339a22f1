"""Render a whole generated dataset in parallel and hand each sample to a layout's writer.

The generator knows no dataset layout: ``write(root, split, index, sample)`` puts one rendered sample into
files (each layout module owns its writer: ``DatasetLayout.write_generated``; `mtl data synth --layout NAME`
finds it in the registry). The MiniScapes layout, the one this generator was made for, writes
``<out>/{train,val}/{rgb,semseg,depth,normals}/<i>.{jpg,png,png,png}``, ``<out>/test/rgb/<i>.jpg`` and the test
ground truth, kept apart for the grader, in ``<out>/test_gt/{semseg,depth,normals}/<i>.png``.
``<out>/synth.json``, written last, records the arguments (and the layout, unless it is MiniScapes) so that
any sample can be regenerated alone.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from multiprocessing import Pool
from pathlib import Path

from tqdm import tqdm

from mtl.data.synth.sample import Sample, check_size, render_sample

SampleWriter = Callable[[Path, str, int, Sample], None]
NATIVE_LAYOUT = "miniscapes"  # its synth.json does not name it: as written before other layouts existed


def _write_sample(job: tuple[str, int, str, int, int, int, SampleWriter]) -> None:
    root, seed, split, index, width, height, write = job
    write(Path(root), split, index, render_sample(seed, split, index, width, height))


def _init_worker() -> None:
    """One thread per worker: the processes already use every core. The renderer itself avoids BLAS;
    torch only matters when the caller had imported it before the pool forked."""
    if "torch" in sys.modules:
        sys.modules["torch"].set_num_threads(1)


def generate_dataset(
    out: str | Path,
    num_train: int,
    num_val: int,
    num_test: int,
    width: int,
    height: int,
    seed: int,
    write: SampleWriter,
    layout: str,
    workers: int | None = None,
) -> None:
    """Render every sample of the three splits and ``write`` each into ``out`` (which must not hold files yet);
    ``layout``: the name synth.json records."""
    counts = {"train": num_train, "val": num_val, "test": num_test}
    for split, count in counts.items():
        if count < 0:
            raise ValueError(f"--num-{split} must be >= 0, got {count}")
    if sum(counts.values()) == 0:
        raise ValueError("nothing to generate: --num-train, --num-val and --num-test are all 0")
    check_size(width, height)
    if seed < 0:
        raise ValueError(f"--seed must be >= 0, got {seed}")
    if workers is None:
        workers = os.cpu_count() or 1
    if workers < 1:
        raise ValueError(f"--workers must be >= 1, got {workers}")
    root = Path(out)
    if root.exists() and (not root.is_dir() or any(root.iterdir())):
        raise FileExistsError(f"{root}: exists and is not an empty folder; choose a new --out")

    root.mkdir(parents=True, exist_ok=True)
    jobs = [
        (str(root), seed, split, i, width, height, write) for split, count in counts.items() for i in range(count)
    ]
    with tqdm(total=len(jobs), desc="synth", unit="img") as bar:
        if workers == 1:  # in this process: leave the caller's thread settings alone
            for job in jobs:
                _write_sample(job)
                bar.update()
        else:
            with Pool(workers, initializer=_init_worker) as pool:
                for _ in pool.imap_unordered(_write_sample, jobs, chunksize=4):
                    bar.update()
    # written last: its presence says the dataset is complete
    meta = {"generator": "mtl.data.synth", "seed": seed, "width": width, "height": height, **{f"num_{k}": v for k, v in counts.items()}}
    if layout != NATIVE_LAYOUT:
        meta["layout"] = layout
    (root / "synth.json").write_text(json.dumps(meta, indent=2) + "\n")
