"""Parameter and multiply-accumulate counts of a model and of its named parts."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def _exclusive(parts: Mapping[str, nn.Module], totals: Mapping[str, float]) -> dict[str, float]:
    """Each part's total minus the parts directly nested in it, so that the parts add up."""
    inside = {name: {other for other, m in parts.items() if other != name and any(m is sub for sub in module.modules())} for name, module in parts.items()}
    own = {}
    for name, nested in inside.items():
        direct = [n for n in nested if not any(n in inside[mid] for mid in nested)]
        own[name] = totals[name] - sum(totals[n] for n in direct)
    return own


def measure(model: nn.Module, height: int, width: int) -> dict:
    """Count parameters and GMACs (FLOPs / 2, as counted by torch's FlopCounterMode: convolutions and
    matrix products) for one image of ``height × width``, in total and per part of ``model.parts()``.

    Parts nested in other parts are counted apart; whatever no part covers is reported as "other".
    """
    parts = dict(model.parts()) if hasattr(model, "parts") else {}
    names = {id(module): name for name, module in model.named_modules()}
    was_training = model.training
    model.eval()
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model(torch.zeros(1, 3, height, width))
    model.train(was_training)
    counts = counter.get_flop_counts()
    root = type(model).__name__

    def macs(module: nn.Module) -> float:
        name = names[id(module)]
        return sum(counts.get(f"{root}.{name}" if name else root, {}).values()) / 2

    def params(module: nn.Module) -> float:
        return sum(p.numel() for p in module.parameters())

    total_params, total_macs = params(model), counter.get_total_flops() / 2
    own_params = _exclusive(parts, {name: params(m) for name, m in parts.items()})
    own_macs = _exclusive(parts, {name: macs(m) for name, m in parts.items()})
    rows = {name: {"params": int(own_params[name]), "gmac": own_macs[name] / 1e9} for name in parts}
    other_params, other_macs = total_params - sum(own_params.values()), total_macs - sum(own_macs.values())
    if other_params or other_macs:
        rows["other"] = {"params": int(other_params), "gmac": other_macs / 1e9}
    return {"params": int(total_params), "gmac": total_macs / 1e9, "parts": rows}
