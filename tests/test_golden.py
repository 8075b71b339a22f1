"""The restructuring changed no number: the demo preset (small, deterministic) gives the metrics.csv rows and
final weights recorded with the code before it (tests/golden_run.py). Bit for bit on the kind of machine the
reference was recorded on; elsewhere float kernels differ in their last bits, and the numbers must stay close."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from golden_run import REFERENCE, fingerprint, summarise, train

pytestmark = pytest.mark.slow

# Redefined after the reference was recorded (the Fidelity issue: Sq Rel divides by gt, inverse depth in 1/km);
# the tags were kept, so their recorded values no longer apply.
REDEFINED = {"metrics_task_depth/rel_squared", "metrics_task_depth/inv_mae", "metrics_task_depth/inv_rmse"}


def test_demo_preset_reproduces_the_recorded_run(tmp_path: Path) -> None:
    reference = json.loads(REFERENCE.read_text())
    got = summarise(train(tmp_path))
    assert len(got["rows"]) == len(reference["rows"])
    exact = fingerprint() == reference["machine"]
    for expected, row in zip(reference["rows"], got["rows"]):
        for column, value in expected.items():  # columns added since (new metrics) are not compared
            if column in REDEFINED:
                continue
            if exact or not value:
                assert row[column] == value, (column, row["step"])
            else:
                assert math.isclose(float(row[column]), float(value), rel_tol=1e-3, abs_tol=1e-3), (column, row["step"])
    assert set(got["sha256"]) == set(reference["sha256"])
    if exact:
        assert got["sha256"] == reference["sha256"]
    else:
        for key, total in reference["sums"].items():
            assert math.isclose(got["sums"][key], total, rel_tol=1e-3, abs_tol=1e-3), key
