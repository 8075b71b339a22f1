"""bench/gpu_suite.py, the one-shot GPU benchmark, runs end to end on the CPU at toy sizes (--dry-run), so that
it works the day a GPU is lent."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
SCRIPT = Path(__file__).resolve().parents[1] / "bench" / "gpu_suite.py"


def test_dry_run_fills_every_section(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(SCRIPT), str(tmp_path), "--dry-run"], capture_output=True, text=True,
                            timeout=1800)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "gpu_suite.json").read_text())
    assert "CPU" in report["device"]["hardware"]
    measured = {(r["model"], r["config"]) for r in report["training"] if "images_per_s" in r}
    assert {("deeplabv3p", "fp32 eager"), ("branched", "fp32 eager"), ("distillation", "fp32 eager")} <= measured
    assert ("deeplabv3p", "bf16 channels_last compile") in measured
    assert report["loader"]["images_per_s"] > 0
    assert report["epoch"]["exit"] == 0 and report["epoch"]["projected_course_s"] > 0
    assert report["ddp"]["exit"] == 0 and report["ddp"]["backend"] == "gloo"
    assert [r["precision"] for r in report["inference"]] == ["32", "bf16-mixed"]
    table = (tmp_path / "gpu_suite.md").read_text()
    assert "| deeplabv3p | fp32 eager |" in table and "projected course schedule" in table and report["skipped"] == []
