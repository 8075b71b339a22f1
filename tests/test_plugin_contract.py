"""What a plug-in author relies on: a task or layout missing a required member is refused when it registers;
codecs are tables a task adds to (one layout, a family, every layout); a task derived from another task's array
needs no layout of its own and counts as present wherever its source is; the engine takes each task's summary
from the task; a task's facts come from the dataset, and depth names no dataset."""

from __future__ import annotations

import argparse
import csv
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch
import torchmetrics
from conftest import FAST_TRAIN_FLAGS
from PIL import Image

from mtl.cli.main import main
from mtl.data.formats import read_semseg, write_semseg
from mtl.data.synth import Sample, render_sample
from mtl.datasets import DATASETS, Codec, DatasetInfo, DatasetLayout, SplitDataset, register_dataset
from mtl.datasets.npy import NpyCodec, NpyLayout
from mtl.tasks import TASKS, Task, TaskOutput, register_task
from mtl.tasks.depth import Depth, DepthInfo, depth_stats_value


# --- a derived task: semantic edges, where the class changes to the right or below ------------------------------
def edges_of(labels: np.ndarray) -> np.ndarray:
    """1 where a pixel's class differs from its right or lower neighbour, else 0 (float32)."""
    edges = np.zeros(labels.shape, dtype=bool)
    edges[:, :-1] |= labels[:, :-1] != labels[:, 1:]
    edges[:-1, :] |= labels[:-1, :] != labels[1:, :]
    return edges.astype(np.float32)


class EdgeCounts(torchmetrics.Metric):
    """Pixel counts of predicted and true edges; ``compute`` names its results as plainly as a user would."""

    def __init__(self) -> None:
        super().__init__()
        for name in ("hits", "predicted", "actual", "agree", "pixels"):
            self.add_state(name, default=torch.zeros((), dtype=torch.int64), dist_reduce_fx="sum")

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> None:
        pred, target = pred.bool(), target.bool()
        self.hits += (pred & target).sum()
        self.predicted += pred.sum()
        self.actual += target.sum()
        self.agree += (pred == target).sum()
        self.pixels += target.numel()

    def compute(self) -> dict[str, torch.Tensor]:
        f1 = 2 * self.hits.double() / (self.predicted + self.actual).clamp_min(1)
        return {"f1": 100 * f1, "pixel_accuracy": 100 * self.agree.double() / self.pixels, "total": self.actual}


class Edges(Task):
    """Its ``scalars`` hold no ``metrics_summary/<task>``, and its report reuses names semseg's report and the
    dataset's scores have (``pixel_accuracy``, ``total``): nothing may overwrite anything."""

    source = "semseg"
    summary_name = "f1"
    summary_label = "edge F1"
    higher_is_better = True
    onnx_output = "edge_logits"
    target_dtype = "float32"

    def derive(self, source: np.ndarray) -> np.ndarray:
        return edges_of(source)

    def output(self) -> TaskOutput:
        return TaskOutput(1)

    def loss(self, outputs, target: torch.Tensor) -> torch.Tensor:
        logits = outputs[-1] if isinstance(outputs, list) else outputs
        return torch.nn.functional.binary_cross_entropy_with_logits(logits[:, 0].float(), target.float())

    def decode(self, raw: torch.Tensor) -> torch.Tensor:
        return (raw[:, 0] > 0).to(torch.uint8)

    def export(self, raw: torch.Tensor) -> torch.Tensor:
        return raw

    def tta_term(self, raw: torch.Tensor, num_views: int, back: Callable) -> torch.Tensor:
        return back(raw.float())

    def tta_result(self, total: torch.Tensor, num_views: int) -> torch.Tensor:
        return self.decode(total)

    def metric(self, protocol) -> EdgeCounts:
        return EdgeCounts()

    def scalars(self, result) -> dict[str, float]:
        return {"metrics_task_toy_edges/pixel_accuracy": float(result["pixel_accuracy"])}

    def report(self, result) -> dict:
        return {name: float(value) for name, value in result.items()}

    @property
    def fill(self) -> float:
        return 0.0

    def to_tensor(self, array: np.ndarray) -> torch.Tensor:
        return torch.from_numpy(array)

    def to_array(self, prediction: torch.Tensor) -> np.ndarray:
        return prediction.cpu().numpy()

    def picture(self, value: torch.Tensor) -> np.ndarray:
        return np.repeat((value.cpu().numpy() * 255).astype(np.uint8)[..., None], 3, axis=2)


EDGE_CODEC = Codec("_edges.npy", np.load, lambda path, edges: np.save(path, edges))


@pytest.fixture
def edges():
    """The edges task registered, with a prediction codec for every layout (what its plug-in would do)."""
    register_task("toy_edges")(Edges)
    DatasetLayout.add_codec("toy_edges", EDGE_CODEC)
    try:
        yield
    finally:
        TASKS.unregister("toy_edges")
        del DatasetLayout.codecs["toy_edges"]


def read_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_a_derived_task_is_present_wherever_its_source_is(edges, tiny_dataset):
    miniscapes = DATASETS["miniscapes"]
    assert miniscapes.info.tasks == ("semseg", "depth", "normals", "toy_edges")
    assert DATASETS["cityscapes"].info.tasks == ("semseg", "depth", "toy_edges")
    layout = miniscapes(tiny_dataset)
    assert layout.tasks_in("train") == ("semseg", "depth", "toy_edges")
    assert layout.tasks_in("test") == ()  # no labels, no edges
    task = TASKS["toy_edges"](miniscapes.info)
    item = SplitDataset(layout, "val", {"toy_edges": task})[1]
    labels = read_semseg(tiny_dataset / "val" / "semseg" / "1.png")
    np.testing.assert_array_equal(item["toy_edges"].numpy(), edges_of(labels))
    assert set(item) == {"index", "rgb", "toy_edges"}  # the source was read, not handed out


def test_a_derived_task_trains_validates_and_predicts_without_its_own_layout(edges, tiny_dataset, tmp_path, capsys):
    run = tmp_path / "run"
    flags = [*FAST_TRAIN_FLAGS, "--tasks", "semseg,toy_edges", "--num_epochs", "1", "--prepare_submission", "no"]
    assert main(["train", "--dataset_root", str(tiny_dataset), "--log_dir", str(run), *flags]) == 0
    assert "edge F1" in capsys.readouterr().out  # the console line has the task's own summary
    validation = [r for r in read_rows(run / "metrics.csv") if r.get("metrics_summary/toy_edges")]
    assert len(validation) == 1  # taken from Edges.summary: its scalars() does not hold it
    assert 0 <= float(validation[0]["metrics_summary/toy_edges"]) <= 100

    out = tmp_path / "pred"
    assert main(["predict", "--checkpoint", str(run / "checkpoints" / "best.ckpt"), "--split", "val",
                 "--dataset_root", str(tiny_dataset), "--out", str(out), "--batch_size", "2"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert json.loads((out / "metrics.json").read_text()) == printed
    assert list(printed) == ["protocol", "scores", "tasks"] and list(printed["tasks"]) == ["semseg", "toy_edges"]
    semseg, toy = printed["tasks"]["semseg"], printed["tasks"]["toy_edges"]
    # the same names, each under its own task and apart from the dataset's scores, computed here from the files
    predicted = [np.load(out / "toy_edges" / f"{i}_edges.npy").astype(bool) for i in range(2)]
    actual = [edges_of(read_semseg(tiny_dataset / "val" / "semseg" / f"{i}.png")).astype(bool) for i in range(2)]
    hits = sum(int((p & a).sum()) for p, a in zip(predicted, actual))
    sizes = sum(int(p.sum()) + int(a.sum()) for p, a in zip(predicted, actual))
    agree = sum(int((p == a).sum()) for p, a in zip(predicted, actual))
    assert toy["f1"] == pytest.approx(100 * 2 * hits / max(sizes, 1), abs=1e-9)
    assert toy["pixel_accuracy"] == pytest.approx(100 * agree / sum(a.size for a in actual), abs=1e-9)
    assert toy["total"] == sum(int(a.sum()) for a in actual)
    assert semseg["pixel_accuracy"] != toy["pixel_accuracy"]
    scores = printed["scores"]
    # MiniScapes: miou − SI-logRMSE (50 for depth, not trained) plus the other tasks' summaries (higher is better)
    assert scores["total"] == pytest.approx(semseg["miou"] - 50 + toy["f1"], abs=1e-9)
    assert scores["grader"] == pytest.approx(max(semseg["miou"] - 50, 0), abs=1e-9)


# --- codec tables ---------------------------------------------------------------------------------------------
def test_a_task_adds_its_codec_to_a_layout_family_and_to_one_layout(tmp_path):
    stored = NpyCodec(lambda path, array, size, facts: array.astype(np.float32), lambda value, facts: value * 2)
    png = Codec(".png", read_semseg, write_semseg)
    NpyLayout.add_codec("toy", stored)  # every .npy layout, no layout module edited
    DATASETS["miniscapes"].add_codec("toy", png)  # one layout
    try:
        for name in ("nyuv2", "cityscapes_npy"):
            path = DATASETS[name].write_prediction(tmp_path / name, "toy", "3", np.ones((2, 2), np.float32))
            assert path == tmp_path / name / "toy" / "3.npy"
            np.testing.assert_array_equal(np.load(path), np.full((2, 2), 2.0, np.float32))
            np.testing.assert_array_equal(DATASETS[name].codec("toy").read(path), np.full((2, 2), 2.0, np.float32))
        ids = np.array([[1, 2], [3, 4]], np.uint8)
        path = DATASETS["miniscapes"].write_prediction(tmp_path / "ms", "toy", "0", ids)
        assert path == tmp_path / "ms" / "toy" / "0.png"
        np.testing.assert_array_equal(DATASETS["miniscapes"].codec("toy").read(path), ids)
        assert not DATASETS["cityscapes"].has_codec("toy")
        with pytest.raises(ValueError, match=r"^the cityscapes layout has no codec for task 'toy' \(add one with "
                                             r"CityscapesLayout.add_codec\)$"):
            DATASETS["cityscapes"].codec("toy")
    finally:
        del NpyLayout.codecs["toy"], DATASETS["miniscapes"].codecs["toy"]
    assert not DATASETS["nyuv2"].has_codec("toy")


def test_a_layout_looks_codecs_up_nearest_first():
    """A layout's own entry wins over its family's, which wins over every layout's."""
    assert DATASETS["nyuv2"].codec_entry("depth") is NpyLayout.codecs["depth"]
    DatasetLayout.add_codec("depth", EDGE_CODEC)
    try:
        assert DATASETS["cityscapes"].codec("depth").suffix == "_depth.npy"
        assert DATASETS["nyuv2"].codec("depth").suffix == ".npy"
    finally:
        del DatasetLayout.codecs["depth"]


# --- a layout plug-in can be generated: folders of image.png, label.png, depth.npy -------------------------------
class ToyFolders(DatasetLayout):
    info = DatasetInfo("toy_folders", ("semseg", "depth"), ("semseg", "depth"),
                       task_info=dict(DATASETS["miniscapes"].info.task_info))
    codecs = {"semseg": Codec(".png", read_semseg, write_semseg), "depth": Codec(".npy", np.load, np.save)}
    files = {"semseg": "label.png", "depth": "depth.npy"}
    synth_size = (64, 64)
    synth_splits = ("train", "val")

    def splits(self) -> tuple[str, ...]:
        return tuple(s for s in self.synth_splits if (self.root / s).is_dir())

    def split_size(self, split: str) -> int:
        return len(list((self.root / split).iterdir()))

    def stored_tasks_in(self, split: str) -> tuple[str, ...]:
        return self.info.stored_tasks

    def read(self, split: str, index: int, tasks) -> dict[str, np.ndarray]:
        folder = self.root / split / str(index)
        with Image.open(folder / "image.png") as image:
            out = {"rgb": np.asarray(image.convert("RGB"))}
        out.update({task: self.codec(task).read(folder / self.files[task]) for task in tasks})
        return out

    @classmethod
    def write_generated(cls, root: Path, split: str, index: int, sample: Sample) -> None:
        folder = root / split / str(index)
        folder.mkdir(parents=True)
        Image.fromarray(sample.rgb).save(folder / "image.png")
        for task, name in cls.files.items():
            cls.codec(task).write(folder / name, getattr(sample, task))


def test_the_generator_writes_a_layout_plug_in_through_its_own_writer(tmp_path, capsys):
    register_dataset("toy_folders")(ToyFolders)
    try:
        out = tmp_path / "toy"
        refused = ["data", "synth", "--layout", "toy_folders", "--out", str(out), "--num-test", "1"]
        with pytest.raises(SystemExit):
            main(refused)
        assert capsys.readouterr().err.splitlines()[-1] == (
            "mtl data synth: error: argument --num-test: the toy_folders layout has only train and val splits; "
            "use --num-test 0"
        )
        argv = ["data", "synth", "--layout", "toy_folders", "--out", str(out), "--num-train", "2", "--num-val", "1",
                "--seed", "4", "--workers", "2"]
        assert main(argv) == 0
        assert sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file()) == [
            "synth.json", *(f"{split}/{i}/{name}" for split, i in (("train", 0), ("train", 1), ("val", 0))
                            for name in ("depth.npy", "image.png", "label.png"))]
        assert json.loads((out / "synth.json").read_text())["layout"] == "toy_folders"
        rendered = render_sample(4, "train", 1, 64, 64)  # the layout's default size
        sample = ToyFolders(out).read("train", 1, ("semseg", "depth"))
        np.testing.assert_array_equal(sample["rgb"], rendered.rgb)
        np.testing.assert_array_equal(sample["semseg"], rendered.semseg)
        np.testing.assert_array_equal(sample["depth"], rendered.depth)
        capsys.readouterr()
        assert main(["data", "check", "--dataset", "toy_folders", "--root", str(out)]) == 0
        assert capsys.readouterr().out == f"{out}: OK, 9 files checked, no problem found\n"
    finally:
        DATASETS.unregister("toy_folders")


# --- refused when they register -------------------------------------------------------------------------------
def test_a_task_missing_methods_is_refused_when_it_registers():
    class Half(Task):
        summary_name = "mae"
        summary_label = "MAE"
        higher_is_better = False
        onnx_output = "half"
        target_dtype = "float32"

        def output(self) -> TaskOutput:
            return TaskOutput(1)

    with pytest.raises(TypeError) as error:
        register_task("toy_half")(Half)
    assert str(error.value) == (
        "task 'toy_half': Half does not define decode, export, fill, loss, metric, picture, report, scalars, "
        "to_tensor, tta_result, tta_term (see mtl.tasks.Task)"
    )
    assert "toy_half" not in TASKS

    class Underived(Edges):
        derive = Task.derive

    with pytest.raises(TypeError, match=r"^task 'toy_underived': Underived does not define derive \(see mtl.tasks.Task\)$"):
        register_task("toy_underived")(Underived)


def test_a_task_without_a_required_attribute_is_refused():
    attributes = {k: v for k, v in vars(Edges).items() if not k.startswith("_") and k not in ("summary_label", "onnx_output")}
    Bare = type("Bare", (Task,), attributes)
    with pytest.raises(TypeError, match=r"^task 'toy_bare': Bare does not define summary_label, onnx_output "):
        register_task("toy_bare")(Bare)
    assert "toy_bare" not in TASKS


def test_a_layout_missing_methods_is_refused_when_it_registers():
    class Folders(DatasetLayout):
        info = DatasetInfo(name="toy_folders", stored_tasks=("semseg",), default_tasks=("semseg",))

        def splits(self) -> tuple[str, ...]:
            return ("train",)

    with pytest.raises(TypeError) as error:
        register_dataset("toy_folders")(Folders)
    assert str(error.value) == (
        "dataset 'toy_folders': Folders does not define read, split_size, stored_tasks_in (see mtl.datasets.DatasetLayout)"
    )
    assert "toy_folders" not in DATASETS

    class Generated(NpyLayout):
        info = DatasetInfo(name="toy_generated", stored_tasks=("depth",), default_tasks=("depth",))
        synth_size = (64, 64)  # says it can be generated, but has no writer

    with pytest.raises(TypeError, match=r"^dataset 'toy_generated': Generated does not define write_generated "):
        register_dataset("toy_generated")(Generated)


# --- a task's facts come from the dataset -------------------------------------------------------------------------
def test_depth_statistics_come_from_the_named_dataset_not_from_the_task():
    assert depth_stats_value("miniscapes") == "miniscapes"  # any registered layout's name
    with pytest.raises(argparse.ArgumentTypeError, match="a dataset's name"):
        depth_stats_value("kitti")
    flags = argparse.Namespace(depth_stats="miniscapes")
    assert Depth.prepare(flags, None) == {"mean": 27.0727, "std": 29.1264}
    with pytest.raises(ValueError, match=r"^--depth_stats nyuv2: nyuv2 publishes no depth statistics; use auto$"):
        Depth.prepare(argparse.Namespace(depth_stats="nyuv2"), None)
    info = DatasetInfo("toy", ("depth",), ("depth",), task_info={"depth": DepthInfo((2.0, 50.0), (10.0, 5.0), "m")})
    built = Depth(info)  # no measured state: the dataset's published statistics and its range
    assert built.stats == (10.0, 5.0) and (built.unit.zmin, built.unit.zmax) == (2.0, 50.0)
    assert Depth(DatasetInfo("bare", ("depth",), ("depth",))).task_info == DepthInfo()
