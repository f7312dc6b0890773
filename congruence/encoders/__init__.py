"""Image and text encoders: the protocols (``base``), PyTorch models (``torch_models``), their
ONNX Runtime twins on the CPU (``onnx``, graphs cached by ``onnx_cache``), the runtime choice
(``inference``), a store's encoder set (``encoder_set``) and safe image decoding (``images``)."""
