"""The grader: exact scores against an independent NumPy computation, and every rejection of a bad archive."""

from __future__ import annotations

import io
import json
import pickle
import stat
import struct
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import make_tiny_dataset
from PIL import Image

from mtl.cli.main import main
from mtl.grading.safezip import SubmissionError, read_limited

N_IMAGES = 3
W, H = 64, 32


@pytest.fixture
def gt_dir(tmp_path: Path) -> Path:
    return make_tiny_dataset(tmp_path / "data", sizes={"test": N_IMAGES}, width=W, height=H) / "test_gt"


def png(array: np.ndarray, mode: str = "L") -> bytes:
    image = Image.fromarray(np.ascontiguousarray(array, dtype=np.uint8), mode="L")
    if mode == "P":
        image.putpalette([0] * 768)
    elif mode != "L":
        image = image.convert(mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def gt_arrays(gt_dir: Path, i: int) -> tuple[np.ndarray, np.ndarray]:
    with Image.open(gt_dir / "semseg" / f"{i}.png") as s, Image.open(gt_dir / "depth" / f"{i}.png") as d:
        return np.asarray(s), np.asarray(d)


def perfect_entries(gt_dir: Path) -> dict[str, bytes]:
    """Predictions equal to the ground truth wherever it is labelled; ignore/invalid pixels get an
    arbitrary legal value (a prediction may not hold 255 or depth code 0), which the grader must not count."""
    entries = {}
    for i in range(N_IMAGES):
        ids, codes = gt_arrays(gt_dir, i)
        entries[f"predictions/semseg/{i}.png"] = png(np.where(ids == 255, 4, ids), "P")
        entries[f"predictions/depth/{i}.png"] = png(np.where(codes == 0, 77, codes))
    return entries


def write_zip(path: Path, entries: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return path


def grade(capsys, *args: str) -> tuple[int, str, str]:
    rc = main(["grade", *map(str, args)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


def test_ground_truth_against_itself_scores_100(tmp_path, gt_dir, capsys):
    marker = tmp_path / "unpickled"

    class Trap:  # unpickling this would create `marker`
        def __reduce__(self):
            return (open, (str(marker), "w"))

    entries = {
        "predictions/": b"",
        "predictions/semseg/": b"",
        **perfect_entries(gt_dir),
        "checkpoints/best.ckpt": pickle.dumps(Trap()),
        "source.zip": b"PK\x05\x06" + b"\x00" * 18,
        "metrics.csv": b"epoch,grader\n0,1\n",
    }
    submission = write_zip(tmp_path / "submission.zip", entries)
    rc, out, err = grade(capsys, submission, "--gt", gt_dir, "--json", tmp_path / "result.json")
    assert rc == 0, err
    result = json.loads(out)
    assert json.loads((tmp_path / "result.json").read_text()) == result
    assert result["miou"] == 100.0 and result["si_log_rmse"] == 0.0
    assert result["grader"] == 100.0 and result["total"] == 100.0
    assert result["num_images"] == N_IMAGES
    assert set(result["iou_per_class"].values()) == {100.0} and len(result["iou_per_class"]) == 19
    assert result["depth_metrics"]["mae"] == 0.0 and result["depth_metrics"]["delta1"] == 100.0
    assert not marker.exists()


def independent_scores(gt_dir: Path, preds: list[tuple[np.ndarray, np.ndarray]]) -> dict[str, float]:
    """mIoU from a confusion matrix (np.add.at) and SI-logRMSE per image, decoding codes with SPEC §2."""

    def decode(v):
        dmin, dmax = 1 / 300, 1 / 4
        return (1 / ((dmax - dmin) * (v.astype(np.float64) - 1) / 254 + dmin)).astype(np.float32)

    conf = np.zeros((19, 19), dtype=np.int64)
    si = []
    for i, (pred_ids, pred_codes) in enumerate(preds):
        ids, codes = gt_arrays(gt_dir, i)
        keep = ids != 255
        np.add.at(conf, (ids[keep].astype(int), pred_ids[keep].astype(int)), 1)
        valid = codes != 0
        d = np.log(decode(codes[valid]).astype(np.float64)) - np.log(decode(pred_codes[valid]).astype(np.float64))
        si.append(100 * np.sqrt(np.mean(d**2) - np.mean(d) ** 2))
    tp = np.diag(conf)
    iou = 100 * tp / (conf.sum(0) + conf.sum(1) - tp)
    miou, si_mean = iou.mean(), float(np.mean(si))
    return {"miou": miou, "si_log_rmse": si_mean, "grader": max(miou - 50, 0) + max(50 - si_mean, 0), "iou": iou}


def test_perturbed_predictions_match_numpy(tmp_path, gt_dir, capsys):
    rng = np.random.default_rng(7)
    preds, entries = [], {}
    for i in range(N_IMAGES):
        ids, codes = gt_arrays(gt_dir, i)
        pred_ids = np.where(rng.random(ids.shape) < 0.8, np.where(ids == 255, 0, ids), rng.integers(0, 19, ids.shape))
        pred_codes = np.clip(codes.astype(int) + rng.integers(-6, 7, codes.shape), 1, 255).astype(np.uint8)
        preds.append((pred_ids.astype(np.uint8), pred_codes))
        entries[f"predictions/semseg/{i}.png"] = png(pred_ids, "L")
        entries[f"predictions/depth/{i}.png"] = png(pred_codes)
    rc, out, err = grade(capsys, write_zip(tmp_path / "s.zip", entries), "--gt", gt_dir)
    assert rc == 0, err
    result = json.loads(out)
    expected = independent_scores(gt_dir, preds)
    assert 50 < result["miou"] < 100 and 0 < result["si_log_rmse"] < 50  # both terms of the grader matter
    for key in ("miou", "si_log_rmse", "grader"):
        assert result[key] == pytest.approx(expected[key], abs=1e-6), key
    assert result["total"] == pytest.approx(expected["miou"] - expected["si_log_rmse"], abs=1e-6)
    assert list(result["iou_per_class"].values()) == pytest.approx(list(expected["iou"]), abs=1e-6)


# --- rejections: each writes one bad archive and expects exit 1 with a one-line message naming the entry ---


def expect_rejection(capsys, submission: Path, gt_dir: Path, *fragments: str, extra: tuple[str, ...] = ()) -> None:
    rc, out, err = grade(capsys, submission, "--gt", gt_dir, *extra)
    assert rc == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mtl grade: error: "), err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


def test_rejects_a_file_that_is_not_a_zip(tmp_path, gt_dir, capsys):
    (tmp_path / "s.zip").write_text("hello")
    expect_rejection(capsys, tmp_path / "s.zip", gt_dir, "s.zip: not a readable zip archive")
    expect_rejection(capsys, tmp_path / "absent.zip", gt_dir, "absent.zip: no such file")


def test_rejects_a_truncated_zip(tmp_path, gt_dir, capsys):
    data = write_zip(tmp_path / "s.zip", perfect_entries(gt_dir)).read_bytes()
    (tmp_path / "s.zip").write_bytes(data[: len(data) // 2])
    expect_rejection(capsys, tmp_path / "s.zip", gt_dir, "not a readable zip archive")


def test_rejects_corrupt_entry_data(tmp_path, gt_dir, capsys):
    entries = perfect_entries(gt_dir)
    with zipfile.ZipFile(tmp_path / "s.zip", "w", compression=zipfile.ZIP_STORED) as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    data = bytearray((tmp_path / "s.zip").read_bytes())
    target = data.index(entries["predictions/semseg/0.png"])
    data[target + 40] ^= 0xFF  # flip a stored byte: the CRC no longer matches
    (tmp_path / "s.zip").write_bytes(bytes(data))
    expect_rejection(capsys, tmp_path / "s.zip", gt_dir, "'predictions/semseg/0.png' is corrupt or unreadable", "CRC")


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("../evil.png", "'..' in its path"),
        ("predictions/../../evil.png", "'..' in its path"),
        ("/etc/evil.png", "absolute path"),
        ("C:/evil.png", "absolute path"),
        ("..\\evil.png", "backslash in its name"),
        ("predictions\\semseg\\0.png", "backslash in its name"),
    ],
)
def test_rejects_entries_escaping_the_archive(tmp_path, gt_dir, capsys, name, reason):
    submission = write_zip(tmp_path / "s.zip", {**perfect_entries(gt_dir), name: b"x"})
    expect_rejection(capsys, submission, gt_dir, f"entry {name!r} escapes the archive ({reason})")


def test_rejects_a_nul_byte_in_a_name(tmp_path, gt_dir, capsys):
    submission = write_zip(tmp_path / "s.zip", {**perfect_entries(gt_dir), "notes/aQQb.txt": b"x"})
    submission.write_bytes(submission.read_bytes().replace(b"aQQb", b"a\x00Qb"))
    expect_rejection(capsys, submission, gt_dir, "escapes the archive (NUL byte in its name)")


def test_rejects_symlink_entries(tmp_path, gt_dir, capsys):
    with zipfile.ZipFile(tmp_path / "s.zip", "w") as zf:
        for name, data in perfect_entries(gt_dir).items():
            zf.writestr(name, data)
        link = zipfile.ZipInfo("predictions/link")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    expect_rejection(capsys, tmp_path / "s.zip", gt_dir, "entry 'predictions/link' is a symbolic link")


def test_rejects_duplicate_entries(tmp_path, gt_dir, capsys):
    entries = perfect_entries(gt_dir)
    with warnings.catch_warnings(), zipfile.ZipFile(tmp_path / "s.zip", "w") as zf:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate we write on purpose
        for name, data in entries.items():
            zf.writestr(name, data)
        zf.writestr("predictions/depth/1.png", entries["predictions/depth/1.png"])
    expect_rejection(capsys, tmp_path / "s.zip", gt_dir, "entry 'predictions/depth/1.png' appears more than once")


def test_rejects_encrypted_entries(tmp_path, gt_dir, capsys):
    submission = write_zip(tmp_path / "s.zip", {**perfect_entries(gt_dir), "metrics.csv": b"a,b\n"})
    data = bytearray(submission.read_bytes())
    central = data.rindex(b"PK\x01\x02")  # the last central-directory record: metrics.csv
    data[central + 8] |= 0x1  # general-purpose flag bit 0: encrypted
    submission.write_bytes(bytes(data))
    expect_rejection(capsys, submission, gt_dir, "entry 'metrics.csv' is encrypted")


def test_rejects_a_total_size_over_the_limit(tmp_path, gt_dir, capsys):
    entries = {**perfect_entries(gt_dir), "checkpoints/last.ckpt": bytes(3 * 2**20)}  # 3 MiB of zeros, tiny zipped
    submission = write_zip(tmp_path / "s.zip", entries)
    assert submission.stat().st_size < 2**20
    limit = ("--max-total-gib", "0.001")
    expect_rejection(capsys, submission, gt_dir, "bytes uncompressed, over the limit of 1073741", extra=limit)
    rc, _, _ = grade(capsys, submission, "--gt", gt_dir)  # the default 2 GiB accepts it, and ignores the checkpoint
    assert rc == 0


def test_rejects_a_single_entry_over_the_limit(tmp_path, gt_dir, capsys):
    entries = {**perfect_entries(gt_dir), "predictions/semseg/0.png": bytes(2 * 2**20)}
    submission = write_zip(tmp_path / "s.zip", entries)
    expect_rejection(
        capsys, submission, gt_dir, "entry 'predictions/semseg/0.png' declares 2097152 bytes, over the per-entry limit",
        extra=("--max-entry-mib", "1"),
    )


def test_rejects_a_zip_bomb_that_under_declares_its_size(tmp_path, gt_dir, capsys):
    name = b"predictions/semseg/0.png"
    submission = write_zip(tmp_path / "s.zip", {**perfect_entries(gt_dir), name.decode(): bytes(20 * 2**20)})
    data = bytearray(submission.read_bytes())
    # Claim 1000 bytes uncompressed in both the local header and the central-directory record of that entry.
    for signature, size_at, name_at in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        pos = data.find(signature)
        while pos >= 0:
            if data[pos + name_at : pos + name_at + len(name)] == name:
                data[pos + size_at : pos + size_at + 4] = struct.pack("<I", 1000)
            pos = data.find(signature, pos + 4)
    submission.write_bytes(bytes(data))
    with zipfile.ZipFile(submission) as zf:
        assert zf.getinfo(name.decode()).file_size == 1000
    expect_rejection(capsys, submission, gt_dir, "'predictions/semseg/0.png' is corrupt or unreadable", "CRC")


def test_read_limited_checks_the_actual_bytes():
    assert read_limited(io.BytesIO(b"x" * 10), 10, "entry") == b"x" * 10
    with pytest.raises(SubmissionError, match="entry decompresses to more than its declared 10 bytes"):
        read_limited(io.BytesIO(b"x" * 11), 10, "entry")


def test_rejects_missing_predictions(tmp_path, gt_dir, capsys):
    entries = perfect_entries(gt_dir)
    del entries["predictions/depth/2.png"]
    expect_rejection(capsys, write_zip(tmp_path / "s.zip", entries), gt_dir, "missing entry 'predictions/depth/2.png'")
    del entries["predictions/semseg/1.png"]
    expect_rejection(
        capsys, write_zip(tmp_path / "t.zip", entries), gt_dir, "missing entry 'predictions/semseg/1.png' and 1 more"
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("predictions/semseg/7.png", "entry 'predictions/semseg/7.png' has no ground truth (no index 7 in"),
        ("predictions/depth/01.png", "unexpected entry 'predictions/depth/01.png'"),
        ("predictions/notes.txt", "unexpected entry 'predictions/notes.txt'"),
        ("predictions/semseg/0.jpg", "unexpected entry 'predictions/semseg/0.jpg'"),
        ("predictions/depth/extra/1.png", "unexpected entry 'predictions/depth/extra/1.png'"),
        ("predictions/no task/0.png", "unexpected entry 'predictions/no task/0.png'"),
    ],
)
def test_rejects_extra_prediction_files(tmp_path, gt_dir, capsys, name, message):
    submission = write_zip(tmp_path / "s.zip", {**perfect_entries(gt_dir), name: png(np.zeros((H, W)))})
    expect_rejection(capsys, submission, gt_dir, message)


def test_other_tasks_predictions_are_packed_but_never_read(tmp_path, gt_dir, capsys):
    """A submission holds every prediction file a run writes (normals, a Cityscapes-layout run's depth .npy):
    the grader scores semseg and depth as without them and never decodes the others (garbage here, and larger
    than the per-entry limit of what it reads); they count towards the archive's total size limit."""
    others = {
        "predictions/normals/0.png": b"not a png",
        "predictions/toy_edges/0_edges.npy": pickle.dumps(object()),
        "predictions/depth_metres/sub/0.npy": bytes(100_000),
    }
    rc, out, err = grade(capsys, write_zip(tmp_path / "plain.zip", perfect_entries(gt_dir)), "--gt", gt_dir)
    assert rc == 0, err
    packed = write_zip(tmp_path / "packed.zip", {**perfect_entries(gt_dir), **others})
    rc, packed_out, err = grade(capsys, packed, "--gt", gt_dir, "--max-entry-mib", "0.05")
    assert rc == 0, err
    assert json.loads(packed_out) == json.loads(out)
    total = sum(len(data) for data in {**perfect_entries(gt_dir), **others}.values())
    rc, _, err = grade(capsys, packed, "--gt", gt_dir, "--max-total-gib", str((total - 1) / 2**30))
    assert rc == 1 and f"entries declare {total} bytes uncompressed, over the limit" in err


def replace_entry(tmp_path: Path, gt_dir: Path, name: str, data: bytes) -> Path:
    return write_zip(tmp_path / "s.zip", {**perfect_entries(gt_dir), name: data})


def test_rejects_wrong_size(tmp_path, gt_dir, capsys):
    submission = replace_entry(tmp_path, gt_dir, "predictions/depth/1.png", png(np.ones((H, W // 2))))
    expect_rejection(
        capsys, submission, gt_dir, "entry 'predictions/depth/1.png' has size 32x32, the ground truth is 64x32"
    )


@pytest.mark.parametrize(
    ("name", "mode", "message"),
    [
        ("predictions/semseg/0.png", "RGB", "has mode 'RGB', expected P or L"),
        ("predictions/semseg/0.png", "I;16", "has mode 'I;16', expected P or L"),
        ("predictions/depth/0.png", "P", "has mode 'P', expected L"),
        ("predictions/depth/0.png", "RGBA", "has mode 'RGBA', expected L"),
    ],
)
def test_rejects_wrong_mode(tmp_path, gt_dir, capsys, name, mode, message):
    submission = replace_entry(tmp_path, gt_dir, name, png(np.ones((H, W)), mode))
    expect_rejection(capsys, submission, gt_dir, f"entry {name!r} {message}")


@pytest.mark.parametrize("bad_id", [19, 255])
def test_rejects_semseg_values_out_of_range(tmp_path, gt_dir, capsys, bad_id):
    ids = np.zeros((H, W))
    ids[3, 5] = bad_id
    submission = replace_entry(tmp_path, gt_dir, "predictions/semseg/2.png", png(ids, "P"))
    expect_rejection(capsys, submission, gt_dir, f"entry 'predictions/semseg/2.png' holds class ids [{bad_id}]")


def test_rejects_depth_code_zero(tmp_path, gt_dir, capsys):
    codes = np.full((H, W), 100)
    codes[0, :3] = 0
    submission = replace_entry(tmp_path, gt_dir, "predictions/depth/0.png", png(codes))
    expect_rejection(capsys, submission, gt_dir, "entry 'predictions/depth/0.png' has 3 pixels with depth code 0")


def test_rejects_undecodable_pngs(tmp_path, gt_dir, capsys):
    name = "predictions/semseg/1.png"
    truncated = png(np.random.default_rng(0).integers(0, 19, (H, W)))[:-200]
    jpeg = io.BytesIO()
    Image.fromarray(np.zeros((H, W), np.uint8)).save(jpeg, format="JPEG")
    for data, message in (
        (b"\x89PNG garbage", "is not a decodable PNG"),
        (truncated, "is not a decodable PNG"),
        (jpeg.getvalue(), "is a JPEG image, expected PNG"),
    ):
        expect_rejection(capsys, replace_entry(tmp_path, gt_dir, name, data), gt_dir, f"entry {name!r} {message}")


def test_reports_a_missing_ground_truth_folder(tmp_path, capsys):
    submission = write_zip(tmp_path / "s.zip", {})
    expect_rejection(capsys, submission, tmp_path / "nogt", "ground-truth folder not found")


def test_submission_packs_every_prediction_file_a_layout_writes(tmp_path):
    """A Cityscapes-layout run writes labelId PNGs and depth .npy files: both are packed, as is any other task's."""
    from mtl.grading.submission import pack_submission

    run = tmp_path / "run"
    written = {
        "predictions/semseg/aachen_000000_000019_labelIds.png": png(np.zeros((H, W))),
        "predictions/depth/aachen_000000_000019_depth.npy": b"\x93NUMPY depth",
        "predictions/normals/sub/0.png": png(np.ones((H, W))),
        "checkpoints/best.ckpt": b"weights",
        "metrics.csv": b"epoch\n0\n",
    }
    for name, data in written.items():
        (run / name).parent.mkdir(parents=True, exist_ok=True)
        (run / name).write_bytes(data)
    (run / "checkpoints" / "last.ckpt").write_bytes(b"resumable, not submitted")
    with zipfile.ZipFile(pack_submission(run)) as zf:
        assert sorted(zf.namelist()) == sorted(written)
        assert all(zf.read(name) == data for name, data in written.items())
