"""Using a trained model: loading it, prediction on images and dataset splits, test-time augmentation, ONNX export."""
