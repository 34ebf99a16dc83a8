"""Generated code edgetl carries, each file with the source it was generated from.

- ``tflite_metadata_schema.py``: the TensorFlow Lite metadata schema (``metadata_schema.fbs``,
  Apache-2.0, as bundled with MediaPipe Tasks) compiled by ``flatc`` 2.0.8 for Python. The device
  side reads and export writes model metadata with it, without TensorFlow or MediaPipe.
  Regenerate with ``tools/regenerate_metadata_schema.sh``; ``tests/test_vendor.py`` checks that its
  enums match the copy MediaPipe bundles. Do not edit by hand.
"""
