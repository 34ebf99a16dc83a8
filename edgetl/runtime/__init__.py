"""Run any classifier model: .tflite (LiteRT), .onnx (ONNX Runtime), .keras (Keras, lazily).

Imports neither TensorFlow nor Keras unless a .keras model is loaded."""
from edgetl.runtime.classifier import BACKENDS, Category, Classifier, load

__all__ = ["BACKENDS", "Category", "Classifier", "load"]
