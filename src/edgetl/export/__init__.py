"""TFLite and ONNX export with embedded metadata and verification (imports TensorFlow when run)."""
from edgetl._callable import make_callable


def export(*args, **kwargs):
    """See :func:`edgetl.export.pipeline.export`."""
    from edgetl.export.pipeline import export as _export

    return _export(*args, **kwargs)


__all__ = ["export"]

make_callable(__name__, export)
