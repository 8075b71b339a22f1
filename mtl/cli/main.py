"""`mtl` entry point: discovers the command modules of mtl.cli and dispatches to them.

A new command is one module in mtl/cli with ``register(subparsers)`` that adds a parser and sets
``func`` (called with the parsed namespace, returning an exit code). A command whose flags layer over a
YAML preset also sets ``parse(argv) -> namespace`` and parses its own tokens, once. Command modules keep
heavy imports (torch, Lightning) inside their functions so that `mtl --help` and argument errors stay quick.

Plug-ins from outside mtl are imported before any command line is built, so that their flags and names are
known to it: the ``mtl.plugins`` entry points, ``MTL_PLUGINS``, ``mtl --plugins MODULES`` and, for `mtl train
--resume RUN`, the modules the run recorded (see ``mtl.plugins``).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from pathlib import Path

import mtl
import mtl.cli
from mtl.flags import Parser, unrecognized
from mtl.hardware import HardwareError, overridden_kind
from mtl.plugins import PLUGINS_ENV, PluginError, import_plugins, import_recorded, outside_modules

PLUGINS_OPTION = "--plugins"


def build_parser() -> Parser:
    parser = Parser(prog="mtl", description=mtl.__doc__)
    parser.add_argument("--version", action="version", version=f"mtl {mtl.__version__}")
    parser.add_argument(
        PLUGINS_OPTION, metavar="MODULE[,MODULE]",
        help="modules to import before the command: plug-ins from outside mtl (tasks, dataset layouts, models, "
        f"weightings); also the environment variable {PLUGINS_ENV} and the entry-point group mtl.plugins "
        "(docs/ARCHITECTURE.md)",
    )
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


def split_plugins_option(argv: list[str]) -> tuple[str | None, list[str]]:
    """(the value of ``--plugins`` given before the command, the arguments without it)."""
    if argv and argv[0] == PLUGINS_OPTION:
        if len(argv) < 2:
            raise PluginError(f"{PLUGINS_OPTION} needs a comma-separated list of modules")
        return argv[1], argv[2:]
    if argv and argv[0].startswith(f"{PLUGINS_OPTION}="):
        return argv[0].split("=", 1)[1], argv[1:]
    return None, argv


def resumed_run(argv: list[str]) -> Path | None:
    """The run directory of `mtl train --resume RUN|CHECKPOINT`, when it exists."""
    if not argv or argv[0] != "train":
        return None
    value = None
    for token, following in zip(argv[1:], [*argv[2:], None]):
        if token == "--":
            break
        if token == "--resume":
            value = following
        elif token.startswith("--resume="):
            value = token.split("=", 1)[1]
    if not value:
        return None
    path = Path(value)
    run = path if path.is_dir() else path.parent.parent
    return run if run.is_dir() else None


def load_plugins(argv: list[str]) -> list[str]:
    """Import the plug-ins from outside mtl (see the module's docstring); returns ``argv`` without --plugins."""
    option, argv = split_plugins_option(argv)
    import_plugins(outside_modules(option))
    run = resumed_run(argv)
    if run is not None:
        from mtl.engine.rundir import PLUGINS_FILE, recorded_plugins

        import_recorded(recorded_plugins(run), str(run / PLUGINS_FILE))
    return argv


def main(argv: list[str] | None = None) -> int:
    try:  # every command that computes reads it; a wrong value is refused before any work
        overridden_kind()
    except HardwareError as exc:
        print(f"mtl: {exc}", file=sys.stderr)
        return 2
    try:
        argv = load_plugins(list(sys.argv[1:] if argv is None else argv))
    except PluginError as exc:
        print(f"mtl: error: {exc}", file=sys.stderr)
        return 2
    parser = build_parser()
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
