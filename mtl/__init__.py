"""mtl: one network, several dense predictions (semantic segmentation, monocular depth, surface normals) from one image."""

__version__ = "0.1.0"
