"""Labels and the input contract embedded in every artifact.

TFLite: the standard metadata (``TFLITE_METADATA`` buffer, a ``ModelMetadata`` flatbuffer with
identifier M001: RGB image input, normalisation for float inputs, labels as a TENSOR_AXIS_LABELS
associated file), with labels.txt and edgetl.json zipped onto the end of the model, as MediaPipe
Tasks and the TFLite Support library expect. ONNX: ``metadata_props``."""
from __future__ import annotations

import io
import json
import zipfile

import flatbuffers
import numpy as np

from edgetl import __version__
from edgetl.runtime import _metadata_schema as md
from edgetl.runtime.spec import PixelSpec
from edgetl.runtime.tflite_metadata import METADATA_NAME, SPEC_FILE

LABELS_FILE = "labels.txt"


def _model_metadata(name: str, labels: list[str], pixels: PixelSpec, float_input: bool) -> bytes:
    image = md.TensorMetadataT()
    image.name = "image"
    image.description = f"RGB image {pixels.height}x{pixels.width}, pixels 0..255 ({pixels.resize})"
    image.content = md.ContentT()
    image.content.contentPropertiesType = md.ContentProperties.ImageProperties
    image.content.contentProperties = md.ImagePropertiesT()
    image.content.contentProperties.colorSpace = md.ColorSpaceType.RGB
    if float_input:
        unit = md.ProcessUnitT()
        unit.optionsType = md.ProcessUnitOptions.NormalizationOptions
        unit.options = md.NormalizationOptionsT()
        unit.options.mean = [float(pixels.mean or 0.0)]
        unit.options.std = [float(pixels.std or 1.0)]
        image.processUnits = [unit]
    image.stats = md.StatsT()
    image.stats.max, image.stats.min = [255.0], [0.0]

    scores = md.TensorMetadataT()
    scores.name = "probability"
    scores.description = f"Probabilities of the {len(labels)} labels."
    scores.content = md.ContentT()
    scores.content.contentPropertiesType = md.ContentProperties.FeatureProperties
    scores.content.contentProperties = md.FeaturePropertiesT()
    scores.stats = md.StatsT()
    scores.stats.max, scores.stats.min = [1.0], [0.0]
    labels_file = md.AssociatedFileT()
    labels_file.name = LABELS_FILE
    labels_file.description = "Labels for the categories the model can recognise."
    labels_file.type = md.AssociatedFileType.TENSOR_AXIS_LABELS
    scores.associatedFiles = [labels_file]

    sub = md.SubGraphMetadataT()
    sub.inputTensorMetadata = [image]
    sub.outputTensorMetadata = [scores]
    spec_file = md.AssociatedFileT()
    spec_file.name = SPEC_FILE
    spec_file.description = "edgetl input contract (size, normalisation, resize method)."
    spec_file.type = md.AssociatedFileType.DESCRIPTIONS
    meta = md.ModelMetadataT()
    meta.name = name
    meta.description = f"Image classifier made by edgetl {__version__}: {', '.join(labels[:10])}"
    meta.version = __version__
    meta.author = "edgetl"
    meta.subgraphMetadata = [sub]
    meta.associatedFiles = [spec_file]
    meta.minParserVersion = "1.0.0"
    builder = flatbuffers.Builder(1024)
    builder.Finish(meta.Pack(builder), file_identifier=b"M001")
    return bytes(builder.Output())


def embed_tflite(model: bytes, name: str, labels: list[str], pixels: PixelSpec) -> bytes:
    """The model with standard metadata and its associated files (labels.txt, edgetl.json)."""
    from tensorflow.lite.python import schema_py_generated as schema

    tree = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    subgraph = tree.subgraphs[0]
    float_input = subgraph.tensors[subgraph.inputs[0]].type == schema.TensorType.FLOAT32
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(_model_metadata(name, labels, pixels, float_input), np.uint8)
    tree.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(tree.buffers) - 1
    tree.metadata = [m for m in (tree.metadata or []) if m.name not in (METADATA_NAME, METADATA_NAME.encode())] + [entry]
    builder = flatbuffers.Builder(len(model) + 4096)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    out = io.BytesIO(bytes(builder.Output()))
    with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as z:
        z.writestr(LABELS_FILE, "".join(f"{label}\n" for label in labels))
        z.writestr(SPEC_FILE, json.dumps(pixels.to_dict()))
    return out.getvalue()


def embed_onnx(model, labels: list[str], pixels: PixelSpec, layout: str = "NHWC") -> None:
    """Set labels, input layout, pixel range and resize method as ONNX metadata_props (in place)."""
    lo = (0 - (pixels.mean or 0.0)) / (pixels.std or 1.0)
    hi = (255 - (pixels.mean or 0.0)) / (pixels.std or 1.0)
    props = {
        "labels": json.dumps(labels), "input_layout": layout, "input_color": "RGB",
        "input_size": f"{pixels.height}x{pixels.width}", "pixel_range": json.dumps([lo, hi]),
        "resize_method": pixels.resize, "edgetl": json.dumps(pixels.to_dict()), "producer": f"edgetl {__version__}",
    }
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
