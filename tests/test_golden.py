"""No change of the code changed a number: the demo preset (small, deterministic, fp32) gives the metrics.csv rows
and final weights recorded before (tests/golden_run.py). Bit for bit against a reference recorded on the same kind
of machine; within the measured drift of float kernels against the original reference on every machine."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from golden_run import ORIGINAL, references, summarise, train

pytestmark = pytest.mark.slow

# Redefined after the original reference was recorded (the Fidelity issue: Sq Rel divides by gt, inverse depth in
# 1/km); the tags were kept, so their recorded values no longer apply there.
REDEFINED = {"metrics_task_depth/rel_squared", "metrics_task_depth/inv_mae", "metrics_task_depth/inv_rmse"}
# Other CPU kinds run other kernels (AVX-512 instead of AVX2: other summation orders), and 4 Adam steps carry the
# last-bit differences on. Measured on an AVX512-BF16 EPYC against the AVX2 reference: metrics.csv values within
# 2.4e-6 (relative), weight-tensor sums within 1.5e-5 of the tensor's L1 norm. The same run with --optimizer_lr
# 0.00101 instead of 0.001 (a 1 % change) moves metrics by ≥ 1e-2 and a sum by 1.2e-2 of its norm. The tolerances
# sit between, ≥ 10× from each side.
ROW_RTOL = 1e-4
SUM_TOL = 2e-4  # × the tensor's L1 norm (at least 1)


def test_demo_preset_reproduces_the_recorded_run(tmp_path: Path) -> None:
    got = summarise(train(tmp_path))
    recorded = references()
    original, same_kind = recorded[0], [r for r in recorded if r["machine"] == got["machine"]]
    for reference in same_kind:
        skip = REDEFINED if reference is original else set()
        assert len(got["rows"]) == len(reference["rows"])
        for expected, row in zip(reference["rows"], got["rows"]):
            assert {k: v for k, v in expected.items() if k not in skip} == {k: row[k] for k in expected if k not in skip}
        assert got["sha256"] == reference["sha256"]

    assert len(got["rows"]) == len(original["rows"]), ORIGINAL
    for expected, row in zip(original["rows"], got["rows"]):
        for column, value in expected.items():  # columns added since (new metrics) are not compared
            if column in REDEFINED or not value:
                assert column in REDEFINED or row[column] == value, (column, row["step"])
                continue
            assert math.isclose(float(row[column]), float(value), rel_tol=ROW_RTOL, abs_tol=1e-9), (column, row["step"])
    assert set(got["sums"]) == set(original["sums"])
    for key, total in original["sums"].items():
        assert abs(got["sums"][key] - total) <= SUM_TOL * max(1.0, got["abs_sums"][key]), key
