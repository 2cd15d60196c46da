"""The standard TFLite Model Metadata of an image segmenter, written and read without TensorFlow.

MediaPipe's ImageSegmenter, the LiteRT Task Library and Android tooling read a
``Model.metadata`` entry named ``TFLITE_METADATA``: a ``ModelMetadata`` flatbuffer
(metadata_schema.fbs, file identifier "M001") whose associated files (here the labels)
are packed as a zip archive after the model. For an image segmenter it holds, as
MediaPipe's ``metadata_writers/image_segmenter.py`` writes it:

- the input image: RGB ``ImageProperties``, ``NormalizationOptions`` (a float input gets
  ``(pixel - mean) / std``; a uint8 input gets the raw pixels) and value stats;
- the output: a segmentation mask (grayscale ``ImageProperties`` over dimensions 1..2)
  with its labels file;
- custom metadata ``SEGMENTER_METADATA``: ``ImageSegmenterOptions`` (file identifier
  "V001"), whose ``activation`` is the function a client applies to the output to get
  confidences (MediaPipe applies it before its confidence masks).

No maintained writer installs here: ``mediapipe``'s writer needs opencv-contrib-python
(which clashes with our opencv-python-headless) and imports MediaPipe's C bindings;
``tflite-support`` 0.4.4 requires protobuf<4, which TensorFlow 2.21 cannot take. So the
tables are built and read with code that flatc generated from the published schemas
(``edge/artifact/_generated``, see its ``regenerate.py``), not written by hand.
"""
from __future__ import annotations

import dataclasses
import os
import struct

STANDARD_METADATA_NAME = "TFLITE_METADATA"
SEGMENTER_OPTIONS_NAME = "SEGMENTER_METADATA"
LABELS_FILENAME = "labels.txt"
METADATA_IDENTIFIER, SEGMENTER_IDENTIFIER = b"M001", b"V001"
# custom_metadata (where SEGMENTER_METADATA lives) arrived in metadata schema 1.5.0.
MIN_PARSER_VERSION = "1.5.0"
ACTIVATIONS = ("none", "sigmoid", "softmax")  # ImageSegmenterOptions.activation, in schema order
# How each of our output kinds is described: (activation a client applies, label file type, dimension names).
# Scores carry one label per channel (TENSOR_AXIS_LABELS); a class-id map carries names of its values
# (TENSOR_VALUE_LABELS). Logits need a softmax (several channels) or a sigmoid (one) to become confidences.
AXIS_LABELS, VALUE_LABELS = 2, 3  # AssociatedFileType values
SCORE_DIMENSIONS = ("batch", "height", "width", "class")
CLASS_ID_DIMENSIONS = ("batch", "height", "width")


class MetadataError(ValueError):
    """Standard metadata that does not parse, or that contradicts itself or the model."""


@dataclasses.dataclass(frozen=True)
class StandardMetadata:
    """What a model's standard metadata says, in kerasseg's terms; None where it says nothing.

    ``mean``/``std`` are the device-side normalisation (pixel units, 1 or 3 values, as stored);
    ``output_kind`` is one of ``spec.OUTPUT_KINDS``, read from the activation and the label file type.
    """

    mean: tuple[float, ...] | None = None
    std: tuple[float, ...] | None = None
    labels: tuple[str, ...] | None = None
    output_kind: str | None = None
    activation: str | None = None

    def normalisation(self) -> tuple[tuple[float, float, float], tuple[float, float, float]] | None:
        """(mean, std) per RGB channel, a single stored value broadcast to three; None when not stated."""
        if self.mean is None:
            return None
        return tuple(self.mean * (3 // len(self.mean))), tuple(self.std * (3 // len(self.std)))


def check_normalisation(mean, std, *, source: str) -> tuple[tuple[float, ...], tuple[float, ...]]:
    mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
    if len(mean) not in (1, 3) or len(std) not in (1, 3):
        raise MetadataError(f"{source}: input normalisation needs 1 or 3 values each for mean and std "
                            f"(one per RGB channel), got mean {list(mean)} and std {list(std)}")
    if any(s <= 0 for s in std):
        raise MetadataError(f"{source}: input normalisation std must be positive, got {list(std)}")
    return mean, std


# -- reading ----------------------------------------------------------------------------------------

def _normalisation(tensor, *, source: str):
    from edge.artifact._generated.tflite.NormalizationOptions import NormalizationOptions
    from edge.artifact._generated.tflite.ProcessUnitOptions import ProcessUnitOptions

    for i in range(tensor.ProcessUnitsLength()):
        unit = tensor.ProcessUnits(i)
        if unit.OptionsType() == ProcessUnitOptions.NormalizationOptions:
            options = NormalizationOptions()
            table = unit.Options()
            options.Init(table.Bytes, table.Pos)
            # Stored as float32: keep the 7 significant digits it holds (123.675, not 123.67500305).
            mean = [float(f"{options.Mean(k):.7g}") for k in range(options.MeanLength())]
            std = [float(f"{options.Std(k):.7g}") for k in range(options.StdLength())]
            return check_normalisation(mean, std, source=f"{source} input normalisation")
    return None, None


def _labels(tensor, files: dict[str, bytes], *, source: str) -> tuple[tuple[str, ...] | None, int | None]:
    """(names, file type) of the output's label file (the one without a locale first)."""
    candidates = [tensor.AssociatedFiles(i) for i in range(tensor.AssociatedFilesLength())]
    candidates = [f for f in candidates if f.Type() in (AXIS_LABELS, VALUE_LABELS)]
    if not candidates:
        return None, None
    chosen = sorted(candidates, key=lambda f: f.Locale() is not None)[0]
    name = (chosen.Name() or b"").decode("utf-8")
    if name not in files:
        raise MetadataError(f"{source}: the output's label file {name!r} is not among the files packed with "
                            f"the model ({sorted(files) or 'none'})")
    try:
        text = files[name].decode("utf-8")
    except UnicodeDecodeError as err:
        raise MetadataError(f"{source}: label file {name!r} is not UTF-8 ({err})") from None
    return label_names(text), chosen.Type()


def label_names(text: str) -> tuple[str, ...]:
    """Class names, one a line, up to the first blank line after them (Coral's label files end with prose)."""
    names = []
    for line in text.splitlines():
        if line.strip():
            names.append(line.strip())
        elif names:
            break
    return tuple(names)


def read_label_file(path) -> tuple[str, ...]:
    """``label_names`` of the file ``path``; raises ValueError naming the file when it cannot be read or holds
    no name."""
    path = os.fspath(path)
    try:
        with open(path, encoding="utf-8") as f:
            names = label_names(f.read())
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"--labels {path}: cannot read it ({err})") from None
    if not names:
        raise ValueError(f"--labels {path}: no class names in it (one name a line)")
    return names


def _activation(subgraph, *, source: str) -> str | None:
    from edge.artifact._generated.mediapipe.tasks.ImageSegmenterOptions import ImageSegmenterOptions

    for i in range(subgraph.CustomMetadataLength()):
        custom = subgraph.CustomMetadata(i)
        if (custom.Name() or b"").decode("utf-8") != SEGMENTER_OPTIONS_NAME:
            continue
        data = custom.DataAsNumpy().tobytes() if custom.DataLength() else b""
        if len(data) < 8 or data[4:8] != SEGMENTER_IDENTIFIER:
            raise MetadataError(f"{source}: custom metadata {SEGMENTER_OPTIONS_NAME!r} is not an "
                                f"ImageSegmenterOptions flatbuffer (file identifier {SEGMENTER_IDENTIFIER!r})")
        code = ImageSegmenterOptions.GetRootAs(data, 0).Activation()
        if not 0 <= code < len(ACTIVATIONS):
            raise MetadataError(f"{source}: unknown segmenter activation {code}; known: {list(ACTIVATIONS)}")
        return ACTIVATIONS[code]
    return None


def _output_kind(activation: str | None, label_type: int | None) -> str | None:
    if label_type == VALUE_LABELS:
        return "class_ids"
    if activation is None:
        return None
    return "probabilities" if activation == "none" else "logits"


def parse_segmenter_metadata(data: bytes, files: dict[str, bytes], *, source: str) -> StandardMetadata:
    """Read a ``TFLITE_METADATA`` payload (and the model's packed ``files``) as :class:`StandardMetadata`.

    Raises :class:`MetadataError` naming ``source`` when it does not parse or states impossible values.
    """
    from edge.artifact._generated.tflite.ModelMetadata import ModelMetadata

    if len(data) < 8 or data[4:8] != METADATA_IDENTIFIER:
        raise MetadataError(f"{source}: not a TFLite Model Metadata flatbuffer (expected file identifier "
                            f"{METADATA_IDENTIFIER!r} at bytes 4..8, found {bytes(data[4:8])!r})")
    try:
        model = ModelMetadata.GetRootAs(data, 0)
        if model.SubgraphMetadataLength() < 1:
            return StandardMetadata()
        subgraph = model.SubgraphMetadata(0)
        mean = std = labels = label_type = None
        if subgraph.InputTensorMetadataLength() >= 1:
            mean, std = _normalisation(subgraph.InputTensorMetadata(0), source=source)
        if subgraph.OutputTensorMetadataLength() >= 1:
            labels, label_type = _labels(subgraph.OutputTensorMetadata(0), files, source=source)
        activation = _activation(subgraph, source=source)
    except (struct.error, IndexError, ValueError, TypeError, AttributeError) as err:
        if isinstance(err, MetadataError):
            raise
        raise MetadataError(f"{source}: the TFLite Model Metadata does not parse "
                            f"({type(err).__name__}: {err})") from None
    return StandardMetadata(mean=mean, std=std, labels=labels, activation=activation,
                            output_kind=_output_kind(activation, label_type))


__all__ = ["ACTIVATIONS", "LABELS_FILENAME", "SEGMENTER_OPTIONS_NAME", "STANDARD_METADATA_NAME", "MetadataError",
           "StandardMetadata", "check_normalisation", "parse_segmenter_metadata"]
