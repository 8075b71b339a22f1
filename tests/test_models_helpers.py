"""Helpers shared by the model tests (no tests here): parse the real model flags into a cfg."""

from __future__ import annotations

import argparse

from mtl.models import add_model_arguments

BOTH = {"semseg": 19, "depth": 1}


def make_cfg(*flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_model_arguments(parser)
    return parser.parse_args(list(flags))


def num_params(module) -> int:
    return sum(p.numel() for p in module.parameters())
