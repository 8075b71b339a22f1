"""Saliency: a per-pixel probability of being salient (PASCAL-Context multi-task, after ASTMT / MTL-PyTorch).

One output channel of logits, trained with MTL-PyTorch's class-balanced cross-entropy (``mtl.losses.saliency``);
labels are 1 salient, 0 not, 255 ignored. The prediction is the probability as MTL-PyTorch's files store it:
``decode`` gives ⌊255·sigmoid(logit)⌋/255 in float32 (its ``get_output`` scales the sigmoid by 255 and
evaluation/evaluate_utils.py writes ``astype(np.uint8)``, a truncation), so the metric scores exactly the 8-bit
maps the published evaluation reads back, and the PNG files written (the codes ⌊255·p⌋) score the same. The metric
(``mtl.metrics.saliency``) needs the probability, not a mask: maxF and mIoU over 15 thresholds. Test-time
augmentation averages probabilities, then quantises; ONNX returns the unquantised probability.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from mtl.data.formats import DataFormatError, open_image
from mtl.datasets.base import Codec, DatasetLayout
from mtl.models.options import TaskOutput
from mtl.tasks.base import Task, deep_supervision_mean, register_task

if TYPE_CHECKING:
    from torch import Tensor
    from torchmetrics import Metric

    from mtl.metrics.protocol import EvalProtocol

IGNORE = 255
IGNORED_COLOR = (255, 0, 255)  # magenta: not on the grey ramp of probabilities and labels
LEVELS = 255  # the 8-bit codes of a probability map


def read_saliency(path: Path) -> np.ndarray:
    """A grey 8-bit PNG → H×W uint8 codes 0..255 (probability · 255); anything else a DataFormatError naming the file."""
    image = open_image(path)
    if image.mode != "L":
        raise DataFormatError(f"{path}: saliency map has mode {image.mode!r}, expected a grey 8-bit PNG ('L')")
    return np.array(image, dtype=np.uint8)


def write_saliency(path: Path, codes: np.ndarray) -> None:
    codes = np.asarray(codes)
    if codes.ndim != 2 or codes.dtype != np.uint8:
        raise ValueError(f"{path}: a saliency map must be an H×W uint8 array of codes 0..255, got {codes.dtype} {codes.shape}")
    Image.fromarray(codes).save(path)


DatasetLayout.add_codec("saliency", Codec(".png", read_saliency, write_saliency))


def quantise(probability: Tensor) -> Tensor:
    """Probabilities → ⌊255·p⌋/255, float32: the value MTL-PyTorch's 8-bit prediction files hold."""
    return (probability.float() * LEVELS).floor() / LEVELS


@register_task("saliency")
class Saliency(Task):
    summary_name = "max_f"
    summary_label = "sal maxF"
    higher_is_better = True
    # MTL-PyTorch's multi-task performance uses the saliency mIoU alone; later tables (MTI-Net onwards) print maxF.
    delta_metrics = (("metrics_summary/saliency", True), ("metrics_task_saliency/miou", True))
    delta_primary = ("metrics_task_saliency/miou", True)
    onnx_output = "saliency_probability"
    target_dtype = "uint8"

    def output(self) -> TaskOutput:
        return TaskOutput(1)

    def loss(self, outputs: Tensor | Sequence[Tensor], target: Tensor) -> Tensor:
        from mtl.losses.saliency import balanced_bce

        return deep_supervision_mean(self.name, outputs, target, lambda raw: balanced_bce(raw[:, 0], target, IGNORE))

    def decode(self, raw: Tensor) -> Tensor:
        return quantise(raw[:, 0].float().sigmoid())

    def export(self, raw: Tensor) -> Tensor:
        return raw.float().sigmoid()

    def tta_term(self, raw: Tensor, num_views: int, back: Callable[[Tensor], Tensor]) -> Tensor:
        return back(raw.float().sigmoid())  # probabilities are averaged, as semseg's

    def tta_result(self, total: Tensor, num_views: int) -> Tensor:
        return quantise((total / num_views)[:, 0])

    def metric(self, protocol: EvalProtocol) -> Metric:
        # No protocol choice concerns saliency: MTL-PyTorch's evaluation under every --eval_protocol.
        from mtl.metrics.saliency import SaliencyMetrics

        return SaliencyMetrics(IGNORE)

    def scalars(self, result: Mapping[str, Tensor]) -> dict[str, float]:
        return {"metrics_task_saliency/miou": float(result["miou"]), "metrics_task_saliency/threshold": float(result["threshold"])}

    def report(self, result: Mapping[str, Tensor]) -> dict[str, Any]:
        from mtl.metrics.saliency import THRESHOLDS

        return {
            "max_f": float(result["max_f"]),
            "miou": float(result["miou"]),
            "threshold": float(result["threshold"]),
            "images": int(result["images"]),
            "per_threshold": [
                {"threshold": float(t), "f": float(f), "miou": float(m), "precision": float(p), "recall": float(r)}
                for t, f, m, p, r in zip(
                    THRESHOLDS, result["f_per_threshold"].tolist(), result["miou_per_threshold"].tolist(),
                    result["precision"].tolist(), result["recall"].tolist(),
                )
            ],
        }

    @property
    def fill(self) -> float:
        return IGNORE

    def to_tensor(self, array: np.ndarray) -> Tensor:
        import torch

        return torch.from_numpy(np.asarray(array, dtype=np.uint8))

    def to_array(self, prediction: Tensor) -> np.ndarray:
        """The probability → the 8-bit codes of the prediction file; NaN (a diverged network) is an error."""
        probability = prediction.detach().float().cpu().numpy()
        if np.isnan(probability).any():
            raise ValueError("saliency prediction contains NaN; the network has diverged")
        return np.round(probability * LEVELS).astype(np.uint8)

    def picture(self, value: Tensor) -> np.ndarray:
        """A probability (floating point) as grey; labels (integers) black / white, ignored magenta."""
        values = value.detach().cpu()
        if values.is_floating_point():
            grey = np.round(values.float().numpy().clip(0, 1) * LEVELS).astype(np.uint8)
            return np.repeat(grey[..., None], 3, axis=-1)
        labels = values.numpy()
        picture = np.zeros((*labels.shape, 3), dtype=np.uint8)
        picture[labels == 1] = 255
        picture[labels == IGNORE] = IGNORED_COLOR
        return picture
