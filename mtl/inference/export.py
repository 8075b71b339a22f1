"""ONNX export of a trained model, with normalisation and each task's decode inside the graph, and its check.

The graph takes float32 RGB in 0..255 (B×3×H×W, any batch and size) and returns one output per task,
named by the task (e.g. ``semseg_logits`` B×19×H×W, ``depth_m`` B×1×H×W in metres) — only the final
prediction of deep-supervision models.
It is written with the TorchScript-based exporter (``dynamo=False``): for these models it keeps batch,
height and width dynamic, takes seconds, and honours any opset, whereas the dynamo exporter of torch 2.13
took over a minute here and failed its opset down-conversion below 18 (see docs/TOOLS.md).

A part whose graph depends on the input size in a way ONNX cannot express (the adaptive-bins depth head pools
to a fixed grid) cannot have dynamic height and width; ``dynamic_size=False`` exports it for one size.
"""

from __future__ import annotations

import json
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from mtl.data.transforms import IMAGENET_MEAN, IMAGENET_STD
from mtl.inference.predictor import Predictor
from mtl.tasks import final

DEFAULT_OPSET = 17
# A check passes when max|onnx − torch| ≤ CHECK_TOLERANCE · max(1, max|torch|) for every output.
CHECK_TOLERANCE = 1e-4


class ExportError(RuntimeError):
    """The exporter cannot express the model; the message says which part and what to try."""


class ExportModel(nn.Module):
    """What the exported graph computes: RGB 0..255 → each task's exported output (``Task.export``)."""

    def __init__(self, predictor: Predictor) -> None:
        super().__init__()
        self.model = predictor.model
        self.tasks = predictor.tasks
        self.dataset = predictor.dataset
        # Buffers, not torch.tensor() in forward: the tracer keeps them as constants without warnings.
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255, persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255, persistent=False)

    @property
    def output_names(self) -> list[str]:
        return [task.onnx_output for task in self.tasks.values()]

    def forward(self, rgb: Tensor) -> tuple[Tensor, ...]:
        outputs = self.model((rgb.float() - self.mean) / self.std)
        return tuple(task.export(final(outputs[name])) for name, task in self.tasks.items())


def export_onnx(
    wrapper: ExportModel,
    path: str | Path,
    height: int,
    width: int,
    opset: int = DEFAULT_OPSET,
    metadata: dict | None = None,
    dynamic_size: bool = True,
) -> Path:
    """Trace ``wrapper`` at height×width into ``path``; batch is dynamic, and height and width if ``dynamic_size``."""
    import onnx

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    example = torch.rand(1, 3, height, width, generator=torch.Generator().manual_seed(0)) * 255
    names = wrapper.output_names
    axes = {0: "batch", 2: "height", 3: "width"} if dynamic_size else {0: "batch"}
    dynamic = {name: axes for name in ["rgb", *names]}
    with torch.no_grad():
        channels = [t.shape[1] for t in wrapper.eval()(example)]
    # Traced with gradients enabled: under no_grad, nn.TransformerEncoder (adaptive-bins head) takes a fused
    # fast path that has no ONNX form.
    with warnings.catch_warnings():
        # The TorchScript exporter is chosen on purpose (module docstring); its deprecation notices are noise.
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        try:
            torch.onnx.export(
                wrapper,
                (example,),
                str(path),
                dynamo=False,
                input_names=["rgb"],
                output_names=names,
                dynamic_axes=dynamic,
                opset_version=opset,
            )
        except torch.onnx.errors.OnnxExporterError as exc:
            what = "with a dynamic height and width" if dynamic_size else f"at {height}×{width}"
            raise ExportError(f"the ONNX exporter cannot express this model {what}: {str(exc).splitlines()[0]}") from exc
    model = onnx.load(str(path))
    # The exporter leaves the channel axis of resized outputs symbolic; it is fixed (19 and 1).
    for output, count in zip(model.graph.output, channels):
        output.type.tensor_type.shape.dim[1].dim_value = count
    props = {
        "input": "rgb: float32 B×3×H×W, RGB values 0..255 (ImageNet normalisation is inside the graph)",
        "outputs": ", ".join(names),
        **{k: v for task in wrapper.tasks.values() for k, v in task.onnx_metadata().items()},
        **(metadata or {}),
    }
    onnx.helper.set_model_props(model, {k: str(v) for k, v in props.items()})
    onnx.save(model, str(path))
    return path


def check_sizes(height: int, width: int, dynamic_size: bool = True) -> list[tuple[int, int, int]]:
    """(batch, height, width) of the check inputs: the export size, then batch 2 at an odd size (if dynamic)."""
    if not dynamic_size:
        return [(1, height, width), (2, height, width)]
    return [(1, height, width), (2, max(33, 3 * height // 4 + 1), max(33, 3 * width // 4 + 3))]


def check_onnx(
    path: str | Path, wrapper: ExportModel, sizes: Sequence[tuple[int, int, int]], seed: int = 0
) -> list[dict[str, Any]]:
    """Run the ONNX file (ONNX Runtime, CPU) and ``wrapper`` on the same random inputs; one row per size and output.

    A row holds the input shape, the output name and shape, max_abs_diff, scale (max |torch output|),
    tolerance (CHECK_TOLERANCE · max(1, scale)) and ok.
    """
    import onnxruntime as ort

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for batch, height, width in sizes:
        rgb = torch.rand(batch, 3, height, width, generator=generator) * 255
        with torch.no_grad():
            expected = [t.numpy() for t in wrapper.eval()(rgb)]
        got = session.run(wrapper.output_names, {"rgb": rgb.numpy()})
        for name, ref, out in zip(wrapper.output_names, expected, got):
            if out.shape != ref.shape:
                raise ValueError(f"{path}: {name} has shape {out.shape} in ONNX Runtime, {ref.shape} in PyTorch")
            diff = float(np.abs(out.astype(np.float64) - ref).max())
            scale = float(np.abs(ref).max())
            tolerance = CHECK_TOLERANCE * max(1.0, scale)
            rows.append(
                {
                    "input": [batch, 3, height, width],
                    "output": name,
                    "shape": list(ref.shape),
                    "max_abs_diff": diff,
                    "scale": scale,
                    "tolerance": tolerance,
                    "ok": diff <= tolerance,
                }
            )
    return rows
