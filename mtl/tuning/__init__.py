"""Hyper-parameter search over `mtl train` flags with Optuna: the engine behind `mtl tune`."""

from mtl.tuning.pruning import GraderPruning
from mtl.tuning.space import SearchSpace, SpaceError, load_space, parse_space
from mtl.tuning.study import TuneError, default_space_path, tune, write_best

__all__ = [
    "GraderPruning",
    "SearchSpace",
    "SpaceError",
    "TuneError",
    "default_space_path",
    "load_space",
    "parse_space",
    "tune",
    "write_best",
]
