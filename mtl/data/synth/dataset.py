"""Write a whole generated dataset in the MiniScapes layout (or another one, ``layout=``), in parallel.

Layout: ``<out>/{train,val}/{rgb,semseg,depth,normals}/<i>.{jpg,png,png,png}``, ``<out>/test/rgb/<i>.jpg``
and the test ground truth, kept apart for the grader, in ``<out>/test_gt/{semseg,depth,normals}/<i>.png``.
Normals (8-bit RGB, camera frame, (0, 0, 0) = invalid exactly where the depth PNG is 0) extend the
MiniScapes layout; see ``mtl.data.formats.encode_normals``.
``<out>/synth.json``, written last, records the arguments so that any sample can be regenerated alone.

Other layouts (``layout="cityscapes"``, ``"cityscapes_npy"``, ``"nyuv2"``) convert the same rendered samples
into those datasets' files: see ``mtl.data.synth.layouts``. The MTAN-style ``.npy`` layouts have train and
val splits only.
"""

from __future__ import annotations

import json
import os
import sys
from multiprocessing import Pool
from pathlib import Path

from tqdm import tqdm

from mtl.data.formats import write_depth, write_normals, write_rgb, write_semseg
from mtl.data.formats import atomic_write
from mtl.data.synth.layouts import SPLITS_OF, WRITERS, cityscapes_folders
from mtl.data.synth.sample import check_size, render_sample

GT_SPLIT = {"train": "train", "val": "val", "test": "test_gt"}  # where each split's ground truth goes
LAYOUTS = ("miniscapes", *WRITERS)


def _write_sample(job: tuple[str, int, str, int, int, int, str]) -> None:
    root, seed, split, index, width, height, layout = job
    out = Path(root)
    if layout != "miniscapes":
        WRITERS[layout](out, seed, split, index, width, height)
        return
    sample = render_sample(seed, split, index, width, height)
    atomic_write(lambda p: write_rgb(p, sample.rgb), out / split / "rgb" / f"{index}.jpg")
    gt = out / GT_SPLIT[split]
    atomic_write(lambda p: write_semseg(p, sample.semseg), gt / "semseg" / f"{index}.png")
    atomic_write(lambda p: write_depth(p, sample.depth, "invalidate"), gt / "depth" / f"{index}.png")
    atomic_write(lambda p: write_normals(p, sample.normals), gt / "normals" / f"{index}.png")


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
    workers: int | None = None,
    layout: str = "miniscapes",
) -> None:
    """Render every sample of the three splits into ``out`` (which must not hold files yet), in ``layout``."""
    if layout not in LAYOUTS:
        raise ValueError(f"unknown layout {layout!r}; choose one of {', '.join(LAYOUTS)}")
    counts = {"train": num_train, "val": num_val, "test": num_test}
    for split, count in counts.items():
        if count < 0:
            raise ValueError(f"--num-{split} must be >= 0, got {count}")
    if sum(counts.values()) == 0:
        raise ValueError("nothing to generate: --num-train, --num-val and --num-test are all 0")
    for split, count in counts.items():
        if count and layout in SPLITS_OF and split not in SPLITS_OF[layout]:
            raise ValueError(f"--num-{split}: the {layout} layout has no {split} split")
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

    for split, count in counts.items():
        if count and layout == "miniscapes":
            gt = GT_SPLIT[split]
            for folder, modality in ((split, "rgb"), (gt, "semseg"), (gt, "depth"), (gt, "normals")):
                (root / folder / modality).mkdir(parents=True, exist_ok=True)
        elif count and layout == "cityscapes":
            for folder in cityscapes_folders(root, split):
                folder.mkdir(parents=True, exist_ok=True)
        elif count:
            (root / split).mkdir(parents=True, exist_ok=True)  # the writer makes the modality folders
    jobs = [
        (str(root), seed, split, i, width, height, layout) for split, count in counts.items() for i in range(count)
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
    if layout != "miniscapes":  # the default layout's synth.json stays as it was
        meta["layout"] = layout
    (root / "synth.json").write_text(json.dumps(meta, indent=2) + "\n")
