"""`mtl export`: a checkpoint as an ONNX graph (RGB 0..255 in; semseg logits and depth in metres out), checked."""

from __future__ import annotations

import argparse
import sys

from mtl.flags import positive_int, str2bool


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a checkpoint to ONNX and check it against PyTorch",
        description="Write an ONNX graph taking float32 RGB 0..255 (B×3×H×W; batch, height and width dynamic) and "
        "returning semseg_logits (B×19×H×W) and depth_m (B×1×H×W, metres); normalisation and the depth decode "
        "are inside. Then run it with ONNX Runtime (CPU) at the export size and at another size and compare with "
        "PyTorch: exit 1 if for any output max|onnx − torch| > 1e-4 · max(1, max|torch|).",
    )
    parser.add_argument("--checkpoint", required=True, help="a .ckpt written by mtl train")
    parser.add_argument("--out", required=True, help="the .onnx file to write")
    parser.add_argument("--height", type=positive_int, default=256, help="height of the tracing input (default 256)")
    parser.add_argument("--width", type=positive_int, default=512, help="width of the tracing input (default 512)")
    parser.add_argument("--opset", type=positive_int, default=17, help="ONNX opset version (default 17)")
    parser.add_argument(
        "--fixed_size",
        type=str2bool,
        nargs="?",
        const=True,
        default=False,
        metavar="BOOL",
        help="export for exactly --height×--width (batch stays dynamic): for models whose size-dependent parts "
        "ONNX cannot express with a dynamic size, such as --depth_head adabins",
    )
    parser.set_defaults(func=_export)


def _export(args: argparse.Namespace) -> int:
    from mtl.inference.export import ExportError, ExportModel, check_onnx, check_sizes, export_onnx
    from mtl.inference.predictor import load_predictor

    try:
        predictor = load_predictor(args.checkpoint, channels_last=False, precision="32")
    except (FileNotFoundError, ValueError) as exc:
        print(f"mtl export: error: {exc}", file=sys.stderr)
        return 1
    wrapper = ExportModel(predictor).eval()
    metadata = {"model_name": predictor.spec.model, "encoder": predictor.spec.options.encoder.name}
    dynamic = not args.fixed_size
    try:
        path = export_onnx(wrapper, args.out, args.height, args.width, args.opset, metadata, dynamic)
    except ExportError as exc:
        hint = "; try --fixed_size with --height/--width set to the size you will run" if dynamic else ""
        print(f"mtl export: error: {args.checkpoint}: {exc}{hint}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"mtl export: error: cannot write --out {args.out}: {exc}", file=sys.stderr)
        return 1
    size = "dynamic batch, height and width" if dynamic else f"dynamic batch, fixed {args.height}×{args.width}"
    print(f"wrote {path} (opset {args.opset}; {size}; outputs {', '.join(wrapper.output_names)})")
    rows = check_onnx(path, wrapper, check_sizes(args.height, args.width, dynamic))
    print(f"{'input':<18}{'output':<15}{'max |diff|':>12}{'max |torch|':>13}{'tolerance':>11}  ok")
    for row in rows:
        shape = "×".join(map(str, row["input"]))
        print(
            f"{shape:<18}{row['output']:<15}{row['max_abs_diff']:>12.3g}{row['scale']:>13.4g}"
            f"{row['tolerance']:>11.3g}  {'yes' if row['ok'] else 'NO'}"
        )
    if not all(row["ok"] for row in rows):
        message = f"{path} differs from PyTorch beyond the tolerance (file kept for inspection)"
        print(f"mtl export: error: {message}", file=sys.stderr)
        return 1
    return 0
