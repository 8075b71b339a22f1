"""Learning-rate schedule: the course's poly decay, optional linear warm-up, and safe extension.

Poly: factor(i) = (1 − i/N)^power with i the epoch (the course) or the optimiser step. When a finished
or running experiment is continued with a larger ``--num_epochs``, recomputing the factor with the
new N would make the learning rate jump back up (a published pitfall). Instead the schedule keeps a
list of segments: the continuation starts a new poly decay from the last factor used, down to 0 at
the new end, so the learning rate never rises.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Segment:
    start: int  # first scheduler index (epoch or step) of the segment
    end: int  # index where the factor reaches 0
    start_factor: float


def poly_factor(index: int, segments: list[Segment], power: float, warmup: int = 0) -> float:
    segment = next((s for s in reversed(segments) if index >= s.start), segments[0])
    span = max(segment.end - segment.start, 1)
    progress = min(max(index - segment.start, 0) / span, 1.0)
    factor = segment.start_factor * (1.0 - progress) ** power
    if warmup > 0 and index < warmup:
        factor *= (index + 1) / (warmup + 1)
    return factor


def extend(segments: list[Segment], resume_index: int, new_end: int, power: float) -> list[Segment]:
    """Segments after raising the schedule's end to ``new_end`` when training resumes at ``resume_index``."""
    if new_end == segments[-1].end:
        return segments
    if new_end < segments[-1].end:
        raise ValueError("--num_epochs may only grow when resuming a run")
    if resume_index == 0:
        return [Segment(0, new_end, 1.0)]
    last_used = poly_factor(resume_index - 1, segments, power)
    # Start one index before the resume point so that the first new factor is already below the last one used.
    return [*segments, Segment(resume_index - 1, new_end, last_used)]


def to_state(segments: list[Segment]) -> list[dict]:
    return [asdict(s) for s in segments]


def from_state(state: list[dict]) -> list[Segment]:
    return [Segment(**s) for s in state]
