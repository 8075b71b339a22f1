"""What the reports take from a run's TensorBoard event files: training wall time and the latest image of a tag.

Training time: the trainer records no clock of its own, so it is measured from event timestamps. Each
training session (the first start and every resume) writes its own event file; a session's time is
its last event's timestamp minus its first's, and the run's time is the sum over sessions. This
covers training and validation from the logger's first write to the last validation's pictures, leaves
out start-up before the first logged value, test-split prediction after training and any pause
between a crash and its resume, and keeps steps that a resume repeated (they were really spent).
A file with no readable record contributes nothing (TensorBoard itself skips a truncated tail).
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

from PIL import Image

EVENT_GLOB = "events.out.tfevents.*"


@dataclass
class TaggedImage:
    step: int
    png: bytes
    width: int
    height: int


def event_files(run_dir: Path) -> list[Path]:
    return sorted(p for p in Path(run_dir).glob(EVENT_GLOB) if p.is_file())


def training_time(run_dir: Path) -> float | None:
    """Seconds of training summed over sessions (see the module docstring); None without event files."""
    from google.protobuf.message import DecodeError
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader

    files = event_files(run_dir)
    if not files:
        return None
    total = 0.0
    for path in files:
        first = last = None
        try:
            for event in EventFileLoader(str(path)).Load():
                first = event.wall_time if first is None else first
                last = event.wall_time
        except (OSError, DecodeError) as exc:
            raise ValueError(f"{path}: unreadable TensorBoard event file ({exc}); training time left empty") from exc
        if first is not None:
            total += last - first
    return total


def latest_image(run_dir: Path, tag: str, max_width: int = 1600) -> TaggedImage | None:
    """The last image logged under ``tag`` (None if there is none), as PNG no wider than ``max_width``
    pixels so that a report stays small even for full-resolution validation pictures."""
    from tensorboard.backend.event_processing.event_accumulator import (
        AUDIO,
        COMPRESSED_HISTOGRAMS,
        HISTOGRAMS,
        IMAGES,
        SCALARS,
        TENSORS,
        EventAccumulator,
    )

    from google.protobuf.message import DecodeError

    # Size 1 keeps only the newest event of each tag (the reservoir always keeps the last one).
    guidance = {kind: 1 for kind in (AUDIO, COMPRESSED_HISTOGRAMS, HISTOGRAMS, IMAGES, SCALARS, TENSORS)}
    accumulator = EventAccumulator(str(run_dir), size_guidance=guidance)
    try:
        accumulator.Reload()
    except (OSError, DecodeError) as exc:
        raise ValueError(f"{run_dir}: unreadable TensorBoard event files ({exc})") from exc
    if tag not in accumulator.Tags().get(IMAGES, []):
        return None
    event = accumulator.Images(tag)[-1]
    try:
        image = Image.open(io.BytesIO(event.encoded_image_string))
        image.load()
    except (OSError, Image.DecompressionBombError) as exc:
        raise ValueError(f"{run_dir}: image {tag!r} at step {event.step} cannot be decoded ({exc})") from exc
    png = event.encoded_image_string
    if image.width > max_width or image.format != "PNG":
        image = image.convert("RGB")
        image.thumbnail((max_width, image.height), Image.Resampling.BOX)
        buffer = io.BytesIO()
        image.save(buffer, format="PNG", optimize=True)
        png = buffer.getvalue()
    return TaggedImage(step=int(event.step), png=png, width=image.width, height=image.height)
