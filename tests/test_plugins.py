"""Plug-ins from outside mtl: a package in a temporary folder, found through MTL_PLUGINS, `mtl --plugins` or an
installed distribution's entry point, listed by `mtl train --help`, recorded by the run that uses it (plugins.txt,
source.zip, checkpoints) and imported again from that record by `mtl predict`, `mtl export`, `mtl test` and
`mtl train --resume` in fresh processes; a module that cannot be imported is one line naming it."""

from __future__ import annotations

import csv
import importlib
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
import yaml
from conftest import FAST_TRAIN_FLAGS

from mtl.cli.main import main
from mtl.datasets import DATASETS
from mtl.models import ENCODERS, MODELS
from mtl.tasks import TASKS
from mtl.weighting import WEIGHTINGS

REPO = Path(__file__).resolve().parents[1]
FIXTURES = Path(__file__).resolve().parent / "fixtures"
REGISTRIES = (TASKS, DATASETS, WEIGHTINGS, MODELS, ENCODERS)

# A weighting with a flag and an encoder (the fixtures' tiny network, so that a run takes seconds).
OUTSIDE_DEMO = '''"""Plug-ins written outside mtl."""
from fixture_encoder import TinyEncoder

from mtl.models import register_encoder
from mtl.weighting import Weighting, register_weighting


@register_weighting("outside_uniform")
class OutsideUniform(Weighting):
    """Every task weighted by --weighting_outside_uniform_weight."""

    @classmethod
    def add_arguments(cls, group):
        group.add_argument("--weighting_outside_uniform_weight", type=float, default=0.5, help="weight of every task")

    @classmethod
    def from_flags(cls, flags, tasks):
        return cls(tasks, {task: flags.weighting_outside_uniform_weight for task in tasks})


@register_encoder("outside_tiny")
def outside_tiny(dilations):
    return TinyEncoder(dilations)
'''
OUTSIDE_UNUSED = '''from mtl.weighting import Weighting, register_weighting


@register_weighting("outside_unused")
class OutsideUnused(Weighting):
    @classmethod
    def add_arguments(cls, group):
        group.add_argument("--weighting_outside_unused_factor", type=float, default=1.0, help="never used")
'''
OUTSIDE_BROKEN = 'raise RuntimeError("needs a driver this machine lacks")\n'
TINY_MODEL = ["--model_encoder_name", "outside_tiny", "--aspp_channels", "8", "--aspp_rates", "1,2,3",
              "--decoder_channels", "8", "--skip_channels", "4"]


def write_distribution(site: Path, name: str, entry_points: dict[str, str]) -> None:
    """An installed distribution as pip leaves it: <name>-1.0.dist-info with METADATA and entry_points.txt."""
    info = site / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    lines = "".join(f"{key} = {module}\n" for key, module in entry_points.items())
    (info / "entry_points.txt").write_text(f"[mtl.plugins]\n{lines}")


@pytest.fixture
def outside(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A folder of outside plug-in modules on sys.path (with the fixtures' encoder). Afterwards every plug-in
    registered meanwhile is forgotten with its module, as if never imported."""
    folder = tmp_path / "outside"
    folder.mkdir()
    for name, source in (("outside_demo", OUTSIDE_DEMO), ("outside_unused", OUTSIDE_UNUSED),
                         ("outside_broken", OUTSIDE_BROKEN)):
        (folder / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(FIXTURES))
    monkeypatch.syspath_prepend(str(folder))
    monkeypatch.delenv("MTL_PLUGINS", raising=False)
    before = {registry: set(registry) for registry in REGISTRIES}
    yield folder
    forget_plugins(before)


def forget_plugins(before: dict) -> None:
    for registry, names in before.items():
        for name in set(registry) - names:
            sys.modules.pop(registry.module_of(name), None)
            registry.unregister(name)


def train_help(capsys: pytest.CaptureFixture, *before_command: str) -> str:
    with pytest.raises(SystemExit) as exc:
        main([*before_command, "train", "--help"])
    assert exc.value.code == 0
    return capsys.readouterr().out


@pytest.mark.parametrize("way", ["MTL_PLUGINS", "--plugins", "entry point"])
def test_train_help_lists_an_outside_plugin_with_its_flags(
    way: str, outside: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    assert "outside_uniform" not in train_help(capsys)
    before = []
    if way == "MTL_PLUGINS":
        monkeypatch.setenv("MTL_PLUGINS", "outside_demo, outside_unused")
    elif way == "--plugins":
        before = ["--plugins", "outside_demo,outside_unused"]
    else:
        write_distribution(tmp_path / "site", "outside-demo", {"demo": "outside_demo", "unused": "outside_unused"})
        monkeypatch.syspath_prepend(str(tmp_path / "site"))
    text = train_help(capsys, *before)
    assert "weighting outside_uniform:" in text and "--weighting_outside_uniform_weight" in text
    assert "weighting outside_unused:" in text and "--weighting_outside_unused_factor" in text
    choices = text.split("\n  --loss_weighting NAME", 1)[1].split("--weighting_on", 1)[0]
    assert "outside_uniform" in choices and "outside_unused" in choices


@pytest.mark.parametrize(
    ("way", "origin"),
    [
        ("MTL_PLUGINS", "MTL_PLUGINS"),
        ("--plugins", "--plugins"),
        ("entry point", "entry point 'gpu' of outside-broken"),
    ],
)
def test_a_plugin_module_that_fails_to_import_is_one_line_naming_it(
    way: str, origin: str, outside: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    argv = ["train", "--help"]
    if way == "MTL_PLUGINS":
        monkeypatch.setenv("MTL_PLUGINS", "outside_broken")
    elif way == "--plugins":
        argv = ["--plugins", "outside_broken", *argv]
    else:
        write_distribution(tmp_path / "site", "outside-broken", {"gpu": "outside_broken"})
        monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert main(argv) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"mtl: error: plug-in module 'outside_broken' ({origin}) cannot be imported: "
        "RuntimeError: needs a driver this machine lacks"
    ]


def test_a_plugin_module_that_is_not_installed_is_one_line_naming_it(
    outside: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("MTL_PLUGINS", "outside_demo,outside_typo")
    assert main(["results", "--help"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        "mtl: error: plug-in module 'outside_typo' (MTL_PLUGINS) cannot be imported: ModuleNotFoundError: "
        "No module named 'outside_typo'; install it, or put its folder on PYTHONPATH"
    ]


def fresh_mtl(outside: Path, *argv: str) -> subprocess.CompletedProcess:
    """`mtl ARGV` in a new Python process that can import the outside modules but is not told to."""
    env = {k: v for k, v in os.environ.items() if k != "MTL_PLUGINS"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(outside), str(FIXTURES)])
    return subprocess.run(
        [sys.executable, "-m", "mtl.cli.main", *argv], env=env, capture_output=True, text=True, timeout=240
    )


def training_rows(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return [row for row in csv.DictReader(f) if row.get("loss_train/total")]


@pytest.mark.slow
def test_a_run_records_its_outside_plugins_and_fresh_processes_load_them_from_the_record(
    outside: Path, tiny_dataset: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture,
) -> None:
    before = {registry: set(registry) for registry in REGISTRIES}
    monkeypatch.setenv("MTL_PLUGINS", "outside_demo,outside_unused")
    run = tmp_path / "run"
    assert main([
        "train", "--dataset_root", str(tiny_dataset), "--log_dir", str(run), *FAST_TRAIN_FLAGS, *TINY_MODEL,
        "--num_epochs", "1", "--loss_weighting", "outside_uniform", "--weighting_outside_uniform_weight", "0.25",
        "--prepare_submission", "no",
    ]) == 0
    monkeypatch.delenv("MTL_PLUGINS")
    rows = training_rows(run / "metrics.csv")
    assert len(rows) == 2 and {(r["loss_weight/semseg"], r["loss_weight/depth"]) for r in rows} == {("0.25", "0.25")}

    # The record: the module defining the plug-ins in use (not the unused one), its source, its flag only.
    assert (run / "plugins.txt").read_text() == "outside_demo\n"
    config = yaml.safe_load((run / "config.yaml").read_text())
    assert config["weighting_outside_uniform_weight"] == 0.25 and "weighting_outside_unused_factor" not in config
    with zipfile.ZipFile(run / "source.zip") as zf:
        assert zf.read("plugins/outside_demo.py") == OUTSIDE_DEMO.encode()
        assert not [name for name in zf.namelist() if "outside_unused" in name or "fixture_encoder" in name]
        assert "weighting_outside_uniform_weight: 0.25" in zf.read("cmd.txt").decode().splitlines()
    best = run / "checkpoints" / "best.ckpt"
    assert torch.load(best, weights_only=True)["hyper_parameters"]["plugins"] == ["outside_demo"]

    # Fresh processes, not told about the plug-ins: the record brings them back.
    predicted = fresh_mtl(outside, "predict", "--checkpoint", str(best), "--split", "val", "--dataset_root",
                          str(tiny_dataset), "--out", str(tmp_path / "pred"), "--batch_size", "2")
    assert predicted.returncode == 0, predicted.stderr
    assert sorted(p.name for p in (tmp_path / "pred" / "depth").iterdir()) == ["0.png", "1.png"]
    exported = fresh_mtl(outside, "export", "--checkpoint", str(best), "--out", str(tmp_path / "m.onnx"),
                         "--height", "64", "--width", "64")
    assert exported.returncode == 0, exported.stderr
    resumed = fresh_mtl(outside, "train", "--resume", str(run), "--num_epochs", "2")
    assert resumed.returncode == 0, resumed.stderr
    rows = training_rows(run / "metrics.csv")
    assert [r["epoch"] for r in rows] == ["0.0", "0.0", "1.0", "1.0"] and rows[-1]["loss_weight/depth"] == "0.25"

    # `mtl test` in this process, once it has forgotten the plug-ins: imported again from the checkpoint.
    forget_plugins(before)
    assert main(["test", "--log_dir", str(run)]) == 0
    assert (run / "submission.zip").is_file()

    # The plug-in's code changed: resuming refuses and names its file.
    (outside / "outside_demo.py").write_text(OUTSIDE_DEMO + "# tuned\n")
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--num_epochs", "3"]) == 2
    assert "  code: plugins/outside_demo.py" in capsys.readouterr().err.splitlines()

    # The plug-in is gone: one line naming it, for every command that needs it.
    forget_plugins(before)
    sys.path.remove(str(outside))
    importlib.invalidate_caches()
    missing = (f"plug-in module 'outside_demo' (recorded in {{}}) cannot be imported: ModuleNotFoundError: No module "
               "named 'outside_demo'; install it, or put its folder on PYTHONPATH")
    assert main(["test", "--log_dir", str(run)]) == 2
    assert capsys.readouterr().err.splitlines() == [f"mtl test: {missing.format(best)}"]
    assert main(["export", "--checkpoint", str(best), "--out", str(tmp_path / "n.onnx")]) == 1
    assert capsys.readouterr().err.splitlines() == [f"mtl export: error: {missing.format(best)}"]
    assert main(["train", "--resume", str(run), "--num_epochs", "3"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"mtl: error: {missing.format(run / 'plugins.txt')}"]
