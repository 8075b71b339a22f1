"""mtl: one network, two dense tasks (semantic segmentation + monocular depth) on driving scenes."""

__version__ = "0.1.0"
