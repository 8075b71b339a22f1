"""Using a trained model: prediction on images and dataset splits, test-time augmentation, ONNX export."""

from mtl.inference.export import ExportModel, check_onnx, export_onnx
from mtl.inference.images import list_images, load_image
from mtl.inference.predict import predict_dataset_split, predict_images
from mtl.inference.tta import TestTimeAugmentation

__all__ = [
    "ExportModel",
    "TestTimeAugmentation",
    "check_onnx",
    "export_onnx",
    "list_images",
    "load_image",
    "predict_dataset_split",
    "predict_images",
]
