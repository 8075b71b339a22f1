"""`mtl complexity`: parameters and GMACs of models, in total and per part (encoder, ASPP, decoders, heads)."""

from __future__ import annotations

import argparse
import json

from mtl.flags import name_list, positive_int


def register(subparsers: argparse._SubParsersAction) -> None:
    from mtl.datasets import DATASETS
    from mtl.models import add_model_arguments
    from mtl.tasks import TASKS

    parser = subparsers.add_parser(
        "complexity",
        help="parameters and GMACs of models, per part",
        description="Count parameters and multiply-accumulates (FLOPs/2 from torch's FlopCounterMode) of one "
        "image. Accepts the training flags of the models and tasks (dilations, ASPP rates, variants, heads).",
    )
    add_model_arguments(parser, several_models=True)
    parser.add_argument("--height", type=positive_int, default=256, help="input height (default 256)")
    parser.add_argument("--width", type=positive_int, default=256, help="input width (default 256)")
    parser.add_argument("--dataset", choices=DATASETS, default="miniscapes", metavar="NAME", help="dataset whose classes set the outputs")
    parser.add_argument("--tasks", type=name_list, default=None, help="tasks to predict (default: the dataset's own)")
    for name, task in TASKS.items():
        task.add_arguments(parser.add_argument_group(f"task {name}"))
    parser.add_argument("--json", action="store_true", help="print a JSON list, one object per model")
    parser.set_defaults(func=_run)


def _run(args: argparse.Namespace) -> int:
    import torch

    from mtl.datasets import DATASETS
    from mtl.models import MAIN_MODELS, build_model, model_options
    from mtl.models.complexity import measure
    from mtl.tasks import build_tasks

    info = DATASETS[args.dataset].info
    names = args.tasks or info.default_tasks
    unknown = [t for t in names if t not in info.tasks]
    if unknown:
        raise SystemExit(f"mtl complexity: --tasks: {args.dataset} has no task {unknown[0]!r}")
    try:
        tasks = build_tasks(names, args, info, {})
        options = model_options(args)
    except ValueError as exc:
        raise SystemExit(f"mtl complexity: {exc}") from exc
    outputs = {name: task.output() for name, task in tasks.items()}
    results = []
    for name in args.model_name or MAIN_MODELS:
        torch.manual_seed(0)
        try:
            model = build_model(name, outputs, options)
        except (ValueError, FileNotFoundError) as exc:
            raise SystemExit(f"mtl complexity: {name}: {exc}") from exc
        results.append({"model_name": name, **measure(model, args.height, args.width)})
    if args.json:
        print(json.dumps(results, indent=2))
        return 0
    print(f"input 1×3×{args.height}×{args.width}, tasks {','.join(names)}, encoder {args.model_encoder_name}")
    print(f"{'model / part':<34}{'params':>14}{'GMAC':>10}")
    for result in results:
        print(f"{result['model_name']:<34}{result['params']:>14,}{result['gmac']:>10.2f}")
        for part, row in result["parts"].items():
            print(f"  {part:<32}{row['params']:>14,}{row['gmac']:>10.2f}")
    return 0
