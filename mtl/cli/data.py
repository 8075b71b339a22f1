"""`mtl data synth|check|stats`: generate, verify and describe datasets in any registered layout.

`check` and `stats` take ``--dataset NAME`` (default miniscapes) and the layout's own flags (e.g.
``--num_classes`` of cityscapes_npy); the layout finds its own problems and reads its own files.
`synth --layout NAME` writes the generated world in any registered layout that has a writer
(``DatasetLayout.write_generated``), at the layout's own default size.

Flag values that cannot work are refused by argparse (exit 2, ``argument --flag: ...``), before
anything is written: negative counts, ``--workers 0``, a negative seed, images smaller than the
generator's minimum, a ``--out`` that is not a ``.png`` for the histogram. Checks that involve two flags
(all three counts 0, the width:height ratio, a ``--out`` folder that already holds files) are refused
the same way once the flags are parsed.
"""

from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path

from mtl.flags import non_negative_int, positive_int

# Repeated from mtl.data.synth.sample.MIN_SIZE and mtl.data.miniscapes_files.SPLITS so that `mtl --help` imports
# neither the renderer nor torch (tests/test_data_cli.py checks they agree).
MIN_IMAGE_SIDE = 64
SPLITS = ("train", "val", "test")
DEFAULT_SYNTH_LAYOUT = "miniscapes"
DEFAULT_TEST_SAMPLES = 100  # --num-test of a layout with a test split


def image_side(value: str) -> int:
    """An image width or height for the generator: an integer ≥ 64."""
    number = int(value)
    if number < MIN_IMAGE_SIDE:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ {MIN_IMAGE_SIDE} (pixels), got {value}")
    return number


def png_path(value: str) -> str:
    """A path ending in .png: the file written is always a PNG, so another extension would mislabel it."""
    if Path(value).suffix.lower() != ".png" or not Path(value).name[: -len(".png")]:
        raise argparse.ArgumentTypeError(f"expected a path to a .png file, got {value!r}")
    return value


def synth_layouts() -> dict[str, type]:
    """The registered layouts the generator can write (those with ``synth_size``), by name."""
    from mtl.datasets import DATASETS

    return {name: layout for name, layout in DATASETS.items() if layout.synth_size is not None}


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="generate, check and describe datasets")
    commands = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    synth = commands.add_parser(
        "synth",
        help="generate the procedural street-scene dataset",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    layouts = synth_layouts()
    sizes = ", ".join(f"{name} {w}x{h}" for name, (w, h) in ((n, l.synth_size) for n, l in layouts.items()))
    without_test = [name for name, layout in layouts.items() if "test" not in layout.synth_splits]
    # default=SUPPRESS: no "(default: None)" after these two in --help (--out is required anyway)
    synth.add_argument("--out", required=True, default=argparse.SUPPRESS, help="output folder (new or empty)")
    synth.add_argument(
        "--layout", default=DEFAULT_SYNTH_LAYOUT, choices=tuple(layouts), metavar="NAME",
        help=f"dataset layout to write the files in: {', '.join(layouts)} (each as `mtl train --dataset NAME` reads "
        "it; see docs/DATASET.md)",
    )
    synth.add_argument("--num-train", type=non_negative_int, default=1000, help="train samples (≥ 0)")
    synth.add_argument("--num-val", type=non_negative_int, default=100, help="val samples (≥ 0)")
    synth.add_argument(
        "--num-test", type=non_negative_int, default=argparse.SUPPRESS,
        help=f"test samples (≥ 0; default {DEFAULT_TEST_SAMPLES}, and 0 for a layout without a test split: "
        f"{', '.join(without_test) or 'none'})",
    )
    synth.add_argument(
        "--width", type=image_side, default=argparse.SUPPRESS,
        help=f"pixels (≥ {MIN_IMAGE_SIDE}; default: the layout's width x height, {sizes})",
    )
    synth.add_argument(
        "--height", type=image_side, default=argparse.SUPPRESS,
        help=f"pixels (≥ {MIN_IMAGE_SIDE}; width/height in [1, 3]; default: the layout's)",
    )
    synth.add_argument("--seed", type=non_negative_int, default=0, help="≥ 0")
    synth.add_argument(
        "--workers", type=positive_int, default=argparse.SUPPRESS, help="processes, ≥ 1 (default: all cores)"
    )
    synth.set_defaults(func=functools.partial(_synth, parser=synth))

    check = commands.add_parser(
        "check",
        help="load every sample and report each bad file",
        description="Load every file of the dataset and print one line per problem, starting with its path, "
        "then one line per warning ('<path>: warning: ...', e.g. a depth map without a valid pixel), then a "
        "summary. Exit code 1 if there is a problem; warnings alone leave it 0.",
    )
    check.add_argument("--root", required=True, help="dataset root (e.g. holding train/ val/ test/)")
    _add_dataset_arguments(check)
    check.set_defaults(func=_check)

    stats = commands.add_parser(
        "stats",
        help="depth statistics and class frequencies of a split",
        description="Statistics of a split's ground truth: class frequencies, depth mean/std/min/max (in the "
        "dataset's unit) with a histogram PNG, the share of valid normals.",
    )
    stats.add_argument("--root", required=True, help="dataset root")
    _add_dataset_arguments(stats)
    stats.add_argument("--split", default="train", choices=SPLITS, help="split to describe")
    stats.add_argument(
        "--out",
        "--histogram",  # the flag's former name
        dest="out",
        type=png_path,
        default=None,
        help="depth histogram PNG (default: depth_histogram_<split>.png in the current folder)",
    )
    stats.add_argument("--json", default=None, help="also write the statistics as JSON here")
    stats.set_defaults(func=_stats)


def _synth(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    from mtl.data.synth.sample import check_size

    layout = synth_layouts()[args.layout]
    width, height = layout.synth_size
    args.width = getattr(args, "width", width)
    args.height = getattr(args, "height", height)
    args.num_test = getattr(args, "num_test", DEFAULT_TEST_SAMPLES if "test" in layout.synth_splits else 0)
    if args.num_test and "test" not in layout.synth_splits:
        parser.error(
            f"argument --num-test: the {args.layout} layout has only {' and '.join(layout.synth_splits)} splits; "
            "use --num-test 0"
        )
    if args.num_train == args.num_val == args.num_test == 0:
        parser.error("nothing to generate: --num-train, --num-val and --num-test are all 0")
    try:
        check_size(args.width, args.height)
    except ValueError as exc:
        parser.error(f"--width/--height: {exc}")
    out = Path(args.out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        parser.error(f"argument --out: {out} exists and is not an empty folder; choose a new one")
    try:
        layout.generate(
            args.out,
            num_train=args.num_train,
            num_val=args.num_val,
            num_test=args.num_test,
            width=args.width,
            height=args.height,
            seed=args.seed,
            workers=getattr(args, "workers", None),
        )
    except OSError as exc:  # e.g. no permission to create --out, disk full
        print(f"mtl data synth: error: {exc}", file=sys.stderr)
        return 1
    return 0


def _add_dataset_arguments(parser: argparse.ArgumentParser) -> None:
    """--dataset and every layout's own flags (layout modules import no torch, so --help stays quick)."""
    from mtl.datasets import DATASETS

    parser.add_argument(
        "--dataset", default="miniscapes", choices=DATASETS, metavar="NAME",
        help="dataset layout: %(choices)s (default miniscapes)",
    )
    for name, layout in DATASETS.items():
        layout.add_arguments(parser.add_argument_group(f"dataset {name}"))


def _layout(args: argparse.Namespace):
    from mtl.datasets import DATASETS

    args.dataset_root = args.root
    return DATASETS[args.dataset].from_flags(args)


def _check(args: argparse.Namespace) -> int:
    from mtl.data.check import print_result

    return print_result(args.root, _layout(args).find_problems())


def _stats(args: argparse.Namespace) -> int:
    from mtl.data.stats import run_stats

    return run_stats(_layout(args), args.split, histogram=args.out, json_path=args.json)
