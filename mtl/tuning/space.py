"""The search space of `mtl tune`: a YAML mapping of `mtl train` flag → how to sample it.

Each value is checked against the train parser itself (the flag exists, its type and choices accept
the range ends and every choice), so a bad space fails before the first trial instead of inside one.

Spec forms (one per flag):
  {type: float, low: L, high: H, log: bool, step: S}   # log and step exclude each other
  {type: int, low: L, high: H, log: bool, step: S}
  {type: categorical, choices: [...]}                 # a list choice (e.g. aspp rates) becomes "3,6,9"
  {complement_of: OTHER}                              # 1 − OTHER's value (OTHER: a float in the space)
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import optuna
import yaml

from mtl.config import build_parser
from mtl.flags import current_names, flag_key
from mtl.weighting import renamed_flags

# Flags the tuner sets itself, or that would make a trial something other than one single-process run.
RESERVED_FLAGS = frozenset(
    {"help", "config", "log_dir", "name", "resume", "dataset_root", "devices", "num_nodes", "strategy"}
)
SPEC_KEYS = {
    "float": {"type", "low", "high", "log", "step"},
    "int": {"type", "low", "high", "log", "step"},
    "categorical": {"type", "choices"},
    "complement": {"complement_of"},
}
# Optuna stores categorical choices of these types only.
CHOICE_TYPES = (bool, int, float, str)


class SpaceError(ValueError):
    """A search-space file that cannot be used; the message names the file and the key."""


@dataclass(frozen=True)
class Param:
    flag: str
    kind: str  # float | int | categorical | complement
    low: float | int | None = None
    high: float | int | None = None
    log: bool = False
    step: float | int | None = None
    choices: tuple[Any, ...] = ()
    complement_of: str | None = None

    def suggest(self, trial: optuna.Trial) -> Any:
        if self.kind == "float":
            return trial.suggest_float(self.flag, self.low, self.high, log=self.log, step=self.step)
        if self.kind == "int":
            return trial.suggest_int(self.flag, self.low, self.high, log=self.log, step=self.step or 1)
        return trial.suggest_categorical(self.flag, list(self.choices))

    def as_dict(self) -> dict[str, Any]:
        if self.kind == "complement":
            return {"complement_of": self.complement_of}
        if self.kind == "categorical":
            return {"type": "categorical", "choices": list(self.choices)}
        spec = {"type": self.kind, "low": self.low, "high": self.high, "log": self.log}
        return spec if self.step is None else {**spec, "step": self.step}


class SearchSpace:
    def __init__(self, params: list[Param], source: str) -> None:
        self.params = params
        self.source = source

    def sample(self, trial: optuna.Trial) -> dict[str, Any]:
        """Every flag's value for a trial: the sampled ones, then the complements derived from them."""
        return self.complete({p.flag: p.suggest(trial) for p in self.params if p.kind != "complement"})

    def complete(self, sampled: dict[str, Any]) -> dict[str, Any]:
        values = dict(sampled)
        for p in self.params:
            if p.kind == "complement":
                # Rounded so that 1 − 0.3 reads 0.7 on the command line, not 0.7000000000000001.
                values[p.flag] = round(1.0 - float(sampled[p.complement_of]), 12)
        return values

    def as_dict(self) -> dict[str, dict[str, Any]]:
        return {p.flag: p.as_dict() for p in self.params}

    def limit_batch_size(self, most: int) -> tuple[SearchSpace, str | None]:
        """This space with ``batch_size`` kept to at most ``most`` (choices above it dropped, a range's high end
        lowered), and a one-line note of what changed (None: nothing did). SpaceError when nothing is left."""
        params, note = [], None
        for p in self.params:
            if p.flag != "batch_size":
                params.append(p)
                continue
            if p.kind == "categorical":
                kept = tuple(c for c in p.choices if int(c) <= most)
                dropped = [c for c in p.choices if int(c) > most]
                if not kept:
                    raise SpaceError(
                        f"{self.source}: batch_size: every choice {list(p.choices)} is larger than the train split "
                        f"({most} samples), so no trial would get a full batch"
                    )
                if dropped:
                    p = replace(p, choices=kept)
                    note = (
                        f"batch_size {dropped} left out: the train split has only {most} samples; "
                        f"searching {list(kept)}"
                    )
            elif p.high > most:
                if p.low > most:
                    raise SpaceError(
                        f"{self.source}: batch_size: low ({p.low}) is larger than the train split ({most} samples), "
                        "so no trial would get a full batch"
                    )
                step = p.step or 1
                high = p.low + (most - p.low) // step * step
                note = f"batch_size capped at {high} (was {p.high}): the train split has only {most} samples"
                p = replace(p, high=high)
            params.append(p)
        return SearchSpace(params, self.source), note


def flag_value(value: Any) -> str:
    """A value as `mtl train` reads it back: booleans as true/false, floats exactly (repr)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def override_flags(values: dict[str, Any]) -> list[str]:
    return [token for flag, value in values.items() for token in (f"--{flag}", flag_value(value))]


def load_space(path: str | Path) -> SearchSpace:
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise SpaceError(f"--space: file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise SpaceError(f"--space: {path} is not valid YAML ({exc})") from None
    return parse_space(data, str(path))


def parse_space(data: Any, source: str) -> SearchSpace:
    """Check a loaded space against the `mtl train` parser; raise SpaceError naming the first bad key."""
    if not isinstance(data, dict) or not data:
        raise SpaceError(f"{source}: expected a non-empty mapping of `mtl train` flag → spec")
    actions = {a.dest: a for a in build_parser()._actions}
    try:  # either spelling of a flag, and former names of renamed ones
        data = current_names(data, renamed_flags(), source)
    except ValueError as exc:
        raise SpaceError(f"{source}: {exc}") from None
    params = [_parse_param(key, spec, actions, source) for key, spec in data.items()]
    by_flag = {p.flag: p for p in params}
    for p in params:
        if p.kind != "complement":
            continue
        other = by_flag.get(p.complement_of)
        if other is None or other.kind != "float":
            raise SpaceError(
                f"{source}: {p.flag}: complement_of must name a float flag of this space, got {p.complement_of!r}"
            )
        for end in (other.low, other.high):
            _check_accepted(p.flag, actions[p.flag], round(1.0 - end, 12), source)
    return SearchSpace(params, source)


def _parse_param(flag: str, spec: Any, actions: dict[str, argparse.Action], source: str) -> Param:
    where = f"{source}: {flag}"
    if flag not in actions:
        raise SpaceError(f"{where}: not an `mtl train` flag (see `mtl train --help`)")
    if flag in RESERVED_FLAGS:
        raise SpaceError(f"{where}: set by the tuner or fixed for a whole study; it cannot be searched")
    if not isinstance(spec, dict):
        raise SpaceError(f"{where}: expected a mapping such as {{type: float, low: 0.1, high: 0.9}}, got {spec!r}")
    kind = "complement" if "complement_of" in spec else spec.get("type")
    if kind not in SPEC_KEYS:
        raise SpaceError(f"{where}: unknown type {kind!r}; expected float, int, categorical or complement_of")
    unknown = sorted(set(spec) - SPEC_KEYS[kind])
    if unknown:
        raise SpaceError(f"{where}: unknown key(s) {unknown} for type {kind}; allowed: {sorted(SPEC_KEYS[kind])}")
    action = actions[flag]
    if kind == "complement":
        return Param(flag, kind, complement_of=flag_key(str(spec["complement_of"])))
    if kind == "categorical":
        choices = spec.get("choices")
        if not isinstance(choices, list) or not choices:
            raise SpaceError(f"{where}: choices must be a non-empty list")
        choices = tuple(",".join(flag_value(v) for v in c) if isinstance(c, list) else c for c in choices)
        for choice in choices:
            if not isinstance(choice, CHOICE_TYPES):
                raise SpaceError(f"{where}: choice {choice!r} must be a number, a string, a boolean or a list of them")
            _check_accepted(flag, action, choice, source)
        if len(set(choices)) != len(choices):
            raise SpaceError(f"{where}: choices repeat a value")
        return Param(flag, kind, choices=choices)
    return _parse_range(flag, kind, spec, action, where, source)


def _parse_range(flag: str, kind: str, spec: dict, action: argparse.Action, where: str, source: str) -> Param:
    low, high = (_number(spec.get(end), kind, f"{where}: {end}") for end in ("low", "high"))
    if not low < high:
        raise SpaceError(f"{where}: low ({low}) must be below high ({high})")
    log = spec.get("log", False)
    if not isinstance(log, bool):
        raise SpaceError(f"{where}: log must be true or false, got {log!r}")
    if log and low <= 0:
        raise SpaceError(f"{where}: a log scale needs low > 0, got {low}")
    step = spec.get("step")
    if step is not None:
        step = _number(step, kind, f"{where}: step")
        if step <= 0 or step > high - low:
            raise SpaceError(f"{where}: step must be positive and at most high − low, got {step}")
        if log and (kind == "float" or step != 1):
            raise SpaceError(f"{where}: Optuna cannot combine log: true with a step")
    for end in (low, high):
        _check_accepted(flag, action, end, source)
    return Param(flag, kind, low=low, high=high, log=log, step=step)


def _number(value: Any, kind: str, where: str) -> float | int:
    """YAML reads `1e-5` (no dot) as text, so numeric strings are accepted for floats."""
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise SpaceError(f"{where}: expected an integer, got {value!r}")
        return value
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise SpaceError(f"{where}: expected a number, got {value!r}") from None
    if not math.isfinite(number):
        raise SpaceError(f"{where}: expected a finite number, got {value!r}")
    return number


def _check_accepted(flag: str, action: argparse.Action, value: Any, source: str) -> None:
    """The train parser's own type and choices decide, so the space and the command line agree."""
    text = flag_value(value)
    try:
        converted = action.type(text) if action.type is not None else text
    except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
        raise SpaceError(f"{source}: {flag}: `mtl train --{flag} {text}` is rejected: {exc}") from None
    if action.choices is not None and converted not in action.choices:
        raise SpaceError(f"{source}: {flag}: {text!r} is not one of {sorted(map(str, action.choices))}")
