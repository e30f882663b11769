"""Model tooling: export to ONNX, int8 quantization, evaluation on Food-11, the demo model.

Nothing here downloads anything. Converters (TensorFlow, PyTorch) are optional extras,
imported only by `ggctl.model.export` when an export asks for them.
"""
