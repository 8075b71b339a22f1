"""Helpers shared by the model tests (no tests here): parse the real model and task flags, build a model."""

from __future__ import annotations

import argparse

from mtl.datasets import DATASETS
from mtl.models import TaskOutput, add_model_arguments, build_model, model_options
from mtl.tasks import TASKS

BOTH = {"semseg": 19, "depth": 1}
INFO = DATASETS["miniscapes"].info


def make_cfg(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    for name, task in TASKS.items():
        task.add_arguments(parser.add_argument_group(name))
    return parser.parse_args(list(flags))


def outputs(cfg: argparse.Namespace, desc: dict[str, int]) -> dict[str, TaskOutput]:
    """TaskOutputs for {task: channels}; depth from the depth task when the flags ask for a dedicated head."""
    out = {task: TaskOutput(channels) for task, channels in desc.items()}
    if "depth" in desc and cfg.depth_head != "plain":
        out["depth"] = TASKS["depth"].from_flags(cfg, INFO, {}).output()
    return out


def build(cfg: argparse.Namespace, desc: dict[str, int]):
    return build_model(cfg.model_name, outputs(cfg, desc), model_options(cfg))


def num_params(module) -> int:
    return sum(p.numel() for p in module.parameters())
