"""A small, deterministic fp32 training run of the demo preset, and its recorded references (tests/golden/).

Float results depend on the CPU's vector units (oneDNN and ATen pick kernels by them), so a reference is bit-exact
only on the kind of machine it was recorded on. ``demo_reference.json`` (an AVX2-only EPYC) was recorded with the
code before the plug-in restructuring (commit 08a6c11):
    PYTHONPATH=<checkout of 08a6c11> python tests/golden_run.py record
and the others with later code on other CPU kinds (``python tests/golden_run.py record`` on such a machine writes
``demo_reference_<capability>_<units hash>.json``). The dataset is written here directly, as codes (depth as
disparity codes, not metres), so that it does not change when the file formats' encoders change.
"""

from __future__ import annotations

import csv
import hashlib
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

GOLDEN = Path(__file__).with_name("golden")
ORIGINAL = GOLDEN / "demo_reference.json"  # recorded before the restructuring: every machine is compared with it
# configs/demo.yaml as it was when the reference was recorded, at test size (ResNet-18, 64² crops, 1 process).
FLAGS = [
    "--model_name", "deeplabv3p", "--model_encoder_name", "resnet18", "--optimizer", "adam",
    "--optimizer_lr", "0.001", "--optimizer_weight_decay", "0.0", "--batch_size", "4",
    "--batch_size_validation", "4", "--num_epochs", "2", "--aug_input_crop_size", "64",
    "--aug_geom_scale_min", "0.8", "--aug_geom_scale_max", "1.2", "--aug_geom_reflect", "true",
    "--depth_unit", "log", "--loss_depth", "l1", "--workers", "0", "--workers_validation", "0",
    "--checkpoint_every_n_steps", "3", "--num_steps_visualization_first", "1", "--observe_valid_ids", "0,1",
    "--log_every_n_steps", "1", "--depth_stats", "auto", "--deterministic", "true", "--precision", "32",
    "--channels_last", "false", "--accelerator", "cpu",  # what auto chose on the CPU that recorded the reference
    "--progress_bar", "false", "--prepare_submission", "false", "--seed", "3",
]


def write_dataset(root: Path) -> Path:
    """8 train and 4 val samples at 96×64: smooth RGB, blocky trainIds with ignore, disparity codes with invalid."""
    rng = np.random.default_rng(7)
    palette = [0] * 768
    for split, count in (("train", 8), ("val", 4)):
        for modality in ("rgb", "semseg", "depth"):
            (root / split / modality).mkdir(parents=True, exist_ok=True)
        for i in range(count):
            rgb = (rng.random((8, 12, 3)) * 255).repeat(8, 0).repeat(8, 1).astype(np.uint8)
            Image.fromarray(rgb).save(root / split / "rgb" / f"{i}.jpg", quality=95)
            ids = rng.integers(0, 19, (4, 6)).repeat(16, 0).repeat(16, 1).astype(np.uint8)
            ids[:8] = 255
            semseg = Image.fromarray(ids)
            semseg.putpalette(palette)
            semseg.save(root / split / "semseg" / f"{i}.png")
            codes = rng.integers(1, 256, (64, 96)).astype(np.uint8)
            codes[:10] = 0
            Image.fromarray(codes).save(root / split / "depth" / f"{i}.png")
    return root


RECORDED_THREADS = 2  # the references were recorded on 2-core machines; the thread count changes float sums too


def train(workdir: Path) -> Path:
    from mtl.cli.main import main

    data = write_dataset(workdir / "data")
    run = workdir / "run"
    threads = torch.get_num_threads()
    torch.set_num_threads(RECORDED_THREADS)
    try:
        assert main(["train", "--dataset_root", str(data), "--log_dir", str(run), *FLAGS]) == 0
    finally:
        torch.set_num_threads(threads)
    return run


def weights(run: Path) -> dict[str, torch.Tensor]:
    """The final weights by key, without the prefix that differs between code versions."""
    state = torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]
    return {k.removeprefix("predictor.").removeprefix("model."): v for k, v in state.items()}


def fingerprint() -> dict[str, str]:
    """What float results depend on: the torch build and the CPU's vector units (oneDNN picks kernels by them)."""
    flags = Path("/proc/cpuinfo").read_text().split() if Path("/proc/cpuinfo").exists() else []
    units = sorted({f for f in flags if f.startswith(("avx", "amx", "fma"))})
    return {"torch": torch.__version__, "cpu_capability": torch.backends.cpu.get_cpu_capability(), "units": " ".join(units)}


def summarise(run: Path) -> dict:
    with (run / "metrics.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    return {
        "machine": fingerprint(),
        "rows": rows,
        "sha256": {k: hashlib.sha256(v.numpy().tobytes()).hexdigest() for k, v in weights(run).items()},
        "sums": {k: float(v.double().sum()) for k, v in weights(run).items()},
        "abs_sums": {k: float(v.double().abs().sum()) for k, v in weights(run).items()},
    }


def references() -> list[dict]:
    """Every recorded reference, the original first."""
    paths = [ORIGINAL, *sorted(p for p in GOLDEN.glob("demo_reference_*.json"))]
    return [json.loads(p.read_text()) for p in paths]


def reference_path(machine: dict[str, str]) -> Path:
    units = hashlib.sha256(machine["units"].encode()).hexdigest()[:8]
    return GOLDEN / f"demo_reference_{machine['cpu_capability'].lower()}_{units}.json"


if __name__ == "__main__" and sys.argv[1:] == ["record"]:
    with tempfile.TemporaryDirectory() as tmp:
        summary = summarise(train(Path(tmp)))
    path = ORIGINAL if not ORIGINAL.exists() else reference_path(summary["machine"])
    GOLDEN.mkdir(exist_ok=True)
    path.write_text(json.dumps(summary, indent=1) + "\n")
    print(f"wrote {path}: {len(summary['rows'])} rows, {len(summary['sha256'])} tensors, {summary['machine']}")
