"""Procedural street scenes in the MiniScapes layout (RGB, 19-class semseg, metric depth) plus surface normals."""

from mtl.data.synth.dataset import generate_dataset
from mtl.data.synth.sample import Sample, render_sample

__all__ = ["Sample", "generate_dataset", "render_sample"]
