"""`mtl complexity`: parameters and GMACs of models, in total and per part (encoder, ASPP, decoders, heads)."""

from __future__ import annotations

import argparse
import json

from mtl.cli.args import positive_int, task_list
from mtl.data.classes import TASKS


def register(subparsers: argparse._SubParsersAction) -> None:
    from mtl.models import add_model_arguments

    parser = subparsers.add_parser(
        "complexity",
        help="parameters and GMACs of models, per part",
        description="Count parameters and multiply-accumulates (FLOPs/2 from torch's FlopCounterMode) of one "
        "image. Accepts the training flags of the models (dilations, ASPP rates, variants).",
    )
    add_model_arguments(parser, several_models=True)
    parser.add_argument("--height", type=positive_int, default=256, help="input height (default 256)")
    parser.add_argument("--width", type=positive_int, default=256, help="input width (default 256)")
    parser.add_argument("--tasks", type=task_list, default=TASKS, help="tasks to predict (default semseg,depth)")
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per model")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import torch

    from mtl.data.classes import NUM_CLASSES
    from mtl.models import MAIN_MODELS, build_model
    from mtl.models.complexity import measure

    channels = {"semseg": NUM_CLASSES, "depth": 1}
    outputs_desc = {task: channels[task] for task in args.tasks}
    results = []
    for name in args.model_name or MAIN_MODELS:
        cfg = argparse.Namespace(**{**vars(args), "model_name": name})
        torch.manual_seed(0)
        try:
            model = build_model(cfg, outputs_desc)
        except (ValueError, FileNotFoundError) as exc:
            raise SystemExit(f"mtl complexity: {name}: {exc}") from exc
        results.append({"model_name": name, **measure(model, args.height, args.width)})
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"input 1×3×{args.height}×{args.width}, tasks {','.join(args.tasks)}, encoder {args.model_encoder_name}")
    print(f"{'model / part':<34}{'params':>14}{'GMAC':>10}")
    for result in results:
        print(f"{result['model_name']:<34}{result['params']:>14,}{result['gmac']:>10.2f}")
        for part, row in result["parts"].items():
            print(f"  {part:<32}{row['params']:>14,}{row['gmac']:>10.2f}")
    return 0
