"""`mtl` entry point: discovers the command modules of mtl.cli and dispatches to them.

A new command is one module in mtl/cli with ``register(subparsers)`` that adds a parser and sets
``func`` (called with the parsed namespace, returning an exit code). Command modules keep heavy
imports (torch, Lightning) inside their functions so that `mtl --help` stays quick.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

import mtl
import mtl.cli


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mtl", description=mtl.__doc__)
    parser.add_argument("--version", action="version", version=f"mtl {mtl.__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(mtl.cli.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"mtl.cli.{info.name}")
        if hasattr(module, "register"):
            module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parser.parse_args(argv)
    # Commands with layered configuration (a YAML preset under the flags) re-parse their own tokens.
    args.command_argv = argv[argv.index(args.command) + 1 :] if args.command in argv else []
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
