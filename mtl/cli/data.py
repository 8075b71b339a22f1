"""`mtl data synth|check|stats`: generate, verify and describe datasets in the MiniScapes layout."""

from __future__ import annotations

import argparse

from mtl.cli.args import positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("data", help="generate, check and describe datasets")
    commands = parser.add_subparsers(dest="data_command", metavar="DATA_COMMAND", required=True)

    synth = commands.add_parser(
        "synth",
        help="generate the procedural street-scene dataset",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    synth.add_argument("--out", required=True, help="output folder (created)")
    synth.add_argument("--num-train", type=int, default=1000)
    synth.add_argument("--num-val", type=int, default=100)
    synth.add_argument("--num-test", type=int, default=100)
    synth.add_argument("--width", type=positive_int, default=512)
    synth.add_argument("--height", type=positive_int, default=256)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--workers", type=positive_int, default=None, help="processes (default: all cores)")
    synth.set_defaults(func=_synth)

    check = commands.add_parser("check", help="load every sample and report each bad file")
    check.add_argument("--root", required=True, help="dataset root holding train/ val/ test/")
    check.set_defaults(func=_check)

    stats = commands.add_parser("stats", help="depth statistics and class frequencies of a split")
    stats.add_argument("--root", required=True, help="dataset root")
    stats.add_argument("--split", default="train")
    stats.add_argument("--histogram", default=None, help="PNG path (default <root>/depth_histogram_<split>.png)")
    stats.add_argument("--json", default=None, help="also write the statistics as JSON here")
    stats.set_defaults(func=_stats)


def _synth(args: argparse.Namespace) -> int:
    from mtl.data.synth import generate_dataset

    generate_dataset(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        num_test=args.num_test,
        width=args.width,
        height=args.height,
        seed=args.seed,
        workers=args.workers,
    )
    return 0


def _check(args: argparse.Namespace) -> int:
    from mtl.data.check import run_check

    return run_check(args.root)


def _stats(args: argparse.Namespace) -> int:
    from mtl.data.stats import run_stats

    return run_stats(args.root, args.split, histogram=args.histogram, json_path=args.json)
