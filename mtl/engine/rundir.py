"""The run directory's bookkeeping: source.zip with cmd.txt, config.yaml, plugins.txt, and the rules for resuming.

A run refuses to resume when the code or the experiment's hyper-parameters changed since it began
(the course's rule, which keeps a run's numbers attributable to one piece of code), unless
``--allow_changed_code``. ``--num_epochs`` may grow: the schedule then continues without a jump.
The code is mtl's and that of the plug-in modules from outside mtl the run uses: plugins.txt names them
(one a line; `mtl train --resume` imports them before reading the run's flags) and source.zip holds their
source under plugins/.
"""

from __future__ import annotations

import argparse
import zipfile
from pathlib import Path

import yaml

from mtl.config import code_root, experiment_items, plain_values, plugin_modules, unused_flags
from mtl.data.formats import atomic_write
from mtl.plugins import module_source
from mtl.weighting import renamed_flags

PLUGINS_FILE = "plugins.txt"


class ResumeRefused(RuntimeError):
    pass


def source_files(cfg: argparse.Namespace) -> dict[str, bytes]:
    """The project's source files, relative to the folder holding the `mtl` package, and those of the plug-in
    modules from outside mtl that the run ``cfg`` uses, under plugins/."""
    root = code_root()
    files = {}
    for path in sorted(root.rglob("*.py")):
        if "__pycache__" not in path.parts:
            files[str(Path("mtl") / path.relative_to(root))] = path.read_bytes()
    for module in plugin_modules(vars(cfg)):
        source = module_source(module)
        if source is not None:
            files[source[0]] = source[1]
    return files


def cmd_text(cfg: argparse.Namespace) -> str:
    return "".join(f"{key}: {value}\n" for key, value in experiment_items(cfg).items())


def write_source_zip(log_dir: Path, cfg: argparse.Namespace) -> None:
    with zipfile.ZipFile(log_dir / "source.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in source_files(cfg).items():
            zf.writestr(name, data)
        zf.writestr("cmd.txt", cmd_text(cfg))


def write_config(log_dir: Path, cfg: argparse.Namespace) -> None:
    """The flag values of the run (the general ones and those of the plug-ins it uses), so that `mtl train --resume
    RUN_DIR` and `mtl test` can rebuild it; and plugins.txt, the modules from outside mtl that define its plug-ins."""
    values = {k: v for k, v in plain_values(cfg).items() if k not in ("resume", "config")}
    # Atomic: the other processes of a job started by torchrun or srun read it while rank 0 writes it.
    atomic_write(lambda path: path.write_text(yaml.safe_dump(values, sort_keys=True)), log_dir / "config.yaml")
    modules = plugin_modules(vars(cfg))
    if modules:
        atomic_write(lambda path: path.write_text("".join(f"{m}\n" for m in modules)), log_dir / PLUGINS_FILE)
    else:
        (log_dir / PLUGINS_FILE).unlink(missing_ok=True)


def recorded_plugins(log_dir: Path) -> list[str]:
    """The plug-in modules from outside mtl that a run uses (its plugins.txt), to import before reading its flags."""
    path = log_dir / PLUGINS_FILE
    return [line.strip() for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def _parse_cmd(text: str) -> dict[str, str]:
    return dict(line.split(": ", 1) for line in text.splitlines() if ": " in line)


def check_resume(log_dir: Path, cfg: argparse.Namespace) -> list[str]:
    """Differences between the run's recorded code/command line and now; raises unless allowed."""
    with zipfile.ZipFile(log_dir / "source.zip") as zf:
        recorded = {name: zf.read(name) for name in zf.namelist()}
    renamed = renamed_flags()  # a run begun before a flag was renamed recorded its former name
    recorded_cmd = {renamed.get(k, k): v for k, v in _parse_cmd(recorded.pop("cmd.txt", b"").decode()).items()}
    current = source_files(cfg)
    names = sorted(set(recorded) | set(current))
    changes = [f"code: {name}" for name in names if recorded.get(name) != current.get(name)]
    now = experiment_items(cfg)
    # A run begun before cmd.txt left out the flags of plug-ins it does not use recorded them all.
    unused = unused_flags(vars(cfg))
    changes += [
        f"--{key}: {recorded_cmd.get(key)} → {now.get(key)}"
        for key in sorted(set(recorded_cmd) | set(now))
        if recorded_cmd.get(key) != now.get(key) and key not in unused
    ]
    if changes and not cfg.allow_changed_code:
        listing = "\n  ".join(changes[:20])
        raise ResumeRefused(
            f"refusing to resume {log_dir}: code or command line changed since the run began:\n  {listing}\n"
            "pass --allow_changed_code to resume anyway"
        )
    return changes


def resolve_resume(resume: str) -> tuple[Path, Path]:
    """(run directory, checkpoint) from a run directory or a checkpoint path."""
    path = Path(resume)
    if path.is_dir():
        ckpt = path / "checkpoints" / "last.ckpt"
        if not ckpt.is_file():
            raise FileNotFoundError(f"--resume: {path} has no checkpoints/last.ckpt")
        return path, ckpt
    return path.parent.parent, path


def recorded_config(log_dir: Path) -> dict:
    path = log_dir / "config.yaml"
    return yaml.safe_load(path.read_text()) if path.is_file() else {}
