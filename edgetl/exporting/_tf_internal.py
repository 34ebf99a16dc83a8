"""Every private or unstable TensorFlow and LiteRT API edgetl touches, in one place.

None of these is covered by TensorFlow's compatibility promise; when a TensorFlow or LiteRT upgrade
breaks export, this module is where to look first (tests/test_export.py exercises each of them)."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager


def tflite_schema():
    """The TFLite flatbuffer schema with the object API, as ai_edge_litert ships it (TensorFlow's
    own copy, ``tensorflow.lite.python.schema_py_generated``, is internal)."""
    from ai_edge_litert import schema_py_generated

    return schema_py_generated


def ops_details(interpreter) -> list[dict]:
    """The operators of an allocated interpreter, each with its name and tensor indices (the
    Interpreter's private ``_get_ops_details``; there is no public equivalent)."""
    return interpreter._get_ops_details()


def mlir_quantize(calibrated: bytes, io_type, denylisted: list[str]) -> bytes:
    """Quantize a calibrated TFLite model with ``denylisted`` tensors kept in float and ``io_type``
    input and output: the converter's own last step of a full-integer conversion (``_quantize``
    with the MLIR quantizer), called directly so one calibration serves several models."""
    from tensorflow.lite.python.convert import mlir_quantize as quantize

    return quantize(calibrated, input_data_type=io_type, output_data_type=io_type, denylisted_nodes=denylisted)


@contextmanager
def calibrate_only(converter) -> Iterator[None]:
    """Within the block, ``converter.convert()`` stops after calibration and returns the calibrated
    float model (the private flag the QuantizationDebugger sets)."""
    converter._experimental_calibrate_only = True
    try:
        yield
    finally:
        converter._experimental_calibrate_only = False


def freeze(concrete_function) -> Callable:
    """A concrete function with its variables folded into constants (tf2onnx wants a frozen graph;
    Keras layers that capture constants, like EfficientNet's normalisation, would become inputs)."""
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

    return convert_variables_to_constants_v2(concrete_function)

