"""Name → plug-in registries: a task, a dataset layout, a model or a weighting method is one file with a decorator.

A registry fills itself on first use by importing every module of its package, so nothing has to list
the plug-ins, and a plug-in defined elsewhere (a test, a user's script) registers the same way.
Plug-in modules of tasks, datasets and weightings import torch only inside their functions: the command
line is built from their flags, and `mtl --help` must not wait for torch.

Plug-ins from outside the package register by being imported: the modules named by the ``mtl.plugins``
entry-point group of installed distributions, by ``MTL_PLUGINS`` and by ``mtl --plugins`` are imported
before the command line is built (``outside_modules``, ``import_plugins``). A run records the modules that
define the plug-ins it uses (``Registry.module_of``), so that another process can import them again.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import pkgutil
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Generic, TypeVar

from mtl.errors import one_line

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str, package: str) -> None:
        self.kind = kind
        self.package = package
        self._entries: dict[str, T] = {}
        self._loaded = False

    def register(self, name: str) -> Callable[[T], T]:
        """Decorator: ``@REGISTRY.register("name")`` on a class (or factory)."""

        def decorator(obj: T) -> T:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} is registered twice")
            self._entries[name] = obj
            if isinstance(obj, type):
                obj.name = name  # type: ignore[attr-defined]  # a class knows the name it is chosen by
            return obj

        return decorator

    def unregister(self, name: str) -> None:
        del self._entries[name]

    def module_of(self, name: str) -> str:
        """The module that defines plug-in ``name``: importing it registers the plug-in again."""
        return self[name].__module__

    def load(self) -> None:
        """Import every module of the package once (which registers its plug-ins)."""
        if self._loaded:
            return
        self._loaded = True
        package = importlib.import_module(self.package)
        for module in pkgutil.iter_modules(package.__path__):
            importlib.import_module(f"{self.package}.{module.name}")

    def __getitem__(self, name: str) -> T:
        self.load()
        if name not in self._entries:
            raise ValueError(f"unknown {self.kind} {name!r}; known: {', '.join(sorted(self._entries))}")
        return self._entries[name]

    def __contains__(self, name: object) -> bool:
        self.load()
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        self.load()
        return iter(sorted(self._entries))

    def items(self) -> list[tuple[str, T]]:
        self.load()
        return sorted(self._entries.items())

    def choices(self) -> Choices:
        return Choices(self)


class Choices:
    """argparse ``choices`` that read a registry only to check a value given on the command line: formatting
    the help iterates choices, and must not import plug-ins that need torch (the models)."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def __contains__(self, name: object) -> bool:
        return name in self.registry

    def __iter__(self) -> Iterator[str]:
        return iter(self.registry) if self.registry._loaded else iter(())


ENTRY_POINT_GROUP = "mtl.plugins"  # each entry point names a module whose import registers plug-ins
PLUGINS_ENV = "MTL_PLUGINS"  # comma-separated modules, imported like the entry points' modules
MAX_RECORDED_MODULES = 100


class PluginError(ValueError):
    """A plug-in module that cannot be imported; the one-line message names it and where it was named."""


def is_outside(module: str) -> bool:
    """Whether ``module`` is not part of mtl (its plug-ins must be imported before mtl knows them)."""
    return module != "mtl" and not module.startswith("mtl.")


def is_module_name(name: object) -> bool:
    return isinstance(name, str) and bool(name) and all(part.isidentifier() for part in name.split("."))


def module_list(text: str) -> list[str]:
    """'a.b, c' → ["a.b", "c"]."""
    return [name.strip() for name in text.split(",") if name.strip()]


def outside_modules(option: str | None = None) -> list[tuple[str, str]]:
    """(module, where it was named) for every plug-in module asked for: the ``mtl.plugins`` entry points of the
    installed distributions, then ``MTL_PLUGINS``, then ``option`` (``mtl --plugins``)."""
    requested = []
    for entry in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        owner = f" of {entry.dist.name}" if entry.dist is not None else ""
        requested.append((entry.module, f"entry point {entry.name!r}{owner}"))
    requested += [(name, PLUGINS_ENV) for name in module_list(os.environ.get(PLUGINS_ENV, ""))]
    requested += [(name, "--plugins") for name in module_list(option or "")]
    return requested


def import_plugins(requested: Iterable[tuple[str, str]]) -> None:
    """Import each (module, where it was named); PluginError naming the first that fails, with the reason."""
    for name, origin in requested:
        if not is_module_name(name):
            raise PluginError(f"plug-in module {name!r} ({origin}) is not a module name")
        try:
            importlib.import_module(name)
        except Exception as exc:  # anything a plug-in's import raises is that plug-in's failure
            hint = "; install it, or put its folder on PYTHONPATH" if isinstance(exc, ModuleNotFoundError) else ""
            raise PluginError(
                f"plug-in module {name!r} ({origin}) cannot be imported: {type(exc).__name__}: {one_line(exc)}{hint}"
            ) from exc


def import_recorded(modules: object, source: str) -> None:
    """Import the plug-in modules a run or checkpoint recorded (``source`` names it in errors). A record names
    modules only, imported from what is installed, and never one of Python's own (``antigravity`` opens a web
    browser): a file from someone else brings no code and starts nothing."""
    if modules is None:
        return
    if not isinstance(modules, (list, tuple)) or len(modules) > MAX_RECORDED_MODULES:
        raise PluginError(f"{source}: its record of plug-in modules is not a list of at most {MAX_RECORDED_MODULES}")
    for name in modules:
        if is_module_name(name) and name.split(".")[0] in sys.stdlib_module_names:
            raise PluginError(f"{source}: records {name!r} as a plug-in module, a module of Python's standard library")
    import_plugins((name, f"recorded in {source}") for name in modules)


def module_source(module: str) -> tuple[str, bytes] | None:
    """(path in source.zip, source) of an imported plug-in module, under ``plugins/``; None for a module
    without a source file."""
    file = getattr(sys.modules.get(module), "__file__", None)
    if not file or not file.endswith(".py"):
        return None
    package = Path(file).name == "__init__.py"
    return "/".join(["plugins", *module.split(".")]) + ("/__init__.py" if package else ".py"), Path(file).read_bytes()
