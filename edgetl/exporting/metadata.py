"""Labels, the input contract and the whole :class:`ModelManifest` embedded in every artifact.

TFLite: the standard metadata (``TFLITE_METADATA`` buffer, a ``ModelMetadata`` flatbuffer with
identifier M001: RGB image input, normalisation for float inputs, labels as a TENSOR_AXIS_LABELS
associated file), with labels.txt and edgetl.json (the manifest) zipped onto the end of the model,
as MediaPipe Tasks and the TFLite Support library expect. ONNX: ``metadata_props`` (the manifest
under ``edgetl``)."""
from __future__ import annotations

import io
import json
import zipfile

import flatbuffers
import numpy as np

from edgetl import __version__
from edgetl._vendor import tflite_metadata_schema as md
from edgetl.runtime.labels import LABELS_FILE
from edgetl.runtime.manifest import ModelManifest
from edgetl.runtime.spec import PixelSpec
from edgetl.runtime.tflite_metadata import METADATA_NAME, SPEC_FILE


def _model_metadata(name: str, labels: list[str], pixels: PixelSpec, float_input: bool,
                    threshold: float | None = None) -> bytes:
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
    if threshold:
        # The "unknown" threshold, where MediaPipe's classifiers read it: they drop categories
        # scoring under it (an empty result is MediaPipe's "unknown") unless told another.
        unit = md.ProcessUnitT()
        unit.optionsType = md.ProcessUnitOptions.ScoreThresholdingOptions
        unit.options = md.ScoreThresholdingOptionsT()
        unit.options.globalScoreThreshold = float(threshold)
        scores.processUnits = [unit]

    sub = md.SubGraphMetadataT()
    sub.inputTensorMetadata = [image]
    sub.outputTensorMetadata = [scores]
    spec_file = md.AssociatedFileT()
    spec_file.name = SPEC_FILE
    spec_file.description = "edgetl manifest: labels, input contract, format, precision, tool versions."
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


def _tflite_tensor(schema, tensor) -> dict:
    """dtype, scale and zero point of one tensor of a TFLite model tree."""
    names = {v: k.lower() for k, v in vars(schema.TensorType).items() if not k.startswith("_")}
    q = tensor.quantization
    quantized = q is not None and q.scale is not None and len(q.scale) > 0
    return {"dtype": names[tensor.type], "scale": float(q.scale[0]) if quantized else 0.0,
            "zero_point": int(q.zeroPoint[0]) if quantized and q.zeroPoint is not None and len(q.zeroPoint) else 0}


def embed_tflite(model: bytes, name: str, manifest: ModelManifest) -> bytes:
    """The model with standard metadata and its associated files (labels.txt, edgetl.json); the
    manifest's ``io`` is filled in from the model's own input and output tensors."""
    from edgetl.exporting._tf_internal import tflite_schema

    schema = tflite_schema()
    labels, pixels = manifest.labels, manifest.input
    tree = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    subgraph = tree.subgraphs[0]
    float_input = subgraph.tensors[subgraph.inputs[0]].type == schema.TensorType.FLOAT32
    manifest.io = {"input": _tflite_tensor(schema, subgraph.tensors[subgraph.inputs[0]]),
                   "output": _tflite_tensor(schema, subgraph.tensors[subgraph.outputs[0]])}
    buffer = schema.BufferT()
    # Multi-label: each label's own threshold is folded into the scores at 0.5, so 0.5 is the one
    # threshold MediaPipe (and any reader of this metadata) applies to every label.
    from edgetl.runtime.task import DECISION

    threshold = DECISION if manifest.multi_label else manifest.confidence.threshold if manifest.confidence else None
    buffer.data = np.frombuffer(_model_metadata(name, labels, pixels, float_input, threshold), np.uint8)
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
        z.writestr(SPEC_FILE, json.dumps(manifest.embedded()))
    return out.getvalue()


def embed_onnx(model, manifest: ModelManifest, layout: str = "NHWC") -> None:
    """Set labels, input layout, pixel range, resize method and the whole manifest (its ``io``
    filled in from the graph's input and output) as ONNX metadata_props, in place."""
    from onnx.helper import tensor_dtype_to_np_dtype

    labels, pixels = manifest.labels, manifest.input
    manifest.io = {name: {"dtype": str(tensor_dtype_to_np_dtype(t.type.tensor_type.elem_type)), "scale": 0.0,
                          "zero_point": 0} for name, t in (("input", model.graph.input[0]), ("output", model.graph.output[0]))}
    lo = (0 - (pixels.mean or 0.0)) / (pixels.std or 1.0)
    hi = (255 - (pixels.mean or 0.0)) / (pixels.std or 1.0)
    props = {
        "labels": json.dumps(labels), "input_layout": layout, "input_color": "RGB",
        "input_size": f"{pixels.height}x{pixels.width}", "pixel_range": json.dumps([lo, hi]),
        "resize_method": pixels.resize, "edgetl": json.dumps(manifest.embedded()), "producer": f"edgetl {__version__}",
    }
    del model.metadata_props[:]
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
