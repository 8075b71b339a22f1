"""Argument types shared by the commands and the plug-ins' own flags.

Booleans use the course's spelling (yes/true/t/y/1, no/false/f/n/0). Every numeric type refuses
non-finite values: `--optimizer_lr inf` must fail at the command line, not as NaN weights an hour later.
"""

from __future__ import annotations

import argparse
import difflib
import math
from typing import NoReturn


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


def bool_flag(group: argparse._ActionsContainer, name: str, default: bool, help: str) -> None:
    """``--name`` alone means true; ``--name no`` false."""
    group.add_argument(name, type=str2bool, nargs="?", const=True, default=default, metavar="BOOL", help=help)


def bool_list(value: str) -> tuple[bool, ...]:
    """'F,F,T' → (False, False, True)."""
    return tuple(str2bool(v) for v in value.strip("[]() ").split(","))


def int_list(value: str) -> tuple[int, ...]:
    """'3,6,9' or '[3,6,9]' → (3, 6, 9)."""
    try:
        return tuple(int(v) for v in value.strip("[]() ").split(",") if v.strip())
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {value!r}") from exc


def _finite(value: str) -> float:
    try:
        number = float(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from exc
    if not math.isfinite(number):
        raise argparse.ArgumentTypeError(f"expected a finite number, got {value}")
    return number


def float_list(value: str) -> tuple[float, ...]:
    """'0.75,1,1.25' → (0.75, 1.0, 1.25)."""
    try:
        return tuple(_finite(v) for v in value.strip("[]() ").split(",") if v.strip())
    except argparse.ArgumentTypeError as exc:
        raise argparse.ArgumentTypeError(f"expected comma-separated finite numbers, got {value!r}") from exc


def _integer(value: str) -> int:
    try:
        return int(value)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from exc


def positive_int(value: str) -> int:
    number = _integer(value)
    if number <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {value}")
    return number


def non_negative_int(value: str) -> int:
    number = _integer(value)
    if number < 0:
        raise argparse.ArgumentTypeError(f"expected an integer ≥ 0, got {value}")
    return number


def positive_float(value: str) -> float:
    number = _finite(value)
    if not number > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {value}")
    return number


def non_negative_float(value: str) -> float:
    number = _finite(value)
    if not number >= 0:
        raise argparse.ArgumentTypeError(f"expected a number ≥ 0, got {value}")
    return number


def name_list(value: str) -> tuple[str, ...]:
    """'semseg,depth' → ("semseg", "depth"), each name once."""
    names = tuple(v.strip() for v in value.split(",") if v.strip())
    if not names or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"expected distinct comma-separated names, got {value!r}")
    return names


class Parser(argparse.ArgumentParser):
    """argparse with the toolkit's manners: no abbreviated flags (``--num_epoch`` is not ``--num_epochs``),
    and an error is one line naming the command, with the closest flag for an unknown one, instead of a
    usage dump that buries the message."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(unrecognized(self, extras))
        return parsed


def unrecognized(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    """'unrecognized arguments: …', with the closest known flag for the first unknown one."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    flags = [s for action in parser._actions for s in action.option_strings]
    unknown = next((e.split("=", 1)[0] for e in extras if e.startswith("-")), None)
    close = difflib.get_close_matches(unknown, flags, n=1, cutoff=0.6) if unknown else []
    return f"{message} (did you mean {close[0]}?)" if close else message
