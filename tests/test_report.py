"""`mtl report`: a self-contained page (no network), escaped run text, and images that load in headless Chromium."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml
from test_results import train_two_runs

from mtl.cli.main import main

pytestmark = pytest.mark.slow

EVIL = '<i>&"evil"'
# Appended to a copy of the page under test: writes what the browser made of every <img> into the DOM.
IMAGE_PROBE = """<script>
window.addEventListener("load", () => {
  const images = Array.from(document.images);
  const broken = images.filter((i) => !(i.complete && i.naturalWidth > 0)).map((i) => i.alt);
  const probe = document.createElement("pre");
  probe.id = "image-probe";
  const rows = document.querySelectorAll("#results-table tbody tr").length;
  probe.textContent = JSON.stringify({total: images.length, broken: broken, rows: rows});
  document.body.appendChild(probe);
});
</script>"""


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    runs, _ = train_two_runs(tmp_path_factory.getbasetemp() / "shared_tiny_runs")
    return runs


@pytest.fixture(scope="module")
def report(runs_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert main(["report", str(runs_dir), "--out", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def chromium() -> str:
    """Debian's chromium (`.ci/run` installs it); tests never install system packages. Without it the browser
    tests are skipped, unless MTL_REQUIRE_CHROMIUM is set (as `.ci/run` does): then they fail."""
    exe = shutil.which("chromium")
    if exe is None:
        reason = "chromium is not installed (Debian: apt-get install chromium; .ci/run installs it as root)"
        if os.environ.get("MTL_REQUIRE_CHROMIUM"):
            pytest.fail(f"MTL_REQUIRE_CHROMIUM is set but {reason}", pytrace=False)
        pytest.skip(reason)
    return exe


def render_dom(chromium: str, page: Path, profile: Path) -> str:
    result = subprocess.run(
        [
            chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
            "--disable-background-networking", "--disable-component-update", "--no-first-run", "--disable-sync",
            f"--user-data-dir={profile}", "--virtual-time-budget=10000", "--dump-dom", page.resolve().as_uri(),
        ],
        capture_output=True, text=True, timeout=180,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return result.stdout


def probe_images(chromium: str, page_html: str, tmp_path: Path) -> dict:
    page = tmp_path / "probed.html"
    page.write_text(page_html.replace("</body>", IMAGE_PROBE + "</body>"), encoding="utf-8")
    dom = render_dom(chromium, page, tmp_path / "profile")
    match = re.search(r'<pre id="image-probe">(.*?)</pre>', dom, re.S)
    assert match, "the probe script did not run"
    return json.loads(html.unescape(match.group(1)))


def test_report_is_self_contained(report: Path) -> None:
    text = report.read_text(encoding="utf-8")
    attributes = re.findall(r'\b(?:src|href)\s*=\s*"([^"]*)"', text, re.I)
    assert attributes, "expected embedded images"
    assert [v[:40] for v in attributes if not v.startswith("data:")] == []
    assert not re.search(r"(?:https?:)?//[\w.-]+\.\w+/", re.sub(r'"data:[^"]*"', '""', text))
    assert "<script" not in text.lower() and "<link" not in text.lower() and "@import" not in text
    # One chart, the depth colour bar and one prediction grid per run.
    assert text.count("<img ") == 2 + 2
    assert text.count('src="data:image/svg+xml;base64,') == 1


def test_report_renders_in_chromium_with_every_image_loaded(
    report: Path, chromium: str, tmp_path: Path
) -> None:
    result = probe_images(chromium, report.read_text(encoding="utf-8"), tmp_path)
    assert result == {"total": 4, "broken": [], "rows": 2}


def test_image_probe_detects_a_broken_image(chromium: str, tmp_path: Path) -> None:
    """The check above can fail: an undecodable data URI is reported."""
    page = '<!DOCTYPE html><html><body><img alt="bad" src="data:image/png;base64,AAAA"></body></html>'
    assert probe_images(chromium, page, tmp_path)["broken"] == ["bad"]


def test_run_text_is_escaped(runs_dir: Path, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    evil = runs / EVIL
    shutil.copytree(runs_dir / "lr0.01", evil, ignore=shutil.ignore_patterns("*.ckpt"))
    config = yaml.safe_load((evil / "config.yaml").read_text())
    config["model_name"] = "<script>alert(1)</script>"
    (evil / "config.yaml").write_text(yaml.safe_dump(config))
    out = tmp_path / "report.html"
    assert main(["report", str(runs), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert EVIL not in text and "<script>" not in text
    assert html.escape(EVIL) in text and html.escape("<script>alert(1)</script>") in text


def test_single_run_and_run_without_validation(runs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "one.html"
    assert main(["report", str(runs_dir / "lr0.001"), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    table = text[text.index('id="results-table"') : text.index("</table>", text.index('id="results-table"'))]
    assert table.count("<tr>") == 1 + 1 and "lr0.001" in table
    assert text.count("<img ") == 3

    crashed = tmp_path / "crashed"
    crashed.mkdir()
    shutil.copy(runs_dir / "lr0.001" / "config.yaml", crashed / "config.yaml")
    (crashed / "metrics.csv").write_text("step,epoch,loss_train/total\n0,,3.5\n")
    assert main(["report", str(crashed), "--out", str(tmp_path / "crashed.html")]) == 0
    text = (tmp_path / "crashed.html").read_text(encoding="utf-8")
    assert "No run has finished a validation yet." in text
    assert "no valid/observed_samples picture logged" in text

    assert main(["report", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.html")]) == 2
    assert "runs folder not found" in capsys.readouterr().err


def test_page_from_hand_made_runs(tmp_path: Path) -> None:
    """Rendering only (no training): IoU cell shades, the clipped-grader note, and the best score in bold."""
    from mtl.reporting.page import render_report
    from mtl.reporting.runs import Run

    def run(name: str, graders: list[float], road_iou: float) -> Run:
        (tmp_path / name).mkdir()
        validation = [
            {"step": 2.0 * (e + 1), "epoch": float(e), "metrics_summary/grader": g, "metrics_summary/semseg": 40.0 + e,
             "metrics_summary/depth": 60.0 - g, "metrics_task_semseg/road": road_iou}
            for e, g in enumerate(graders)
        ]
        return Run(tmp_path / name, name, {"model_name": "deeplabv3p"}, validation, [])

    text = render_report([run("zero", [0.0, 0.0], 0.0), run("good", [3.0, 7.5, 7.5], 100.0)], tmp_path)
    assert 'style="background:#41ab5d">100.0<' in text and 'style="background:#ffffff">0.0<' in text
    assert "Grader 0 at every epoch (zero)" in text
    table = text[text.index('id="results-table"') : text.index("</table>", text.index('id="results-table"'))]
    assert table.index(">good<") < table.index(">zero<")  # sorted by grader
    assert '<td class="num best">7.50</td>' in table and '<td class="num best">1</td>' not in table


# --- a three-task run and its Δm -------------------------------------------------------------------------------

NORMALS = ("mean_angle", "median_angle", "within_11_25", "within_22_5", "within_30")


def three_task_runs(root: Path, normals_baseline: bool = True) -> Path:
    """Hand-made runs: a semseg + depth + normals run (with an observed-samples picture) and one single-task run
    per task, each with its best epoch at 0 and other values at epoch 1."""
    from test_results import depth_row, scores, semseg_row, single_config, write_run

    def normals_row(*values: float) -> dict[str, float]:
        return {"metrics_summary/normals": values[0], **{f"metrics_task_normals/{k}": v for k, v in zip(NORMALS, values)}}

    classes = {"metrics_task_semseg/road": 90.0, "metrics_task_semseg/car": 30.0}
    losses = {"loss_val/total": 2.0, "loss_val/semseg": 1.0, "loss_val/depth": 0.6, "loss_val/normals": 0.4}
    config = {**single_config("semseg"), "model_name": "mtan", "tasks": ["semseg", "depth", "normals"]}
    run = write_run(root / "mtan3", config, [
        {**semseg_row(60.0, 88.0), **classes, **depth_row(20.0, 5.0, 0.20), **normals_row(20.0, 15.0, 40.0, 60.0, 70.0),
         **scores(60.0, 20.0), **losses},
        {**semseg_row(55.0, 80.0), **depth_row(30.0, 6.0, 0.30), **normals_row(30.0, 25.0, 20.0, 30.0, 40.0),
         **scores(55.0, 30.0), **losses},
    ])
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(run))
    writer.add_image("valid/observed_samples", np.full((16, 7 * 16, 3), 128, dtype=np.uint8), 2, dataformats="HWC")
    writer.close()
    write_run(root / "single_semseg", single_config("semseg"), [{**semseg_row(50.0, 80.0), **scores(50.0)}])
    write_run(root / "single_depth", single_config("depth"), [{**depth_row(25.0, 4.0, 0.25), **scores(si=25.0)}])
    if normals_baseline:
        write_run(root / "single_normals", single_config("normals"), [
            {**normals_row(25.0, 12.0, 32.0, 60.0, 56.0), **scores()},
            {**normals_row(35.0, 30.0, 10.0, 20.0, 30.0), **scores()},
        ])
    return root


# Nine metrics: mIoU +20, pixel accuracy +10, abs err −25, rel err +20, mean angle −(20 − 25)/25 = +20,
# median −(15 − 12)/12 = −25, within 11.25° +(40 − 32)/32 = +25, 22.5° 0, 30° +(70 − 56)/56 = +25.
THREE_TASK_DELTA = (20 + 10 - 25 + 20 + 20 - 25 + 25 + 0 + 25) / 9


def test_three_task_report(tmp_path: Path, chromium: str) -> None:
    from mtl.reporting.page import _iou_color
    from mtl.reporting.plots import loss_panels, score_panels
    from mtl.reporting.runs import load_runs

    runs = three_task_runs(tmp_path / "runs")
    out = tmp_path / "report.html"
    assert main(["report", str(runs), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    table = text[text.index('id="results-table"') : text.index("</table>", text.index('id="results-table"'))]
    headers = re.findall(r"<th>([^<]*)</th>", table)
    assert headers[-7:] == ["grader", "mIoU", "SI-logRMSE", "normals mean angle", "Δ_MTL% ↑", "params", "train time"]
    assert f'<td class="num best">{THREE_TASK_DELTA:+.2f}</td>' in table  # +7.78, the only Δm
    assert "normals: mean_angle ↓, median_angle ↓, within_11_25 ↑, within_22_5 ↑, within_30 ↑" in text
    assert "semseg ← single_semseg, depth ← single_depth, normals ← single_normals" in text

    normals = text[text.index('id="metrics-normals"') : text.index("</table>", text.index('id="metrics-normals"'))]
    assert [re.sub(r"<[^>]+>", "", row.split("</td>")[0]) for row in normals.split("<tr>")[2:]] == [
        "mean_angle ↓", "median_angle ↓", "within_11_25 ↑", "within_22_5 ↑", "within_30 ↑"
    ]
    depth = text[text.index('id="metrics-depth"') : text.index("</table>", text.index('id="metrics-depth"'))]
    assert "si_log_rmse ↓" in depth and "mae ↓" in depth and "rel ↓" in depth
    assert f'style="background:{_iou_color(90.0)}">90.0<' in text and "Per-class semseg scores" in text  # road's IoU
    assert "columns: RGB | GT semseg | predicted semseg | GT depth | predicted depth | GT normals | predicted normals" in text
    assert "depth colour scale" in text and "normals colour scale" not in text  # one bar: the single-channel task's

    loaded, _ = load_runs(runs)
    multi = [run for run in loaded if run.name == "mtan3"]
    assert [t for t, _ in score_panels(multi)] == ["grader (val) ↑", "mIoU (val) ↑", "SI-logRMSE (val) ↓", "normals mean angle (val) ↓"]
    assert [t for t, _ in loss_panels(multi)] == ["total loss ↓", "semseg loss ↓", "depth loss ↓", "normals loss ↓"]
    # The chart, the depth colour bar and the run's picture; all decode in a browser.
    assert text.count("<img ") == 3
    assert probe_images(chromium, text, tmp_path) == {"total": 3, "broken": [], "rows": 4}


def test_report_names_the_missing_baseline(tmp_path: Path) -> None:
    runs = three_task_runs(tmp_path / "runs", normals_baseline=False)
    out = tmp_path / "report.html"
    assert main(["report", str(runs), "--out", str(out)]) == 0
    text = out.read_text(encoding="utf-8")
    assert "no single-task baseline for normals" in text
    table = text[text.index('id="results-table"') : text.index("</table>", text.index('id="results-table"'))]
    assert "Δ_MTL% ↑" in table and "+" not in re.sub(r"<[^>]+>", " ", table.split("mtan3")[1].split("</tr>")[0])
