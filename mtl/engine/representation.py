"""The shared representation of a batch, captured for gradient methods that combine per-task gradients of the
features every task reads (MGDA-UB and the other "on the representation" variants) instead of the parameters.

Hooked where the shared part of a model ends: the input of the joint model's prediction head, or the output of
the branched models' shared encoder. Each captured tensor is passed on as a new node (``view_as``), so that its
gradient is exactly what its readers send back: a cut of the graph.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from torch import Tensor, nn


class RepresentationCapture:
    def __init__(self, model: nn.Module, shared: Sequence[nn.Parameter]) -> None:
        self.captured: list[Tensor] | None = None
        shared_ids = {id(p) for p in shared}
        head = getattr(getattr(model, "decoder", None), "head", None)
        encoder = getattr(model, "encoder", None)
        all_but_head = {id(p) for p in model.parameters()} - ({id(p) for p in head.parameters()} if head is not None else set())
        if isinstance(head, nn.Module) and shared_ids and shared_ids == all_but_head:
            head.register_forward_pre_hook(lambda module, args: self.cut(args))
        elif isinstance(encoder, nn.Module) and shared_ids and shared_ids == {id(p) for p in encoder.parameters()}:
            encoder.register_forward_hook(lambda module, args, output: self.cut(output))
        else:
            raise ValueError(
                f"--weighting_on representation: model {type(model).__name__} has no single shared representation "
                "(no prediction head after all shared layers, nor a shared encoder); use --weighting_on parameters"
            )

    def cut(self, value: Any) -> Any:
        if self.captured is None:
            return None  # outside a training step: leave the forward pass alone
        if isinstance(value, Tensor):
            if not value.requires_grad:
                return value
            value = value.view_as(value)
            self.captured.append(value)
            return value
        if isinstance(value, dict):
            return {k: self.cut(v) for k, v in value.items()}
        if isinstance(value, (tuple, list)):
            return type(value)(self.cut(v) for v in value)
        return value

    @contextlib.contextmanager
    def capturing(self) -> Iterator[list[Tensor]]:
        """The representation tensors of the forward pass run inside the block."""
        captured: list[Tensor] = []
        self.captured = captured
        try:
            yield captured
        finally:
            self.captured = None
