"""Name → plug-in registries: a task, a dataset layout, a model or a weighting method is one file with a decorator.

A registry fills itself on first use by importing every module of its package, so nothing has to list
the plug-ins, and a plug-in defined elsewhere (a test, a user's script) registers the same way.
Plug-in modules of tasks, datasets and weightings import torch only inside their functions: the command
line is built from their flags, and `mtl --help` must not wait for torch.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

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
