"""`mtl` entry point: discovers the command modules of mtl.cli and dispatches to them.

A new command is one module in mtl/cli with ``register(subparsers)`` that adds a parser and sets
``func`` (called with the parsed namespace, returning an exit code). A command whose flags layer over a
YAML preset also sets ``parse(argv) -> namespace`` and parses its own tokens, once. Command modules keep
heavy imports (torch, Lightning) inside their functions so that `mtl --help` and argument errors stay quick.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import mtl
import mtl.cli
from mtl.flags import Parser, unrecognized
from mtl.hardware import HardwareError, overridden_kind


def build_parser() -> Parser:
    parser = Parser(prog="mtl", description=mtl.__doc__)
    parser.add_argument("--version", action="version", version=f"mtl {mtl.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    for info in sorted(pkgutil.iter_modules(mtl.cli.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"mtl.cli.{info.name}")
        if hasattr(module, "register"):
            module.register(subparsers)
    return parser


def _subparser(parser: argparse.ArgumentParser, name: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices.get(name)
    return None


def main(argv: list[str] | None = None) -> int:
    try:  # every command that computes reads it; a wrong value is refused before any work
        overridden_kind()
    except HardwareError as exc:
        print(f"mtl: {exc}", file=sys.stderr)
        return 2
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    command = _subparser(parser, argv[0]) if argv and not argv[0].startswith("-") else None
    parse = command.get_default("parse") if command is not None else None
    if parse is not None:  # the namespace holds flags only: it is recorded in the run directory
        return int(command.get_default("func")(parse(argv[1:])) or 0)
    args, extras = parser.parse_known_args(argv)
    if extras:
        (command or parser).error(unrecognized(command or parser, extras))
    args.command_argv = argv[1:]
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
