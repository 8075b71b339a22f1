"""Test-time augmentation: average the predictions over horizontal flips and input scales.

Each view resizes the input bilinearly and predicts; each task says what is averaged (``Task.tta_term``:
softmax probabilities, metres, unit vectors), mapping its output back to the input's frame and size with
the ``back`` function it is given where the mapping belongs (logits before the softmax, depth after the
decode into metres), and how the sum becomes a prediction (``Task.tta_result``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from mtl.hardware import autocast_dtype
from mtl.inference.predictor import Predictor
from mtl.models.ops import resize
from mtl.tasks import Task, final


class TestTimeAugmentation(nn.Module):
    """Wraps a Predictor; ``predict`` and ``tasks`` have the predictor's contract, so evaluation accepts it."""

    __test__ = False  # not a pytest test class, despite the name

    def __init__(self, predictor: Predictor, scales: Sequence[float] = (0.75, 1.0, 1.25), flip: bool = True) -> None:
        super().__init__()
        if not scales or any(not s > 0 for s in scales):
            raise ValueError(f"TTA scales must be positive numbers, got {list(scales)}")
        self.predictor = predictor
        self.tasks = predictor.tasks
        self.protocol = predictor.protocol
        self.dataset = predictor.dataset
        self.views = [(float(s), f) for s in scales for f in ((False, True) if flip else (False,))]

    @torch.no_grad()
    def predict(self, rgb: Tensor) -> dict[str, Tensor]:
        """Each task's prediction for uint8-valued RGB B×3×H×W, averaged over the views."""
        size = tuple(rgb.shape[-2:])
        totals: dict[str, Tensor] = {}
        dtype = autocast_dtype(self.predictor.precision)
        for scale, flip in self.views:
            x = rgb.float()
            view_size = (max(1, round(size[0] * scale)), max(1, round(size[1] * scale)))
            if view_size != size:
                x = resize(x, view_size)
            if flip:
                x = x.flip(-1)
            with torch.autocast(rgb.device.type, dtype=dtype, enabled=dtype is not None):
                outputs = self.predictor(x)
            for name, output in outputs.items():
                task = self.tasks[name]
                back = lambda t, task=task, flip=flip: self._back(task, t, flip, size)  # noqa: E731
                # Averaged in fp32: under bf16/fp16 autocast the outputs are half precision, and a sum of resized
                # softmax probabilities in bf16 keeps under 3 significant digits.
                term = task.tta_term(final(output).float(), len(self.views), back)
                totals[name] = term if name not in totals else totals[name] + term
        return {name: self.tasks[name].tta_result(total, len(self.views)) for name, total in totals.items()}

    @staticmethod
    def _back(task: Task, x: Tensor, flip: bool, size: tuple[int, ...]) -> Tensor:
        """Undo a view's flip and scale on a B×C×h×w term."""
        if flip:
            x = task.flip_back(x)
        return x if tuple(x.shape[-2:]) == size else resize(x, size)
