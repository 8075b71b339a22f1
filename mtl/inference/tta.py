"""Test-time augmentation: average the predictions over horizontal flips and input scales.

Semseg averages softmax probabilities; depth averages metres (each view is decoded from the training unit
first, because the mean of e.g. log-depth units is not the mean depth). Each view resizes the input
bilinearly, predicts, and resizes the outputs back to the input size, so any scale works on any image size.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mtl.engine.module import final
from mtl.models.ops import resize


class TestTimeAugmentation(nn.Module):
    """Wraps a MultiTaskModule; ``predict`` has the module's contract, so evaluate_split accepts it."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, module: nn.Module, scales: Sequence[float] = (0.75, 1.0, 1.25), flip: bool = True) -> None:
        super().__init__()
        if not scales or any(not s > 0 for s in scales):
            raise ValueError(f"TTA scales must be positive numbers, got {list(scales)}")
        self.module = module
        self.views = [(float(s), f) for s in scales for f in ((False, True) if flip else (False,))]

    @torch.no_grad()
    def predict(self, rgb: Tensor) -> dict[str, Tensor]:
        """Semseg trainIds (B×H×W int64) and depth in metres (B×H×W float32) for uint8-valued RGB B×3×H×W."""
        size = tuple(rgb.shape[-2:])
        scores: Tensor | None = None
        depth: Tensor | None = None
        for scale, flip in self.views:
            x = rgb.float()
            view_size = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
            if view_size != size:
                x = resize(x, view_size)
            if flip:
                x = x.flip(-1)
            outputs = self.module(x)
            if "semseg" in outputs:
                logits = self._back(final(outputs["semseg"]), flip, size)
                # One view needs no softmax: its argmax is the logits' argmax, and skipping softmax avoids
                # its rounding ties, so a single identity view reproduces plain prediction bit for bit.
                view_scores = logits if len(self.views) == 1 else logits.softmax(1)
                scores = view_scores if scores is None else scores + view_scores
            if "depth" in outputs:
                metres = self._back(self.module.depth_unit.decode(final(outputs["depth"])), flip, size)
                depth = metres if depth is None else depth + metres
        result = {}
        if scores is not None:
            result["semseg"] = scores.argmax(1)
        if depth is not None:
            result["depth"] = (depth / len(self.views))[:, 0]
        return result

    @staticmethod
    def _back(x: Tensor, flip: bool, size: tuple[int, int]) -> Tensor:
        """Undo a view's flip and scale on a B×C×h×w output."""
        if flip:
            x = x.flip(-1)
        return x if tuple(x.shape[-2:]) == size else resize(x, size)
