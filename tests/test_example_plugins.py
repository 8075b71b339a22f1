"""The example package of outside plug-ins (examples/mtl-example-plugins), installed as a user would (pip, into a
folder of its own) and found through its entry points: `mtl train --help` lists its task, layout and weightings;
`mtl data synth --layout folders` writes a dataset that `mtl data check` accepts, and a damaged copy is one line
per bad file; semseg, depth and edges train on it with GLS; `mtl predict` uses the run's checkpoint in a fresh
process; a Dirichlet-RLW run killed after a step and resumed equals one that never stopped. Edge targets, the
edge loss and metric and the GLS objective are compared with computations written here."""

from __future__ import annotations

import csv
import importlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import FAST_TRAIN_FLAGS, train_in_process
from PIL import Image

from mtl.cli.main import main
from mtl.data.formats import read_semseg
from mtl.data.synth import render_sample
from mtl.datasets import DATASETS, DatasetLayout, SplitDataset
from mtl.metrics.protocol import PROTOCOLS
from mtl.plugins import import_plugins, outside_modules
from mtl.tasks import TASKS
from mtl.weighting import WEIGHTINGS

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "mtl-example-plugins"
PACKAGE = "mtl_example_plugins"
REGISTRIES = (TASKS, DATASETS, WEIGHTINGS)
SEED = 5  # of the generated dataset
TRAIN = [*FAST_TRAIN_FLAGS, "--dataset", "folders", "--prepare_submission", "no", "--accelerator", "cpu"]
# Like tests/kill_after_step.py's own command line, after importing the plug-ins as `mtl` does (that script
# parses `mtl train` flags without the `mtl` entry point).
VICTIM = (
    "import runpy, sys\n"
    "from mtl.plugins import import_plugins, outside_modules\n"
    "import_plugins(outside_modules())\n"
    "sys.argv = sys.argv[1:]\n"
    "runpy.run_path(sys.argv[0], run_name='__main__')\n"
)


# ------------------------------------------------------------------------------------------------ installed
@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The package as `pip install --target` leaves it (the modules and a dist-info with the entry points), built
    offline from a copy of its source: a build writes build/ and *.egg-info into the folder it builds."""
    folder = tmp_path_factory.mktemp("example")
    source = shutil.copytree(EXAMPLE, folder / "source", ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "--target", str(folder / "site"), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return folder / "site"


def environment(site: Path) -> dict[str, str]:
    """A new process that can import mtl and the installed example, and is told about neither."""
    env = {key: value for key, value in os.environ.items() if key != "MTL_PLUGINS"}
    env.update(PYTHONPATH=os.pathsep.join([str(REPO), str(site)]), OMP_NUM_THREADS="1", PYTHONHASHSEED="0")
    return env


def mtl(site: Path, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mtl.cli.main", *argv], env=environment(site), capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def loaded(site: Path) -> Iterator[None]:
    """The example's plug-ins in this process, imported from their entry points as `mtl` does. Afterwards they are
    forgotten with their modules and codec, as if never installed, so that other test files see mtl alone."""
    before = {registry: set(registry) for registry in REGISTRIES}
    sys.path.insert(0, str(site))
    importlib.invalidate_caches()
    with pytest.MonkeyPatch.context() as patch:
        patch.delenv("MTL_PLUGINS", raising=False)
        import_plugins(outside_modules())
    yield
    for registry, names in before.items():
        for name in set(registry) - names:
            registry.unregister(name)
    del DatasetLayout.codecs["semseg_edges"]
    for module in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
        del sys.modules[module]
    sys.path.remove(str(site))


@pytest.fixture(scope="module")
def dataset(site: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`mtl data synth --layout folders`: 4 train, 2 val and 1 test samples at 64×64."""
    root = tmp_path_factory.mktemp("folders") / "data"
    done = mtl(site, "data", "synth", "--layout", "folders", "--out", str(root), "--num-train", "4", "--num-val", "2",
               "--num-test", "1", "--width", "64", "--height", "64", "--seed", str(SEED), "--workers", "1")
    assert done.returncode == 0, done.stderr
    return root


# ------------------------------------------------------------------------------------ computed here, by hand
def edges_by_hand(labels: np.ndarray, ignore: int = 255) -> np.ndarray:
    """Pixel by pixel: 1 where a labelled 4-neighbour has another class, 255 on unlabelled pixels, else 0."""
    height, width = labels.shape
    edges = np.zeros((height, width), dtype=np.uint8)
    for y in range(height):
        for x in range(width):
            if labels[y, x] == ignore:
                edges[y, x] = 255
                continue
            for ny, nx in ((y - 1, x), (y + 1, x), (y, x - 1), (y, x + 1)):
                if 0 <= ny < height and 0 <= nx < width and labels[ny, nx] not in (ignore, labels[y, x]):
                    edges[y, x] = 1
    return edges


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def after(text: str, start: str, end: str) -> list[str]:
    """The comma-separated names between ``start`` and ``end`` in a help text with its line breaks undone."""
    flat = " ".join(text.split())
    return flat.split(start, 1)[1].split(end, 1)[0].split(", ")


# ------------------------------------------------------------------------------------------------ the tests
def test_help_lists_the_plugins_found_through_their_entry_points_without_importing_torch(site: Path) -> None:
    code = (
        "import sys\n"
        "from mtl.cli.main import main\n"
        "for argv in (['train', '--help'], ['data', 'synth', '--help']):\n"
        "    try:\n"
        "        main(argv)\n"
        "    except SystemExit as exc:\n"
        "        assert exc.code == 0, exc.code\n"
        "print('torch' in sys.modules)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], env=environment(site), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    train, synth = done.stdout.split("usage: mtl data synth", 1)
    assert synth.splitlines()[-1] == "False"  # the plug-in modules import torch inside their functions only
    assert "semseg_edges" in after(train, "--tasks TASKS comma-separated tasks among ", " (default")
    assert "folders" in after(train, "--dataset NAME dataset layout: ", " (default")
    weightings = after(train, "how task losses (or their gradients) are combined: ", " (see")
    assert "gls" in weightings and "dirichlet_rlw" in weightings
    flat = " ".join(train.split())
    assert "--loss_weight_semseg_edges LOSS_WEIGHT_SEMSEG_EDGES weight of the semseg_edges loss (default: 0.5)" in flat
    assert "weighting dirichlet_rlw: --weighting_dirichlet_rlw_alpha ALPHA concentration of the Dirichlet" in flat
    assert "folders" in after(synth, "dataset layout to write the files in: ", " (each as")


def test_synth_writes_the_folders_layout_and_check_accepts_it_and_names_each_bad_file(
    site: Path, loaded: None, dataset: Path, tmp_path: Path
) -> None:
    samples = [("train", i) for i in range(4)] + [("val", 0), ("val", 1), ("test", 0)]
    assert sorted(str(p.relative_to(dataset)) for p in dataset.rglob("*") if p.is_file()) == sorted(
        ["synth.json", *(f"{split}/{i:06d}/{name}" for split, i in samples for name in ("depth.npy", "image.png", "label.png"))]
    )
    layout = DATASETS["folders"](dataset)
    assert layout.splits() == ("train", "val", "test") and layout.sample_name("val", 1) == "000001"
    read = layout.read("train", 2, ("semseg", "depth"))
    rendered = render_sample(SEED, "train", 2, 64, 64)
    np.testing.assert_array_equal(read["rgb"], rendered.rgb)
    np.testing.assert_array_equal(read["semseg"], rendered.semseg)
    np.testing.assert_array_equal(read["depth"], rendered.depth)  # NaN where invalid, in both

    checked = mtl(site, "data", "check", "--dataset", "folders", "--root", str(dataset))
    assert (checked.returncode, checked.stdout) == (0, f"{dataset}: OK, 21 files checked, no problem found\n"), checked.stderr

    bad = shutil.copytree(dataset, tmp_path / "bad")
    truncated, missing, labels = bad / "val/000001/depth.npy", bad / "train/000002/image.png", bad / "train/000003/label.png"
    truncated.write_bytes(truncated.read_bytes()[:40])
    missing.unlink()
    ids = read_semseg(labels)
    ids[5, 7] = 40
    Image.fromarray(ids).save(labels)
    (bad / "val" / "notes.txt").write_text("stray")
    checked = mtl(site, "data", "check", "--dataset", "folders", "--root", str(bad))
    assert checked.returncode == 1, checked.stderr
    lines = checked.stdout.splitlines()
    assert lines[:3] == [
        f"{missing}: missing file",
        f"{labels}: semseg holds values [40] outside 0..18 and 255",
        f"{bad / 'val' / 'notes.txt'}: stray file (expected one folder per sample)",
    ]
    assert lines[3].startswith(f"{truncated}: cannot read .npy (")
    assert lines[4:] == [f"{bad}: 4 problem(s) found, 21 files checked"]


def test_the_edges_target_is_where_a_labelled_neighbour_has_another_class(loaded: None, dataset: Path) -> None:
    info = DATASETS["folders"].info
    labels = read_semseg(dataset / "val" / "000001" / "label.png")
    holes = labels.copy()
    holes[np.random.default_rng(0).random(labels.shape) < 0.05] = 255
    edges = TASKS["semseg_edges"](info)
    for ids in (labels, holes):
        expected = edges_by_hand(ids)
        assert set(np.unique(expected)) >= {0, 1}  # a street scene has boundaries (and the holes are unlabelled)
        np.testing.assert_array_equal(edges.derive(ids), expected)
    item = SplitDataset(DATASETS["folders"](dataset), "val", {"semseg_edges": edges})[1]
    assert set(item) == {"index", "rgb", "semseg_edges"} and item["semseg_edges"].dtype == torch.uint8
    np.testing.assert_array_equal(item["semseg_edges"].numpy(), edges_by_hand(labels))


def test_the_edge_loss_weights_positives_by_the_ratio_of_negatives(loaded: None) -> None:
    rng = np.random.default_rng(1)
    target = rng.choice(np.array([0, 0, 0, 0, 1, 255], dtype=np.uint8), size=(2, 6, 5))
    logits = rng.normal(size=(2, 6, 5))
    labelled, positive = target != 255, target == 1
    ratio = (labelled & ~positive).sum() / positive.sum()
    probability = 1 / (1 + np.exp(-logits))
    per_pixel = -(ratio * positive * np.log(probability) + (~positive) * np.log(1 - probability))
    expected = per_pixel[labelled].mean()
    task = TASKS["semseg_edges"](DATASETS["folders"].info)
    raw = torch.from_numpy(logits).float()[:, None]
    assert float(task.loss(raw, torch.from_numpy(target))) == pytest.approx(expected, rel=1e-5)
    np.testing.assert_array_equal(task.decode(raw).numpy(), (probability > 0.5).astype(np.uint8))


def test_the_edge_metric_is_f1_and_iou_of_the_edge_class_over_all_batches(loaded: None) -> None:
    rng = np.random.default_rng(2)
    targets = [rng.choice(np.array([0, 0, 1, 255], dtype=np.uint8), size=(2, 8, 8)) for _ in range(2)]
    predictions = [rng.integers(0, 2, size=(2, 8, 8), dtype=np.uint8) for _ in range(2)]
    results = []
    for protocol in PROTOCOLS.values():  # no protocol changes how edges are counted
        metric = TASKS["semseg_edges"](DATASETS["folders"].info).metric(protocol)
        for prediction, target in zip(predictions, targets):
            metric.update(torch.from_numpy(prediction), torch.from_numpy(target))
        results.append({name: float(value) for name, value in metric.compute().items()})
    assert results[0] == results[1] == results[2]
    result = results[0]
    target, prediction = np.concatenate(targets), np.concatenate(predictions) == 1
    hits = int((prediction & (target == 1)).sum())
    false_alarms = int((prediction & (target == 0)).sum())  # unlabelled pixels count for nothing
    misses = int((~prediction & (target == 1)).sum())
    assert min(hits, false_alarms, misses) > 0
    assert result["f1"] == pytest.approx(100 * 2 * hits / (2 * hits + false_alarms + misses), abs=1e-9)
    assert result["iou"] == pytest.approx(100 * hits / (hits + false_alarms + misses), abs=1e-9)


def test_gls_is_the_geometric_mean_of_the_task_losses(loaded: None) -> None:
    values = {"semseg": 2.0, "depth": 0.5, "edges": 3.0}
    gls = WEIGHTINGS["gls"](tuple(values))
    losses = {task: torch.tensor(value, requires_grad=True) for task, value in values.items()}
    objective = gls.loss(losses)
    mean = (2.0 * 0.5 * 3.0) ** (1 / 3)
    assert float(objective.detach()) == pytest.approx(mean, rel=1e-6)
    objective.backward()
    for task, value in values.items():  # ∂/∂L_t (Π L)^(1/3) = mean / (3·L_t): what it logs as the task's weight
        assert float(losses[task].grad) == pytest.approx(mean / (3 * value), rel=1e-6)
        assert float(gls.weights[task]) == pytest.approx(mean / (3 * value), rel=1e-6)
    with pytest.raises(ValueError, match=r"^gls: the depth loss is 0; a geometric mean needs every task loss > 0$"):
        gls.loss({"semseg": torch.tensor(1.0), "depth": torch.tensor(0.0), "edges": torch.tensor(1.0)})


@pytest.fixture(scope="module")
def gls_run(loaded: None, dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("gls") / "run"
    train_in_process("--dataset_root", str(dataset), "--log_dir", str(run), "--tasks", "semseg,depth,semseg_edges",
                     "--loss_weighting", "gls", "--num_epochs", "1", *TRAIN)
    return run


def test_semseg_depth_and_edges_train_with_gls_on_the_folders_layout(gls_run: Path) -> None:
    rows = read_rows(gls_run / "metrics.csv")
    training = [row for row in rows if row["loss_train/total"]]
    assert len(training) == 2  # 4 samples, batch 2
    for row in training:
        losses = [float(row[f"loss_train/{task}"]) for task in ("semseg", "depth", "semseg_edges")]
        mean = math.prod(losses) ** (1 / 3)
        assert float(row["loss_train/total"]) == pytest.approx(mean, rel=1e-5)
        for task, loss in zip(("semseg", "depth", "semseg_edges"), losses):
            assert float(row[f"loss_weight/{task}"]) == pytest.approx(mean / (3 * loss), rel=1e-5)
    [validation] = [row for row in rows if row["metrics_summary/semseg_edges"]]
    assert 0 < float(validation["metrics_summary/semseg_edges"]) <= 100 and 0 < float(validation["metrics_task_semseg_edges/iou"]) <= 100
    modules = [f"{PACKAGE}.folders", f"{PACKAGE}.gls", f"{PACKAGE}.semseg_edges"]
    assert (gls_run / "plugins.txt").read_text().splitlines() == modules
    with zipfile.ZipFile(gls_run / "source.zip") as zf:
        for module in modules:
            name = module.split(".")[1]
            assert zf.read(f"plugins/{PACKAGE}/{name}.py") == (EXAMPLE / PACKAGE / f"{name}.py").read_bytes()


def test_predict_uses_the_checkpoint_in_a_fresh_process(site: Path, dataset: Path, gls_run: Path, tmp_path: Path) -> None:
    out = tmp_path / "pred"
    done = mtl(site, "predict", "--checkpoint", str(gls_run / "checkpoints" / "best.ckpt"), "--split", "val",
               "--dataset_root", str(dataset), "--out", str(out), "--batch_size", "2")
    assert done.returncode == 0, done.stderr
    names = ("000000", "000001")
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == sorted(
        ["metrics.json", *(f"{task}/{name}{suffix}" for name in names
                           for task, suffix in (("semseg", ".png"), ("depth", ".npy"), ("semseg_edges", ".png")))]
    )
    report = json.loads((out / "metrics.json").read_text())
    assert list(report["tasks"]) == ["semseg", "depth", "semseg_edges"]
    hits = found = present = 0  # the edge class's pixel counts over the split, from the files
    for name in names:
        predicted = np.array(Image.open(out / "semseg_edges" / f"{name}.png"))
        assert set(np.unique(predicted)) <= {0, 255}
        actual = edges_by_hand(read_semseg(dataset / "val" / name / "label.png"))
        predicted_edge = (predicted == 255) & (actual != 255)
        hits += int((predicted_edge & (actual == 1)).sum())
        found += int(predicted_edge.sum())
        present += int((actual == 1).sum())
    assert report["tasks"]["semseg_edges"]["f1"] == pytest.approx(100 * 2 * hits / (found + present), abs=1e-9)
    assert report["tasks"]["semseg_edges"]["iou"] == pytest.approx(100 * hits / (found + present - hits), abs=1e-9)


def test_dirichlet_rlw_draws_from_the_simplex_and_its_concentration_flag_is_checked(loaded: None, capsys) -> None:
    tasks = ("semseg", "depth", "edges")
    for alpha, largest in ((0.05, lambda m: m > 0.8), (100.0, lambda m: m < 0.45)):
        method = WEIGHTINGS["dirichlet_rlw"](tasks, seed=3, alpha=alpha)
        draws = np.array([list(method.draw().values()) for _ in range(200)])
        assert (draws >= 0).all() and np.allclose(draws.sum(1), 1.0)
        assert largest(draws.max(1).mean()), (alpha, draws.max(1).mean())  # small α: one task at a time
    with pytest.raises(SystemExit):
        main(["train", "--loss_weighting", "dirichlet_rlw", "--weighting_dirichlet_rlw_alpha", "0"])
    assert capsys.readouterr().err.splitlines()[-1] == (
        "mtl train: error: argument --weighting_dirichlet_rlw_alpha: expected a positive number, got 0"
    )


def test_a_dirichlet_rlw_run_killed_after_a_step_and_resumed_equals_one_that_never_stopped(
    site: Path, loaded: None, dataset: Path, tmp_path: Path
) -> None:
    flags = ["--dataset_root", str(dataset), "--num_epochs", "2", "--loss_weighting", "dirichlet_rlw",
             "--weighting_dirichlet_rlw_alpha", "0.5", "--checkpoint_every_n_steps", "1", "--deterministic", "true",
             "--optimizer", "adam", "--optimizer_lr", "0.001", *TRAIN]
    reference, interrupted = tmp_path / "reference", tmp_path / "interrupted"
    train_in_process("--log_dir", str(reference), *flags)
    killer = str(REPO / "tests" / "kill_after_step.py")
    victim = subprocess.run([sys.executable, "-c", VICTIM, killer, "3", "--log_dir", str(interrupted), *flags],
                            env=environment(site), capture_output=True, text=True, timeout=300)
    assert victim.returncode == -signal.SIGKILL, victim.stdout + victim.stderr
    last = interrupted / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["global_step"] == 3  # killed in the second epoch
    train_in_process("--log_dir", str(interrupted), "--resume", str(interrupted), *flags)

    a = torch.load(reference / "checkpoints" / "last.ckpt", weights_only=True)
    b = torch.load(last, weights_only=True)
    assert a["global_step"] == b["global_step"] == 4
    for key, value in a["state_dict"].items():
        assert torch.equal(value, b["state_dict"][key]), key
    assert torch.equal(a["weighting_state"]["generator"], b["weighting_state"]["generator"])
    rows = read_rows(reference / "metrics.csv")
    assert read_rows(interrupted / "metrics.csv") == rows
    weights = [(float(r["loss_weight/semseg"]), float(r["loss_weight/depth"])) for r in rows if r["loss_train/total"]]
    assert len(weights) == 4 and len(set(weights)) == 4  # new weights at every step
    assert all(0 <= w <= 1 and 0 <= v <= 1 and w + v == pytest.approx(1.0) for w, v in weights)
