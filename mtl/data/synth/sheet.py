"""Contact sheet of generated samples: one row per sample with RGB, coloured semseg, coloured depth and
surface normals.

    .venv/bin/python -m mtl.data.synth.sheet --out sheet.png [--seed 0 --split val --indices 0,1,2,3]

Depth is shown as inverse depth (near = bright) through matplotlib's magma map; invalid depth (sky,
bonnet, beyond 300 m) is black, like the ignore label in the semseg column. Normals are shown as
their PNG codes, (n + 1)/2 in camera coordinates (x right, y down, z forward): the road is purple
(up, −y), facades on the left pink (+x), on the right teal (−x), surfaces facing the camera olive
(−z); black where invalid.
"""

from __future__ import annotations

import argparse

import numpy as np
from matplotlib import colormaps
from PIL import Image

from mtl.flags import int_list
from mtl.data.classes import colorize
from mtl.data.formats import ZMIN, encode_normals
from mtl.data.synth.sample import render_sample


def depth_picture(depth: np.ndarray) -> np.ndarray:
    valid = np.isfinite(depth)
    closeness = np.where(valid, ZMIN / np.where(valid, depth, 1.0), 0.0) ** 0.5
    picture = (colormaps["magma"](closeness)[..., :3] * 255).astype(np.uint8)
    picture[~valid] = 0
    return picture


def contact_sheet(seed: int, split: str, indices: list[int], width: int, height: int) -> np.ndarray:
    rows = []
    for index in indices:
        s = render_sample(seed, split, index, width, height)
        rows.append(np.concatenate([s.rgb, colorize(s.semseg), depth_picture(s.depth), encode_normals(s.normals)], axis=1))
    return np.concatenate(rows, axis=0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="contact sheet of generated samples")
    parser.add_argument("--out", required=True, help="PNG path")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--split", default="val", choices=("train", "val", "test"))
    parser.add_argument("--indices", type=int_list, default=(0, 1, 2, 3))
    parser.add_argument("--width", type=int, default=512)
    parser.add_argument("--height", type=int, default=256)
    args = parser.parse_args(argv)
    Image.fromarray(contact_sheet(args.seed, args.split, list(args.indices), args.width, args.height)).save(args.out, optimize=True)


if __name__ == "__main__":
    main()
