"""Reads the history rows of an offline Weights & Biases run file (run-<id>.wandb) without a network.

The file is wandb's transaction log: a 7-byte header (":W&B", magic, version), then records in 32 KiB blocks,
each chunk with a 7-byte header (checksum, length, type: 1 full, 2 first, 3 middle, 4 last) holding a
serialised ``wandb_internal_pb2.Record``. wandb itself offers no offline reader any more, hence this one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

BLOCK = 32768


def records(path: Path) -> Iterator[object]:
    from wandb.proto import wandb_internal_pb2

    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path}: not a W&B run file")
    position, pieces = 7, b""
    while position + 7 <= len(data):
        if BLOCK - position % BLOCK < 7:  # a block's trailer is padding
            position += BLOCK - position % BLOCK
            continue
        length, kind = int.from_bytes(data[position + 4 : position + 6], "little"), data[position + 6]
        if kind == 0:
            break
        pieces += data[position + 7 : position + 7 + length]
        position += 7 + length
        if kind in (1, 4):
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pieces)
            pieces = b""
            yield record


def history(path: Path) -> list[dict[str, object]]:
    """Each logged row: key → value (JSON-decoded); nested keys joined with '/'."""
    rows = []
    for record in records(path):
        if record.WhichOneof("record_type") == "history":
            rows.append({item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in record.history.item})
    return rows
