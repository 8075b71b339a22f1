"""`mtl predict`: semseg and depth for your own images or a dataset split, optionally with test-time augmentation."""

from __future__ import annotations

import argparse
import sys

from mtl.datasets import DATASETS
from mtl.flags import float_list, positive_int, str2bool
from mtl.metrics.protocol import PROTOCOLS

DEFAULT_TTA_SCALES = (0.75, 1.0, 1.25)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "predict",
        help="predict images or a dataset split with a checkpoint",
        description="With --input: for each image (a file, or the .jpg/.jpeg/.png files of a folder; any size; "
        "grayscale/RGBA converted to RGB) write OUT/<stem>_semseg.png (palette trainIds), <stem>_depth.png "
        "(disparity codes as in the dataset), <stem>_depth_color.png and <stem>_overview.png (RGB | semseg "
        "overlay | depth), all at the input's size. With --split: write OUT/semseg/<i>.png and OUT/depth/<i>.png "
        "in the dataset format and, when the split has ground truth, print the metrics as JSON (also saved to "
        "OUT/metrics.json): the dataset's scores under \"scores\", each task's metrics under \"tasks\" by task "
        "name. --format cityscapes writes OUT/semseg/<city>_<seq>_<frame>_labelIds.png (labelIds, for the official "
        "Cityscapes evaluator: CITYSCAPES_RESULTS=OUT/semseg).",
    )
    parser.add_argument("--checkpoint", required=True, help="a .ckpt written by mtl train")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", default=None, help="an image file or a folder of images")
    source.add_argument("--split", choices=["train", "val", "test"], default=None, help="a split of --dataset_root")
    parser.add_argument(
        "--dataset_root", default=None, help="the dataset, in the layout the checkpoint was trained on (with --split)"
    )
    parser.add_argument(
        "--format", default="dataset", choices=("dataset", *DATASETS), metavar="FORMAT",
        help="file format of the predictions: 'dataset' (that of the dataset the model was trained on) or a "
        "layout's, e.g. 'cityscapes' (labelId PNGs named <city>_<seq>_<frame>_labelIds.png that "
        "cityscapesscripts' evalPixelLevelSemanticLabeling scores); with a layout, files go to OUT/<task>/; "
        "choices: %(choices)s",
    )
    parser.add_argument("--out", required=True, help="output folder (created)")
    parser.add_argument("--tta", action="store_true", help="test-time augmentation over --tta_scales and --tta_flip")
    parser.add_argument(
        "--tta_scales", type=float_list, default=None, help=f"input scales for --tta (default {DEFAULT_TTA_SCALES})"
    )
    parser.add_argument("--tta_flip", type=str2bool, default=None, help="add horizontal flips for --tta (default true)")
    parser.add_argument(
        "--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda if available, unless MTL_HARDWARE names a CPU)"
    )
    parser.add_argument("--batch_size", type=positive_int, default=4, help="images per forward pass (default 4)")
    parser.add_argument(
        "--eval_protocol", choices=PROTOCOLS, default=None,
        help="with --split: how the metrics are computed (default: the run's own; docs/PROTOCOLS.md); under mtan "
        "the figures depend on --batch_size, as MTAN's code does on its test batch",
    )
    parser.set_defaults(func=_predict)


def _predict(args: argparse.Namespace) -> int:
    error = _check_flags(args)
    if error:
        print(f"mtl predict: error: {error}", file=sys.stderr)
        return 2

    import json
    from pathlib import Path

    from mtl.data.formats import DataFormatError
    from mtl.datasets import build_dataset
    from mtl.errors import one_line
    from mtl.hardware import default_device
    from mtl.inference.images import list_images
    from mtl.inference.predict import predict_dataset_split, predict_images
    from mtl.inference.predictor import checkpoint_flags, load_predictor
    from mtl.inference.tta import TestTimeAugmentation

    device = args.device or default_device()
    out = Path(args.out)
    try:
        predictor = load_predictor(args.checkpoint, device)
        if args.tta:
            scales = args.tta_scales or DEFAULT_TTA_SCALES
            predictor = TestTimeAugmentation(predictor, scales, True if args.tta_flip is None else args.tta_flip)
        if args.input is not None:
            paths = list_images(args.input)
            count = predict_images(predictor, paths, out, args.batch_size, device, args.format)
            print(f"wrote predictions of {count} image(s) to {out}")
            return 0
        flags = checkpoint_flags(args.checkpoint)
        flags.dataset_root = args.dataset_root
        layout = build_dataset(flags)
        protocol = PROTOCOLS[args.eval_protocol] if args.eval_protocol else predictor.protocol
        result = predict_dataset_split(predictor, layout, args.split, out, args.batch_size, device, args.format, protocol)
    except (OSError, DataFormatError, ValueError) as exc:  # OSError: also unwritable --out
        print(f"mtl predict: error: {one_line(exc)}", file=sys.stderr)
        return 1
    if result is None:
        folders = " and ".join(f"{out}/{name}" for name in predictor.tasks)
        print(f"wrote {args.split} predictions to {folders} (the split has no ground truth)")
        return 0
    text = json.dumps({"protocol": protocol.name, **result}, indent=2, allow_nan=False)
    (out / "metrics.json").write_text(text + "\n", encoding="utf-8")
    print(text)
    return 0


def _check_flags(args: argparse.Namespace) -> str | None:
    """The flag combinations argparse cannot express."""
    if args.split is not None and args.dataset_root is None:
        return "--split needs --dataset_root"
    if args.input is not None and args.dataset_root is not None:
        return "--dataset_root is for --split; --input takes image files"
    if not args.tta and (args.tta_scales is not None or args.tta_flip is not None):
        return "--tta_scales and --tta_flip need --tta"
    if args.tta_scales is not None and (not args.tta_scales or any(not s > 0 for s in args.tta_scales)):
        return f"--tta_scales must be positive numbers, got {','.join(map(str, args.tta_scales))}"
    return None
