"""Streaming metrics (torchmetrics-based) of the tasks, and the evaluation protocols they follow.

Import the modules themselves (``mtl.metrics.depth``, …): this package imports nothing, so that the command line can
offer the protocols (``mtl.metrics.protocol``) without importing torch.
"""
