"""Acceptance check of a generated split: which classes occur, and how much depth is valid.

    .venv/bin/python -m mtl.data.synth.audit --root DATA [--split val] [--min-valid 0.8]

Prints, per class, its share of the labelled pixels and the number of images that contain it, then
the share of non-sky pixels with valid depth (in [4, 300] m) and the depth range, and, where the split
has a ``normals`` folder, whether the normals are valid on exactly the pixels with valid depth. Exits 1
when a class never occurs, the valid share is below ``--min-valid`` or a normals mask differs from its
depth mask: the generator promises every class in every split of a few hundred images, valid depth on
most of the scene and a normal for every pixel with depth.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from mtl.data.classes import CLASS_ID, CLASS_NAMES, NUM_CLASSES
from mtl.data.formats import read_depth, read_normals, read_semseg
from mtl.data.miniscapes_files import split_size


def audit(root: str | Path, split: str = "val") -> dict:
    folder = Path(root) / split
    count = split_size(root, split)
    pixels = np.zeros(NUM_CLASSES, dtype=np.int64)
    images = np.zeros(NUM_CLASSES, dtype=np.int64)
    non_sky = valid = 0
    low, high = np.inf, -np.inf
    normals = Path(root) / split / "normals"
    has_normals = normals.is_dir()
    normal_mismatch = 0  # pixels whose normal validity differs from their depth validity
    for i in range(count):
        ids, depth = read_semseg(folder / "semseg" / f"{i}.png"), read_depth(folder / "depth" / f"{i}.png")
        counts = np.bincount(ids.ravel(), minlength=256)[:NUM_CLASSES]
        pixels += counts
        images += counts > 0
        scene = ids < NUM_CLASSES
        scene &= ids != CLASS_ID["sky"]
        ok = scene & np.isfinite(depth)
        non_sky += int(scene.sum())
        valid += int(ok.sum())
        if ok.any():
            low, high = min(low, float(depth[ok].min())), max(high, float(depth[ok].max()))
        if has_normals:
            valid_normal = ~np.isnan(read_normals(normals / f"{i}.png")[..., 0])
            normal_mismatch += int((valid_normal != np.isfinite(depth)).sum())
    return {
        "images": count,
        "class_share": pixels / max(int(pixels.sum()), 1),
        "class_images": images,
        "valid_depth_share": valid / max(non_sky, 1),
        "depth_range": (low, high),
        "normal_mismatch": normal_mismatch if has_normals else None,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="class coverage and depth validity of a generated split")
    parser.add_argument("--root", required=True)
    parser.add_argument("--split", default="val", choices=("train", "val"))
    parser.add_argument("--min-valid", type=float, default=0.8, help="required share of non-sky pixels with valid depth")
    args = parser.parse_args(argv)
    result = audit(args.root, args.split)
    n = result["images"]
    print(f"{args.root} / {args.split}: {n} images")
    print(f"{'class':15s} {'pixels %':>9s} {'images':>8s}")
    for name, share, count in zip(CLASS_NAMES, result["class_share"], result["class_images"]):
        print(f"{name:15s} {100 * share:9.2f} {count:5d}/{n}")
    low, high = result["depth_range"]
    print(f"valid depth on non-sky pixels: {100 * result['valid_depth_share']:.1f} % (range {low:.1f}–{high:.1f} m)")
    missing = [name for name, count in zip(CLASS_NAMES, result["class_images"]) if count == 0]
    if missing:
        print(f"FAIL: classes that never occur: {', '.join(missing)}")
    if result["valid_depth_share"] < args.min_valid:
        print(f"FAIL: valid depth share below {args.min_valid:.2f}")
    mismatch = result["normal_mismatch"]
    if mismatch is None:
        print("normals: no normals folder")
    else:
        print(f"normals: valid exactly where depth is valid{'' if mismatch == 0 else f' except on {mismatch} pixels'}")
        if mismatch:
            print("FAIL: normals and depth disagree on which pixels are valid")
    ok = not missing and result["valid_depth_share"] >= args.min_valid and not mismatch
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
