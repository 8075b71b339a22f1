"""The open architecture: a task, a dataset layout and a gradient weighting method defined here, outside the
package, train and validate with no edit to it; lower layers never import higher ones; `mtl --help` does not
import torch."""

from __future__ import annotations

import argparse
import ast
import csv
import subprocess
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
import torchmetrics
from conftest import FAST_TRAIN_FLAGS

from mtl.cli.main import main
from mtl.datasets import DATASETS, Codec, DatasetInfo, DatasetLayout, register_dataset
from mtl.tasks import TASKS, Task, TaskOutput, register_task
from mtl.weighting import WEIGHTINGS, Weighting, register_weighting

PACKAGE = Path(__file__).resolve().parents[1] / "mtl"


# --- a toy task: per-pixel brightness (the mean of R, G, B, 0..1), regressed with L1 ------------------------
class Brightness(Task):
    summary_name = "mae"
    summary_label = "brightness MAE"
    higher_is_better = False
    onnx_output = "brightness"
    target_dtype = "float32"
    delta_metrics = (("metrics_task_toy_brightness/mae", False),)

    @classmethod
    def add_arguments(cls, group: argparse._ArgumentGroup) -> None:
        group.add_argument("--toy_brightness_scale", type=float, default=1.0, help="target scale")

    @classmethod
    def from_flags(cls, flags: argparse.Namespace, info: DatasetInfo, state: Mapping) -> Brightness:
        task = cls(info)
        task.scale = flags.toy_brightness_scale
        return task

    def output(self) -> TaskOutput:
        return TaskOutput(1)

    def loss(self, outputs, target: torch.Tensor) -> torch.Tensor:
        pred = outputs[-1] if isinstance(outputs, list) else outputs
        return (pred[:, 0].float() - self.scale * target).abs().mean()

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        return raw[:, 0].float() / self.scale

    def export(self, raw: torch.Tensor) -> torch.Tensor:
        return raw / self.scale

    def tta_term(self, raw: torch.Tensor, num_views: int, back: Callable) -> torch.Tensor:
        return back(raw.float())

    def tta_result(self, total: torch.Tensor, num_views: int) -> torch.Tensor:
        return (total / num_views)[:, 0] / self.scale

    def metric(self, protocol):
        return BrightnessError()

    def scalars(self, result) -> dict[str, float]:
        return {"metrics_summary/toy_brightness": float(result["mae"]), "metrics_task_toy_brightness/mae": float(result["mae"])}

    def report(self, result) -> dict:
        return {"mae": float(result["mae"])}

    def summary(self, result) -> float:
        return float(result["mae"])

    @property
    def fill(self) -> float:
        return 0.0

    def to_tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array.astype(np.float32))

    def picture(self, value: torch.Tensor) -> np.ndarray:
        grey = (value.detach().float().cpu().numpy().clip(0, 1) * 255).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)


class BrightnessError(torchmetrics.Metric):
    """Mean absolute error over all pixels, as a mapping of named results (what tasks report)."""

    def __init__(self) -> None:
        super().__init__()
        self.add_state("error", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        self.error += (pred.double() - target.double()).abs().sum()
        self.count += target.numel()

    def compute(self) -> dict[str, torch.Tensor]:
        return {"mae": self.error / self.count}


# --- a toy layout: <root>/<split>/<i>.npz holding rgb and brightness ----------------------------------------
class NpzLayout(DatasetLayout):
    info = DatasetInfo(name="toy_npz", stored_tasks=("toy_brightness",), default_tasks=("toy_brightness",))
    codecs = {"toy_brightness": Codec(".npy", np.load, np.save)}

    def splits(self) -> tuple[str, ...]:
        return tuple(s for s in ("train", "val") if (self.root / s).is_dir())

    def split_size(self, split: str) -> int:
        return len(list((self.root / split).glob("*.npz")))

    def stored_tasks_in(self, split: str) -> tuple[str, ...]:
        return self.info.stored_tasks

    def read(self, split: str, index: int, tasks: Sequence[str]) -> dict[str, np.ndarray]:
        with np.load(self.root / split / f"{index}.npz") as sample:
            out = {"rgb": sample["rgb"]}
            out.update({task: sample["brightness"] for task in tasks})
        return out


def write_npz_dataset(root: Path) -> Path:
    rng = np.random.default_rng(0)
    for split, count in (("train", 4), ("val", 2)):
        (root / split).mkdir(parents=True)
        for i in range(count):
            rgb = rng.integers(0, 256, (32, 48, 3), dtype=np.uint8)
            np.savez(root / split / f"{i}.npz", rgb=rgb, brightness=rgb.mean(-1).astype(np.float32) / 255)
    return root


# --- a gradient method: PCGrad on the shared parameters -------------------------------------------------------
def project_conflicts(grads: list[torch.Tensor]) -> list[torch.Tensor]:
    """Yu et al. 2020: each task's gradient loses its component along any other task's gradient it conflicts with."""
    out = []
    for i, g in enumerate(grads):
        g = g.clone()
        for j, other in enumerate(grads):
            dot = g @ other
            if j != i and dot < 0:
                g -= dot / other.dot(other) * other
        out.append(g)
    return out


class ToyPCGrad(Weighting):
    steps = 0

    def backward(self, losses, shared, backward, context) -> torch.Tensor:
        assert context.micro_batches == 1 and context.last  # no gradient accumulation asked
        shared = list(shared)
        flat = []
        for task in self.tasks:
            grads = torch.autograd.grad(losses[task], shared, retain_graph=True, allow_unused=True)
            flat.append(torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, shared)]))
        total = sum(losses[t] for t in self.tasks)
        backward(total)  # task-specific parameters: the plain sum
        combined = sum(project_conflicts(flat))
        start = 0
        for p in shared:
            p.grad = combined[start : start + p.numel()].view_as(p).clone()
            start += p.numel()
        type(self).steps += 1
        type(self).last = (flat, combined)
        return total.detach()


@pytest.fixture
def plugins():
    register_task("toy_brightness")(Brightness)
    register_dataset("toy_npz")(NpzLayout)
    register_weighting("toy_pcgrad")(ToyPCGrad)
    try:
        yield
    finally:
        TASKS.unregister("toy_brightness")
        DATASETS.unregister("toy_npz")
        WEIGHTINGS.unregister("toy_pcgrad")


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_a_task_and_a_dataset_defined_outside_the_package_train_and_validate(plugins, tmp_path: Path, capsys) -> None:
    root = write_npz_dataset(tmp_path / "toy")
    run = tmp_path / "run"
    flags = [*FAST_TRAIN_FLAGS, "--dataset", "toy_npz", "--num_epochs", "1", "--aug_input_crop_size", "32",
             "--toy_brightness_scale", "2", "--prepare_submission", "no"]
    assert main(["train", "--dataset_root", str(root), "--log_dir", str(run), *flags]) == 0
    assert "brightness MAE" in capsys.readouterr().out
    rows = read_rows(run / "metrics.csv")
    validation = [r for r in rows if r.get("metrics_summary/toy_brightness")]
    assert len(validation) == 1 and float(validation[0]["metrics_summary/toy_brightness"]) >= 0
    assert float(validation[0]["metrics_summary/total"]) == -float(validation[0]["metrics_summary/toy_brightness"])
    assert all(float(r["loss_train/toy_brightness"]) >= 0 for r in rows if r.get("loss_train/toy_brightness"))

    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--split", "val",
                 "--dataset_root", str(root), "--out", str(out), "--batch_size", "2"]) == 0
    assert np.load(out / "toy_brightness" / "1.npy").shape == (32, 48)


@pytest.mark.parametrize("precision", ["32", "16-mixed"])
def test_a_gradient_method_defined_outside_the_package_trains(
    plugins, tiny_dataset: Path, tmp_path: Path, precision: str
) -> None:
    """Its arithmetic is fp32 even when the network runs in half precision: the trainer calls it outside autocast
    (under fp16 autocast the projections' dot products would be fp16, and differ from the same formula computed
    here)."""
    run = tmp_path / "run"
    ToyPCGrad.steps = 0
    flags = [*FAST_TRAIN_FLAGS, "--loss_weighting", "toy_pcgrad", "--num_epochs", "1", "--prepare_submission", "no",
             "--precision", precision]
    assert main(["train", "--dataset_root", str(tiny_dataset), "--log_dir", str(run), *flags]) == 0
    assert ToyPCGrad.steps == 2  # 4 training samples, batch 2
    flat, combined = ToyPCGrad.last
    expected = sum(project_conflicts(flat))
    torch.testing.assert_close(combined, expected)
    assert read_rows(run / "metrics.csv")[-1]["step"] == "2"


def test_projection_removes_the_conflicting_component() -> None:
    g1, g2 = torch.tensor([1.0, 0.0]), torch.tensor([-1.0, 1.0])
    p1, p2 = project_conflicts([g1, g2])
    torch.testing.assert_close(p1, torch.tensor([0.5, 0.5]))  # g1 − (g1·g2/|g2|²)·g2
    torch.testing.assert_close(p2, torch.tensor([0.0, 1.0]))  # g2 − (g2·g1/|g1|²)·g1
    assert p1 @ g2 == pytest.approx(0.0) and p2 @ g1 == pytest.approx(0.0)


# --- layering -------------------------------------------------------------------------------------------------
# cli → engine/inference/reporting/tuning/grading → config → tasks/datasets/models/losses/metrics/weighting/optimization
# → data
LAYERS = [
    {"data", "flags", "errors", "plugins", "hardware", "__init__"},
    {"tasks", "datasets", "models", "losses", "metrics", "weighting", "optimization"},
    {"config"},
    {"engine", "inference", "reporting", "tuning", "grading"},
    {"cli"},
]


def layer(module: str) -> int:
    top = module.split(".")[1] if module.count(".") else "__init__"
    return next(i for i, names in enumerate(LAYERS) if top in names)


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0 and node.module.startswith("mtl"):
            found.add(node.module)
        elif isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("mtl"))
    return found


def test_no_module_imports_a_higher_layer() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        module = "mtl." + ".".join(path.relative_to(PACKAGE).with_suffix("").parts)
        module = module.removesuffix(".__init__") if module != "mtl.__init__" else "mtl"
        for imported in imports_of(path):
            if imported != "mtl" and layer(imported) > layer(module if module != "mtl" else "mtl.__init__"):
                upward.append(f"{module} imports {imported}")
    assert upward == []


def test_help_and_argument_errors_do_not_import_torch() -> None:
    code = (
        "import sys\n"
        "from mtl.cli.main import main\n"
        "for argv in (['--help'], ['train', '--help'], ['train', '--num_epoch', '1'], ['grade', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit:\n"
        "        pass\n"
        "print('torch' in sys.modules, 'pytorch_lightning' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.stdout.strip().splitlines()[-1] == "False False", result.stderr
    assert "mtl train: error: unrecognized arguments: --num_epoch 1 (did you mean --num_epochs?)" in result.stderr


def test_a_bad_value_is_one_line_naming_the_flag(capsys) -> None:
    for argv, flag in ((["train", "--optimizer_lr", "inf"], "--optimizer_lr"), (["test", "--log_dir", "x", "--batch_size_validation", "-4"], "--batch_size_validation"),
                       (["test", "--log_dir", "x", "--batch_size_validation", "0"], "--batch_size_validation")):
        with pytest.raises(SystemExit) as exc:
            main(argv)
        assert exc.value.code == 2
        err = capsys.readouterr().err.splitlines()
        assert len(err) == 1 and err[0].startswith(f"mtl {argv[0]}: error: argument {flag}"), err


def test_abbreviated_flags_are_refused(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["train", "--dataset_root", ".", "--num_epoch", "1"])
    assert "did you mean --num_epochs?" in capsys.readouterr().err
