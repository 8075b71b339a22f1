"""Sample count of the MiniScapes layout: <root>/<split>/<modality>/<i>.<ext>, indices 0..N-1 from rgb/<i>.jpg.

The dataset plug-in ``mtl.datasets.miniscapes`` (what training, prediction, `mtl data check` and
`mtl data stats` use) builds on it; the generator (``mtl.data.synth``) writes the layout.
"""

from __future__ import annotations

from pathlib import Path

from mtl.data.check import count_indexed_files

SPLITS = ("train", "val", "test")


def split_size(root: Path, split: str) -> int:
    """Number of samples of a split, discovered from the RGB folder (indices must run 0..N-1).

    Only ``<i>.jpg`` with ``<i>`` in ASCII digits without leading zeros is a sample. A ``.jpg`` whose
    name still reads as a number (``03.jpg``, ``+3.jpg``, ``٣.jpg``: ``int()`` accepts them all) is an
    error naming the file rather than a silent alias of a sample; other files (``notes.txt``,
    ``cover.jpg``) are ignored here (``mtl data check`` reports them).
    """
    folder = Path(root) / split / "rgb"
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: split folder not found (expected <root>/{split}/rgb/<i>.jpg)")
    return count_indexed_files(folder, ".jpg")
