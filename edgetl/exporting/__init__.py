"""TFLite and ONNX export with embedded metadata and verification (imports TensorFlow when
run): :func:`edgetl.export`."""
