"""Writing what a ``.tflite`` artifact carries: our spec, the standard metadata and its files.

The training side's half of the contract (``kerasseg.export`` calls :func:`embed_spec`); the
device only reads (``contents.py``, ``standard.py``, ``tflite_file.py``) and never compiles this.
The standard metadata's tables are built with the flatc-generated code in ``_generated/``
(see ``standard.py`` for why no maintained writer is used). The ``Model`` table is rewritten
without a TFLite schema module: the new table and vectors point into the original
flatbuffer, which is copied unchanged after them, so the graph and weights stay byte for byte.
"""
from __future__ import annotations

import io

from edge.artifact.contents import RAW_PIXELS
from edge.artifact.spec import OUTPUT_KINDS, Spec
from edge.artifact.standard import (ACTIVATIONS, AXIS_LABELS, CLASS_ID_DIMENSIONS, LABELS_FILENAME,
                                    METADATA_IDENTIFIER, MIN_PARSER_VERSION, SCORE_DIMENSIONS,
                                    SEGMENTER_IDENTIFIER, SEGMENTER_OPTIONS_NAME, STANDARD_METADATA_NAME,
                                    VALUE_LABELS, MetadataError, check_normalisation)
from edge.artifact.tflite_file import (FILE_IDENTIFIER, MODEL_FIELDS, SPEC_METADATA_NAME, FlatbufferError,
                                       FlatbufferReader, io_tensors, model_reader, split_archive)


# -- the Model table and its metadata entries --------------------------------------------------------

def _copy_block(builder, data: bytes) -> int:
    """Place ``data`` in ``builder`` at a 64-byte aligned position; returns its offset from the buffer end."""
    builder.Prep(64, len(data))  # the copied tables keep their alignment (TFLite buffers need 16)
    builder.head -= len(data)
    builder.Bytes[builder.head:builder.head + len(data)] = data
    return builder.Offset()


def byte_vector(builder, payload: bytes, *, alignment: int = 16) -> int:
    """A ``[ubyte]`` vector of ``payload`` in a flatbuffers ``builder`` (``Buffer.data`` and
    ``CustomMetadata.data`` are ``force_align: 16``)."""
    builder.StartVector(1, len(payload), alignment)
    builder.head -= len(payload)
    builder.Bytes[builder.head:builder.head + len(payload)] = payload
    return builder.EndVector(len(payload))


def offset_vector(builder, offsets: list[int]) -> int:
    """A vector of tables or strings (already in ``builder``), in the order given."""
    builder.StartVector(4, len(offsets), 4)
    for offset in reversed(offsets):
        builder.PrependUOffsetTRelative(offset)
    return builder.EndVector(len(offsets))


def _new_buffer(builder, payload: bytes) -> int:
    data = byte_vector(builder, payload)
    builder.StartObject(3)
    builder.PrependUOffsetTRelativeSlot(0, data, 0)
    return builder.EndObject()


def _pack_files(flatbuffer: bytes, files: dict[str, bytes]) -> bytes:
    """``flatbuffer`` followed by ``files`` as an uncompressed zip whose offsets count from the file's start."""
    import zipfile

    stream = io.BytesIO(flatbuffer)
    stream.seek(0, io.SEEK_END)
    with zipfile.ZipFile(stream, "a", compression=zipfile.ZIP_STORED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    return stream.getvalue()


def _model_table(builder, reader: FlatbufferReader, model: int, *, old, buffers_vector: int, metas_vector: int) -> int:
    """A new Model table: new buffers and metadata vectors, every other field pointing at the old one."""
    builder.StartObject(len(MODEL_FIELDS))
    for index, field in enumerate(MODEL_FIELDS):
        if field == "buffers":
            builder.PrependUOffsetTRelativeSlot(index, buffers_vector, 0)
        elif field == "metadata":
            builder.PrependUOffsetTRelativeSlot(index, metas_vector, 0)
        elif field == "version":
            builder.PrependUint32Slot(index, reader.scalar(model, index, "I"), 0)
        elif reader.field(model, index) is not None:
            builder.PrependUOffsetTRelativeSlot(index, old(reader.indirect(reader.field(model, index))), 0)
    return builder.EndObject()


def with_metadata(content: bytes, entries: dict[str, bytes], *, files: dict[str, bytes] | None = None,
                  source: str = "model") -> bytes:
    """``content`` with ``Model.metadata`` entries ``entries`` (name -> payload) and, if given, ``files``.

    An entry of the same name is replaced in place (its buffer index is kept); other entries,
    the graph and the weights are copied byte for byte: the new ``Model`` table and vectors
    point into the original flatbuffer, which is placed unchanged after them. ``files`` replace
    the files already packed after the model (None keeps them); they are packed as an
    uncompressed zip after the flatbuffer, as the TFLite Model Metadata populator does.
    """
    import flatbuffers

    flat, packed = split_archive(content, source=source)
    files = packed if files is None else files
    reader, model = model_reader(flat, source)
    if reader.vtable_size(model) > 4 + 2 * len(MODEL_FIELDS):
        raise FlatbufferError(f"{source}: the Model table has fields after {MODEL_FIELDS[-1]!r} that this "
                              f"writer does not know; refusing to drop them")
    buffers, metas = reader.tables(model, 4), reader.tables(model, 6)
    if any(reader.scalar(b, 1, "Q") > 1 for b in buffers):
        raise FlatbufferError(f"{source}: the model keeps its weights outside the flatbuffer (a model over 2 GB); "
                              f"adding metadata to it is not supported")
    names = [(reader.bytes_field(m, 0) or b"").decode("utf-8", "replace") for m in metas]
    builder = flatbuffers.Builder(len(flat) + sum(len(v) + 256 for v in entries.values()) + 1024)
    base = _copy_block(builder, flat)

    def old(position: int) -> int:  # an object of the copied flatbuffer, as a builder offset
        return base - position

    buffer_refs, meta_refs = [old(b) for b in buffers], [old(m) for m in metas]
    for name, payload in entries.items():
        new_buffer = _new_buffer(builder, bytes(payload))
        if name in names:
            buffer_refs[reader.scalar(metas[names.index(name)], 1, "I")] = new_buffer
            continue
        buffer_refs.append(new_buffer)
        label = builder.CreateString(name)
        builder.StartObject(2)
        builder.PrependUint32Slot(1, len(buffer_refs) - 1, 0)
        builder.PrependUOffsetTRelativeSlot(0, label, 0)
        meta_refs.append(builder.EndObject())
    table = _model_table(builder, reader, model, old=old, buffers_vector=offset_vector(builder, buffer_refs),
                         metas_vector=offset_vector(builder, meta_refs))
    builder.Finish(table, file_identifier=FILE_IDENTIFIER)
    output = bytes(builder.Output())
    return _pack_files(output, files) if files else output


# -- the standard metadata ----------------------------------------------------------------------------

def _activation_for(output_kind: str, channels: int) -> str:
    if output_kind == "logits":
        return "sigmoid" if channels == 1 else "softmax"
    return "none"


def _floats(builder, values, start_vector) -> int:
    start_vector(builder, len(values))
    for value in reversed(values):
        builder.PrependFloat32(value)
    return builder.EndVector(len(values))


def _two_field_table(builder, table, adders, values) -> int | None:
    """A table of two scalar fields (ImageSize's height and width, ValueRange's min and max); None without values."""
    if values is None:
        return None
    table.Start(builder)
    for add, value in zip(adders, values, strict=True):
        add(builder, value)
    return table.End(builder)


def _image_content(builder, *, color_space: int, size: tuple[int, int] | None, dims: tuple[int, int] | None) -> int:
    from edge.artifact._generated.tflite import Content, ImageProperties, ImageSize, ValueRange
    from edge.artifact._generated.tflite.ContentProperties import ContentProperties

    default_size = _two_field_table(builder, ImageSize, (ImageSize.AddHeight, ImageSize.AddWidth), size)
    ImageProperties.Start(builder)
    ImageProperties.AddColorSpace(builder, color_space)
    if default_size is not None:
        ImageProperties.AddDefaultSize(builder, default_size)
    properties = ImageProperties.End(builder)
    value_range = _two_field_table(builder, ValueRange, (ValueRange.AddMin, ValueRange.AddMax), dims)
    Content.Start(builder)
    Content.AddContentPropertiesType(builder, ContentProperties.ImageProperties)
    Content.AddContentProperties(builder, properties)
    if value_range is not None:
        Content.AddRange(builder, value_range)
    return Content.End(builder)


def _input_tensor(builder, *, mean, std, input_dtype: str, input_size) -> int:
    from edge.artifact._generated.tflite import NormalizationOptions, ProcessUnit, Stats, TensorMetadata
    from edge.artifact._generated.tflite.ColorSpaceType import ColorSpaceType
    from edge.artifact._generated.tflite.ProcessUnitOptions import ProcessUnitOptions

    name, description = builder.CreateString("image"), builder.CreateString("RGB image, pixels 0..255")
    content = _image_content(builder, color_space=ColorSpaceType.RGB, size=input_size, dims=None)
    mean_vector = _floats(builder, mean, NormalizationOptions.StartMeanVector)
    std_vector = _floats(builder, std, NormalizationOptions.StartStdVector)
    NormalizationOptions.Start(builder)
    NormalizationOptions.AddMean(builder, mean_vector)
    NormalizationOptions.AddStd(builder, std_vector)
    options = NormalizationOptions.End(builder)
    ProcessUnit.Start(builder)
    ProcessUnit.AddOptionsType(builder, ProcessUnitOptions.NormalizationOptions)
    ProcessUnit.AddOptions(builder, options)
    units = offset_vector(builder, [ProcessUnit.End(builder)])
    stats = None
    if input_dtype in ("uint8", "float32"):  # the value range the tensor receives (as MediaPipe's writer states it)
        if input_dtype == "uint8":
            low, high = [0.0], [255.0]
        else:
            low = [(0.0 - m) / s for m, s in zip(mean, std)]
            high = [(255.0 - m) / s for m, s in zip(mean, std)]
        low_vector, high_vector = _floats(builder, low, Stats.StartMinVector), _floats(builder, high, Stats.StartMaxVector)
        Stats.Start(builder)
        Stats.AddMax(builder, high_vector)
        Stats.AddMin(builder, low_vector)
        stats = Stats.End(builder)
    TensorMetadata.Start(builder)
    TensorMetadata.AddName(builder, name)
    TensorMetadata.AddDescription(builder, description)
    TensorMetadata.AddContent(builder, content)
    TensorMetadata.AddProcessUnits(builder, units)
    if stats is not None:
        TensorMetadata.AddStats(builder, stats)
    return TensorMetadata.End(builder)


def _output_tensor(builder, *, output_kind: str) -> int:
    from edge.artifact._generated.tflite import AssociatedFile, TensorMetadata
    from edge.artifact._generated.tflite.ColorSpaceType import ColorSpaceType

    class_ids = output_kind == "class_ids"
    name = builder.CreateString("segmentation_masks")
    description = builder.CreateString(
        "class id of each pixel" if class_ids else f"{output_kind} of each class at each pixel")
    dimensions = offset_vector(builder, [builder.CreateString(name) for name in
                                         (CLASS_ID_DIMENSIONS if class_ids else SCORE_DIMENSIONS)])
    file_name = builder.CreateString(LABELS_FILENAME)
    file_description = builder.CreateString(
        "names of the class ids" if class_ids else "labels of the classes, one per output channel")
    AssociatedFile.Start(builder)
    AssociatedFile.AddName(builder, file_name)
    AssociatedFile.AddDescription(builder, file_description)
    AssociatedFile.AddType(builder, VALUE_LABELS if class_ids else AXIS_LABELS)
    files = offset_vector(builder, [AssociatedFile.End(builder)])
    content = _image_content(builder, color_space=ColorSpaceType.GRAYSCALE, size=None, dims=(1, 2))
    TensorMetadata.Start(builder)
    TensorMetadata.AddName(builder, name)
    TensorMetadata.AddDescription(builder, description)
    TensorMetadata.AddDimensionNames(builder, dimensions)
    TensorMetadata.AddContent(builder, content)
    TensorMetadata.AddAssociatedFiles(builder, files)
    return TensorMetadata.End(builder)


def _segmenter_options(activation: str) -> bytes:
    import flatbuffers
    from edge.artifact._generated.mediapipe.tasks import ImageSegmenterOptions

    builder = flatbuffers.Builder(64)
    ImageSegmenterOptions.Start(builder)
    ImageSegmenterOptions.AddActivation(builder, ACTIVATIONS.index(activation))
    builder.Finish(ImageSegmenterOptions.End(builder), file_identifier=SEGMENTER_IDENTIFIER)
    return bytes(builder.Output())


def segmenter_metadata(*, labels, output_kind: str, input_dtype: str, channels: int, mean=(0.0,), std=(1.0,),
                       input_size: tuple[int, int] | None = None, name: str = "segmenter",
                       description: str = "") -> tuple[bytes, dict[str, bytes]]:
    """The ``TFLITE_METADATA`` payload of a one-input, one-output image segmenter, and its files.

    ``mean``/``std`` are the normalisation a client applies to float inputs (mean 0, std 1:
    raw pixels, the graph normalises); ``channels`` is the output's last dimension (1 for a
    class-id map). Returns ``(metadata bytes, {file name: bytes})``.
    """
    import flatbuffers
    from edge.artifact._generated.tflite import CustomMetadata, ModelMetadata, SubGraphMetadata

    if output_kind not in OUTPUT_KINDS:
        raise MetadataError(f"output_kind: expected one of {OUTPUT_KINDS}, got {output_kind!r}")
    mean, std = check_normalisation(mean, std, source="segmenter_metadata")
    if len(mean) != len(std):
        raise MetadataError(f"segmenter_metadata: mean and std need as many values, got {list(mean)} and {list(std)}")
    labels = tuple(str(label) for label in labels)
    if not labels or any("\n" in label or "\r" in label for label in labels):
        raise MetadataError(f"labels: expected non-empty names without line breaks, got {list(labels)}")
    builder = flatbuffers.Builder(1024)
    inputs = offset_vector(builder, [_input_tensor(builder, mean=mean, std=std, input_dtype=input_dtype,
                                                   input_size=input_size)])
    outputs = offset_vector(builder, [_output_tensor(builder, output_kind=output_kind)])
    options = _segmenter_options(_activation_for(output_kind, channels))
    options_name = builder.CreateString(SEGMENTER_OPTIONS_NAME)
    options_data = byte_vector(builder, options)
    CustomMetadata.Start(builder)
    CustomMetadata.AddName(builder, options_name)
    CustomMetadata.AddData(builder, options_data)
    custom = offset_vector(builder, [CustomMetadata.End(builder)])
    SubGraphMetadata.Start(builder)
    SubGraphMetadata.AddInputTensorMetadata(builder, inputs)
    SubGraphMetadata.AddOutputTensorMetadata(builder, outputs)
    SubGraphMetadata.AddCustomMetadata(builder, custom)
    subgraph = offset_vector(builder, [SubGraphMetadata.End(builder)])
    strings = [builder.CreateString(text) for text in (name, description, MIN_PARSER_VERSION)]
    ModelMetadata.Start(builder)
    ModelMetadata.AddName(builder, strings[0])
    ModelMetadata.AddDescription(builder, strings[1])
    ModelMetadata.AddSubgraphMetadata(builder, subgraph)
    ModelMetadata.AddMinParserVersion(builder, strings[2])
    builder.Finish(ModelMetadata.End(builder), file_identifier=METADATA_IDENTIFIER)
    return bytes(builder.Output()), {LABELS_FILENAME: ("\n".join(labels) + "\n").encode("utf-8")}


# -- an artifact --------------------------------------------------------------------------------------

def embed_metadata(content: bytes, *, labels, output_kind: str, mean=(0.0,), std=(1.0,), spec: Spec | None = None,
                   name: str = "segmenter", description: str = "", source: str = "model") -> bytes:
    """``content`` with standard image-segmenter metadata (and ``spec``'s entry when given).

    ``mean``/``std`` are what a client must apply to float inputs. Input dtype, input size and
    output channels are read from the model's tensors.
    """
    inputs, outputs = io_tensors(content, source=source)
    if len(inputs) != 1 or len(outputs) != 1:
        raise MetadataError(f"{source}: an image segmenter has one input and one output, this model has "
                            f"{len(inputs)} and {len(outputs)}")
    image, scores = inputs[0], outputs[0]
    input_size = tuple(image.shape[1:3]) if len(image.shape) == 4 else None
    channels = scores.shape[-1] if len(scores.shape) == 4 else 1
    payload, files = segmenter_metadata(labels=labels, output_kind=output_kind, input_dtype=image.dtype,
                                        channels=channels, mean=mean, std=std, input_size=input_size, name=name,
                                        description=description)
    entries = {STANDARD_METADATA_NAME: payload}
    if spec is not None:
        entries[SPEC_METADATA_NAME] = spec.to_json().encode("utf-8")
    return with_metadata(content, entries, files=files, source=source)


def embed_spec(content: bytes, spec: Spec) -> bytes:
    """A kerasseg artifact: ``content`` with ``spec`` and the standard metadata derived from it."""
    return embed_metadata(content, labels=spec.labels, output_kind=spec.output_kind, mean=RAW_PIXELS[0],
                          std=RAW_PIXELS[1], spec=spec, name="kerasseg segmenter", source="embed_spec",
                          description=f"semantic segmentation, {spec.num_classes} classes, takes raw RGB pixels "
                                      f"(normalised inside the graph)")


__all__ = ["byte_vector", "embed_metadata", "embed_spec", "offset_vector", "segmenter_metadata", "with_metadata"]
