"""Both spellings of every long flag in every command (`--num-epochs` = `--num_epochs`, `--runs_dir` =
`--runs-dir`), one shown in --help; `--` separators, `--flag=value`, values starting with `--`, abbreviations."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from mtl.cli.main import build_parser as build_main_parser
from mtl.cli.main import main
from mtl.config import build_parser as build_train_parser
from mtl.config import parse_config
from mtl.flags import Parser


def other_spelling(flag: str) -> str:
    body = flag[2:]
    return "--" + (body.replace("_", "-") if "_" in body else body.replace("-", "_"))


def commands() -> dict[str, argparse.ArgumentParser]:
    """Every command `mtl --help` lists (and the commands under them, e.g. `data synth`), by its words."""
    found: dict[str, argparse.ArgumentParser] = {}

    def walk(words: str, parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    found[f"{words} {name}".strip()] = build_train_parser() if name == "train" and not words else sub
                    walk(f"{words} {name}".strip(), sub)

    walk("", build_main_parser())
    return found


COMMANDS = commands()


def test_every_command_is_covered() -> None:
    assert {"train", "tune", "baselines", "data", "data synth", "data check", "data stats", "predict", "test",
            "export", "grade", "report", "results", "complexity"} <= set(COMMANDS)


@pytest.mark.parametrize("words", sorted(COMMANDS))
def test_every_long_flag_takes_both_spellings(words: str) -> None:
    parser = COMMANDS[words]
    assert isinstance(parser, Parser)
    flags = [s for action in parser._actions for s in action.option_strings if s.startswith("--")]
    keys = [s[2:].replace("-", "_") for s in flags]
    assert len(set(keys)) == len(keys), f"mtl {words}: two flags differ only in - and _"
    for flag in flags:
        alternative = other_spelling(flag)
        # Only the flag part changes: a value (even one that looks like a flag) and whatever follows `--` stay.
        assert parser.respell([alternative, "x", f"{alternative}=--{alternative[2:]}", "--", alternative]) == [
            flag, "x", f"{flag}=--{alternative[2:]}", "--", alternative
        ]


@pytest.mark.parametrize("words", ["train", "tune", "baselines", "data synth"])
def test_help_shows_the_declared_spelling_only(words: str, capsys) -> None:
    with pytest.raises(SystemExit):
        main([*words.split(), "--help"])
    shown = capsys.readouterr().out
    flag = {"train": "--num_epochs", "tune": "--n-trials", "baselines": "--runs-dir", "data synth": "--num-train"}[words]
    assert flag in shown and other_spelling(flag) not in shown


def test_train_takes_hyphens_and_equals(tiny_dataset: Path) -> None:
    cfg = parse_config(["--dataset-root", str(tiny_dataset), "--num-epochs=3", "--batch-size", "2",
                        "--aug-geom-reflect", "--name=--num-epochs", "--optimizer_lr", "0.5"])
    assert (cfg.dataset_root, cfg.num_epochs, cfg.batch_size, cfg.aug_geom_reflect) == (str(tiny_dataset), 3, 2, True)
    assert cfg.name == "--num-epochs" and cfg.optimizer_lr == 0.5


def test_train_preset_keys_in_either_spelling(tiny_dataset: Path, tmp_path: Path) -> None:
    preset = tmp_path / "preset.yaml"
    preset.write_text(yaml.safe_dump({"num-epochs": 5, "batch_size": 2, "optimizer-lr": 0.25}))
    cfg = parse_config(["--dataset_root", str(tiny_dataset), "--config", str(preset)])
    assert (cfg.num_epochs, cfg.batch_size, cfg.optimizer_lr) == (5, 2, 0.25)
    preset.write_text(yaml.safe_dump({"num-epochs": 5, "num_epochs": 6}))
    with pytest.raises(SystemExit):
        parse_config(["--dataset_root", str(tiny_dataset), "--config", str(preset)])


def test_abbreviations_are_refused_in_either_spelling(capsys) -> None:
    for abbreviated in ("--num-epoch", "--num_epoch"):
        with pytest.raises(SystemExit):
            main(["train", "--dataset_root", ".", abbreviated, "1"])
        assert capsys.readouterr().err == (
            f"mtl train: error: unrecognized arguments: {abbreviated} 1 (did you mean --num_epochs?)\n"
        )
    with pytest.raises(SystemExit):
        main(["tune", "--study", "s", "--n_trial", "1"])
    assert capsys.readouterr().err == "mtl tune: error: unrecognized arguments: --n_trial (did you mean --n-trials?)\n"


def test_tune_takes_underscores_and_passes_train_flags_after_the_separator(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    runs = tmp_path / "runs"
    code = main(["tune", "--study", "s", "--n_trials", "1", "--runs_dir", str(runs), "--pruner_warmup_epochs", "0",
                 "--", "--dataset-root", str(tiny_dataset), "--log-dir", str(tmp_path / "mine")])
    assert code == 2
    assert capsys.readouterr().err == (
        "mtl tune: --log_dir is set by the tuner (each trial runs in <runs-dir>/<study>/trial_<n>); remove it\n"
    )


def test_baselines_take_underscores_and_pass_train_flags_after_the_separator(tiny_dataset: Path, tmp_path: Path, capsys) -> None:
    code = main(["baselines", "--runs_dir", str(tmp_path), "--", "--dataset-root", str(tiny_dataset), "--log-dir", "x"])
    assert code == 2
    assert capsys.readouterr().err == (
        "mtl baselines: `mtl train` refuses the flags: --log_dir is set by `mtl baselines` "
        "(runs go to <runs-dir>/<name>/single_<task>); remove it\n"
    )


def test_data_synth_takes_underscores(tmp_path: Path, capsys) -> None:
    with pytest.raises(SystemExit):
        main(["data", "synth", "--out", str(tmp_path / "d"), "--num_train", "0", "--num_val=0", "--num_test", "0"])
    assert capsys.readouterr().err == (
        "mtl data synth: error: nothing to generate: --num-train, --num-val and --num-test are all 0\n"
    )
