"""The grader against hostile archives: every case is scored exactly as the valid submission, or rejected
with a one-line SubmissionError naming the archive; never another exception, a traceback or another number.

The generator is scripts/fuzz_grader.py (also runnable on its own with more cases)."""

from __future__ import annotations

import importlib.util
import json
import sys
import tracemalloc
import warnings
from pathlib import Path

import pytest

from mtl.cli.main import main

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "fuzz_grader.py"
N_CASES = 450  # every hand-made case (about 330) and the rest random mutations


def _load_fuzzer():
    spec = importlib.util.spec_from_file_location("fuzz_grader", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules["fuzz_grader"] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    return module


fuzz_grader = _load_fuzzer()


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[object, object]]:
    """label → (case, outcome) for N_CASES cases, seed 0."""
    work = tmp_path_factory.mktemp("fuzz")
    return {case.label: (case, outcome) for case, outcome in fuzz_grader.fuzz(N_CASES, 0, work)}


@pytest.fixture(scope="module")
def fixture(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, bytes], list]:
    work = tmp_path_factory.mktemp("fuzz-cli")
    gt, entries = fuzz_grader.make_fixture(work)
    return gt, entries, list(fuzz_grader.generate(entries, N_CASES, 0))


def test_every_hostile_archive_is_scored_or_rejected_in_one_line(outcomes):
    others = {label: outcome.detail for label, (_, outcome) in outcomes.items() if outcome.kind == "other"}
    assert not others, "\n\n".join(f"{label}:\n{detail}" for label, detail in others.items())
    assert len(outcomes) == N_CASES
    kinds = [outcome.kind for _, outcome in outcomes.values()]
    scored, rejected = kinds.count("scored"), kinds.count("rejected")
    assert scored >= 40 and rejected >= 300, (scored, rejected)
    families = {label.split("/")[0] for label in outcomes}
    assert families >= {"valid", "name", "dup", "dir", "link", "method", "data", "flags", "version", "local",
                        "central", "truncated", "size", "bomb", "png", "mutate"}


@pytest.mark.parametrize(
    ("label", "message"),
    [
        # the two archives of the issue that ended in a traceback
        ("data/lzma bad LZMA properties", "entry 'predictions/semseg/0.png' is corrupt or unreadable (Invalid or"),
        ("data/lzma flipped byte mid-data", "entry 'predictions/semseg/0.png' is corrupt or unreadable ("),
        ("version/needed 64 on a prediction", "not a readable zip archive (zip file version 6.4)"),
        ("version/needed 65535 on an ignored entry", "not a readable zip archive (zip file version"),
        # found by the fuzzer: zipfile itself fails on an empty entry name
        ("name/extra b''", "an entry has an empty name"),
        ("method/unknown 9 on a prediction", "entry 'predictions/semseg/0.png' is corrupt or unreadable ("),
        ("bomb/predictions/semseg/0.png declares 1000 bytes", "is corrupt or unreadable (Bad CRC-32"),
        ("bomb/64 records overlapping one bomb", "bytes uncompressed, over the limit of 8388608"),
        ("png/huge declared png as a semseg prediction", "is not a decodable PNG (Image size"),
        ("png/not a png as a semseg prediction", "is not a decodable PNG (not an image format PIL knows)"),
        ("name/extra b'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'", None),  # ignored entry: scored
    ],
)
def test_known_cases(outcomes, label, message):
    case, outcome = outcomes[label]
    if message is None:
        assert outcome.kind == "scored", outcome.detail
    else:
        assert outcome.kind == "rejected" and message in outcome.detail, outcome.detail


def test_bombs_cost_at_most_the_limits(tmp_path, fixture):
    """A 32 MiB bomb, whatever it declares, is refused without allocating anything near its size."""
    gt, entries, cases = fixture
    bombs = [case for case in cases if case.label.startswith("bomb/")]
    assert len(bombs) == 7
    for k, case in enumerate(bombs):
        path = tmp_path / f"bomb-{k}.zip"
        path.write_bytes(case.data)
        tracemalloc.start()
        try:
            fuzz_grader.grade(path, gt)
        except fuzz_grader.SubmissionError:
            pass
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 4 * fuzz_grader.MAX_ENTRY_BYTES < fuzz_grader.BOMB_BYTES, (case.label, peak)


CLI_CASES = [
    "data/lzma bad LZMA properties",
    "version/needed 64 on a prediction",
    "name/extra b''",
    "truncated/at 1 of",
    "bomb/predictions/semseg/0.png declares 1000 bytes",
    "png/huge declared png as a semseg prediction",
    "name/extra b'predictions/yyyy",  # a 65 kB name, shown cut
    "png/png over PIL's warning size",  # PIL only warns, on stderr, unless the grader makes it a rejection
]


@pytest.mark.parametrize("prefix", CLI_CASES)
def test_cli_rejects_in_one_line_without_a_traceback(tmp_path, fixture, capsys, prefix):
    gt, _, cases = fixture
    case = next(c for c in cases if c.label.startswith(prefix) and c.expect == "rejected")
    path = tmp_path / "hostile.zip"
    path.write_bytes(case.data)
    with warnings.catch_warnings(record=True) as caught:  # outside pytest, a warning is printed on stderr
        warnings.simplefilter("always")
        rc = main(["grade", str(path), "--gt", str(gt), "--max-entry-mib", "1", "--max-total-gib", str(8 / 1024)])
    out, err = capsys.readouterr()
    assert not caught, [str(w.message) for w in caught]
    assert rc == 1 and out == ""
    assert "Traceback" not in err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"mtl grade: error: {path}: ") and len(lines[0]) < 600, err


def test_cli_scores_a_hostile_but_sound_archive(tmp_path, fixture, capsys):
    gt, _, cases = fixture
    case = next(c for c in cases if c.label == "valid/prefix-junk (self-extractor stub)")
    path = tmp_path / "sfx.zip"
    path.write_bytes(case.data)
    assert main(["grade", str(path), "--gt", str(gt)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out)["num_images"] == fuzz_grader.N_IMAGES and err == ""


@pytest.mark.parametrize("flag", ["--max-total-gib", "--max-entry-mib"])
@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e400", "0"])
def test_non_finite_limits_are_refused_naming_the_flag(tmp_path, capsys, flag, value):
    with pytest.raises(SystemExit) as info:
        main(["grade", str(tmp_path / "s.zip"), "--gt", str(tmp_path), f"{flag}={value}"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1].startswith(f"mtl grade: error: argument {flag}: expected a "), err


def test_the_script_prints_a_summary(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(fuzz_grader.tempfile, "tempdir", str(tmp_path))
    assert fuzz_grader.main(["--cases", "25", "--seed", "3"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("cases 25, scored ") and ", other exceptions 0 " in out
