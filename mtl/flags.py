"""Argument types shared by the commands and the plug-ins' own flags, and the parser every command uses.

Booleans use the course's spelling (yes/true/t/y/1, no/false/f/n/0). Every numeric type refuses
non-finite values: `--optimizer_lr inf` must fail at the command line, not as NaN weights an hour later.
Every long flag has two spellings, `--num_epochs` and `--num-epochs` (``Parser``; ``flag_key`` for the keys
of presets and recorded runs), so that neither habit fails in any command.
"""

from __future__ import annotations

import argparse
import difflib
import math
import sys
from collections.abc import Mapping, Sequence
from typing import Any, NoReturn


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


def flag_key(name: str) -> str:
    """A long flag without its dashes, in the underscore spelling: ``--num-epochs``, ``num_epochs`` → ``num_epochs``.
    Two flags are one when their keys are equal (every command accepts both spellings)."""
    return name.lstrip("-").replace("-", "_")


def current_names(values: Mapping[str, Any], renamed: Mapping[str, str], source: str) -> dict[str, Any]:
    """Flag values keyed by today's flag names (YAML presets, recorded runs): either spelling becomes the underscore
    one, and a former name (``renamed``: old key → new key) the new one, with a one-line note on stderr naming it.
    ValueError when one flag is set twice under two names."""
    out: dict[str, Any] = {}
    given: dict[str, str] = {}
    for name, value in values.items():
        key = flag_key(str(name))
        if key in renamed:
            print(f"{source}: note: {key} is deprecated; use {renamed[key]}", file=sys.stderr)
            key = renamed[key]
        if key in out:
            raise ValueError(f"sets flag {key!r} twice (as {given[key]!r} and {name!r})")
        out[key], given[key] = value, str(name)
    return out


class Parser(argparse.ArgumentParser):
    """argparse with the toolkit's manners: both spellings of every long flag (``--num-epochs`` is ``--num_epochs``;
    ``--help`` shows the one it was declared with), former names of renamed flags with a one-line note naming the
    new one, no abbreviated flags (``--num_epoch`` is not ``--num_epochs``), and an error is one line naming the
    command, with the closest flag for an unknown one, instead of a usage dump that buries the message."""

    def __init__(self, *args, **kwargs) -> None:
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)
        self.renamed: dict[str, str] = {}  # flag_key of a former name → the flag as declared today
        self._noted: set[str] = set()

    def rename(self, old: str, new: str) -> None:
        """Accept the former flag ``old`` for ``new`` (both as ``--name``)."""
        self.renamed[flag_key(old)] = new

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(self.respell(args), namespace)

    def parse_args(self, args=None, namespace=None):  # type: ignore[override]
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(unrecognized(self, extras))
        return parsed

    def respell(self, args: Sequence[str]) -> list[str]:
        """``args`` with each long flag as this parser declares it. Only flag tokens change: a value given as
        ``--flag=--value`` keeps its text, and nothing after a ``--`` separator changes (what follows it belongs to
        another command, e.g. the `mtl train` flags of `mtl tune`). Unknown flags stay as they are, for the error."""
        declared = {flag_key(s): s for action in self._actions for s in action.option_strings if s.startswith("--")}
        out = list(args)
        for i, token in enumerate(out):
            if token == "--":
                break
            if not token.startswith("--"):
                continue
            flag, equals, value = token.partition("=")
            key = flag_key(flag)
            if " " in flag:  # argparse reads such a token as a value
                continue
            if key in declared:
                out[i] = declared[key] + equals + value
            elif key in self.renamed:
                new = self.renamed[key]
                if key not in self._noted:
                    self._noted.add(key)
                    print(f"{self.prog}: note: {flag} is deprecated; use {new}", file=sys.stderr)
                out[i] = new + equals + value
        return out


def unrecognized(parser: argparse.ArgumentParser, extras: list[str]) -> str:
    """'unrecognized arguments: …', with the closest known flag for the first unknown one (in either spelling)."""
    message = f"unrecognized arguments: {' '.join(extras)}"
    flags = {flag_key(s): s for action in parser._actions for s in action.option_strings}
    unknown = next((e.split("=", 1)[0] for e in extras if e.startswith("-")), None)
    close = difflib.get_close_matches(flag_key(unknown), list(flags), n=1, cutoff=0.6) if unknown else []
    return f"{message} (did you mean {flags[close[0]]}?)" if close else message
