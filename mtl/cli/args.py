"""Argument types shared by the commands, with the course's boolean spelling (yes/true/t/y/1, no/false/f/n/0)."""

from __future__ import annotations

import argparse

from mtl.data.classes import TASKS

_TRUE = {"yes", "true", "t", "y", "1"}
_FALSE = {"no", "false", "f", "n", "0"}


def str2bool(value: str | bool) -> bool:
    if isinstance(value, bool):
        return value
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise argparse.ArgumentTypeError(f"expected a boolean (yes/true/t/y/1 or no/false/f/n/0), got {value!r}")


def bool_list(value: str) -> tuple[bool, ...]:
    """'F,F,T' → (False, False, True)."""
    return tuple(str2bool(v) for v in value.strip("[]() ").split(","))


def int_list(value: str) -> tuple[int, ...]:
    """'3,6,9' or '[3,6,9]' → (3, 6, 9)."""
    try:
        return tuple(int(v) for v in value.strip("[]() ").split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from exc


def float_list(value: str) -> tuple[float, ...]:
    """'0.75,1,1.25' → (0.75, 1.0, 1.25)."""
    try:
        return tuple(float(v) for v in value.strip("[]() ").split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated numbers, got {value!r}") from exc


def positive_int(value: str) -> int:
    number = int(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return number


def non_negative_int(value: str) -> int:
    number = int(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got {value}")
    return number


def task_list(value: str) -> tuple[str, ...]:
    """'semseg,depth' → ("semseg", "depth"), in the canonical order; each task at most once."""
    tasks = [t.strip() for t in value.split(",") if t.strip()]
    if not tasks or any(t not in TASKS for t in tasks) or len(set(tasks)) != len(tasks):
        raise argparse.ArgumentTypeError(f"expected distinct tasks among {','.join(TASKS)}, got {value!r}")
    return tuple(t for t in TASKS if t in tasks)


def positive_float(value: str) -> float:
    number = float(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return number


def non_negative_float(value: str) -> float:
    number = float(value)
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 0, got {value}")
    return number
