"""vidtldr-deploy: training-free vid-TLDR token merging for video transformers, exported to ONNX/TensorRT."""

__version__ = "0.1.0"
