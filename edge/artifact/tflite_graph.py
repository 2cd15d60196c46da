"""The graph inside a ``.tflite`` file: tensors (names, shapes, types, quantization, constant data) and operators.

Read with the flatbuffer reader of ``tflite_file.py``, no TensorFlow: the training side reads the weights
of released models through it (``kerasseg.models.importing``). Field numbers come from the TFLite schema
(tensorflow/compiler/mlir/lite/schema/schema.fbs):

- ``SubGraph { tensors:0, inputs:1, outputs:2, operators:3 }``
- ``Tensor { shape:0, type:1, buffer:2, name:3, quantization:4 }``
- ``QuantizationParameters { min:0, max:1, scale:2, zero_point:3, details_type:4, details:5,
  quantized_dimension:6 }``
- ``Operator { opcode_index:0, inputs:1, outputs:2, builtin_options_type:3, builtin_options:4 }``
- ``OperatorCode { deprecated_builtin_code:0, custom_code:1, version:2, builtin_code:3 }``
"""
from __future__ import annotations

import dataclasses

from edge.artifact.tflite_file import TENSOR_TYPES, FlatbufferError, _Reader, model_reader

# BuiltinOperator values for the operators a segmentation graph uses (others are named by number).
BUILTIN_OPERATORS = {0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D",
                     6: "DEQUANTIZE", 18: "MUL", 22: "RESHAPE", 23: "RESIZE_BILINEAR", 25: "SOFTMAX", 34: "PAD",
                     40: "MEAN", 41: "SUB", 49: "SPLIT", 56: "ARG_MAX", 97: "RESIZE_NEAREST_NEIGHBOR",
                     114: "QUANTIZE", 117: "HARD_SWISH", 150: "BATCH_MATMUL"}
# The options an importer needs, by operator: (field name, field index, struct format).
OPTION_FIELDS = {
    "CONV_2D": (("padding", 0, "b"), ("stride_w", 1, "i"), ("stride_h", 2, "i"), ("activation", 3, "b"),
                ("dilation_w", 4, "i"), ("dilation_h", 5, "i")),
    "DEPTHWISE_CONV_2D": (("padding", 0, "b"), ("stride_w", 1, "i"), ("stride_h", 2, "i"),
                          ("depth_multiplier", 3, "i"), ("activation", 4, "b"), ("dilation_w", 5, "i"),
                          ("dilation_h", 6, "i")),
    "RESIZE_BILINEAR": (("align_corners", 2, "?"), ("half_pixel_centers", 3, "?")),
    "RESIZE_NEAREST_NEIGHBOR": (("align_corners", 0, "?"), ("half_pixel_centers", 1, "?")),
}
OPTION_DEFAULTS = {"stride_w": 1, "stride_h": 1, "dilation_w": 1, "dilation_h": 1, "depth_multiplier": 1}
PADDINGS = {0: "SAME", 1: "VALID"}


@dataclasses.dataclass(frozen=True)
class GraphTensor:
    """One tensor of the graph; ``data`` holds a constant's bytes (None for activations)."""

    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    data: bytes | None = None
    scale: tuple[float, ...] = ()
    zero_point: tuple[int, ...] = ()
    quantized_dimension: int = 0


@dataclasses.dataclass(frozen=True)
class GraphOperator:
    """One operator: its name (BuiltinOperator or custom code), tensor indices and decoded options."""

    name: str
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]
    options: dict


@dataclasses.dataclass(frozen=True)
class Graph:
    """The first subgraph of a model."""

    tensors: tuple[GraphTensor, ...]
    operators: tuple[GraphOperator, ...]
    inputs: tuple[int, ...]
    outputs: tuple[int, ...]


def _ints(reader: _Reader, table: int, index: int, fmt: str = "i", size: int = 4) -> tuple:
    start, length = reader.vector(table, index)
    return tuple(reader._unpack(fmt, start + size * i) for i in range(length))


def _buffer_bytes(reader: _Reader, buffers: list[int], index: int) -> bytes | None:
    if index == 0 or index >= len(buffers):  # buffer 0 is the empty sentinel
        return None
    buffer = buffers[index]
    data = reader.bytes_field(buffer, 0)
    offset, size = reader.scalar(buffer, 1, "Q"), reader.scalar(buffer, 2, "Q")
    if not data and offset > 1:  # large models keep buffers after the flatbuffer
        data = bytes(reader.data[offset:offset + size])
    return data or None


def _tensor(reader: _Reader, table: int, index: int, buffers: list[int]) -> GraphTensor:
    quant = reader.field(table, 4)
    scale, zero_point, axis = (), (), 0
    if quant is not None:
        quant = reader.indirect(quant)
        scale = _ints(reader, quant, 2, "f")
        zero_point = _ints(reader, quant, 3, "q", 8)
        axis = reader.scalar(quant, 6, "i")
    code = reader.scalar(table, 1, "b")
    return GraphTensor(index=index, name=(reader.bytes_field(table, 3) or b"").decode("utf-8", "replace"),
                       shape=_ints(reader, table, 0), dtype=TENSOR_TYPES.get(code, f"tensor type {code}"),
                       data=_buffer_bytes(reader, buffers, reader.scalar(table, 2, "I")), scale=scale,
                       zero_point=zero_point, quantized_dimension=axis)


def _operator_names(reader: _Reader, model: int) -> list[str]:
    names = []
    for code in reader.tables(model, 1):
        custom = reader.bytes_field(code, 1)
        builtin = max(reader.scalar(code, 0, "b"), reader.scalar(code, 3, "i"))
        names.append(custom.decode("utf-8", "replace") if custom else BUILTIN_OPERATORS.get(builtin, str(builtin)))
    return names


def _options(reader: _Reader, table: int, name: str) -> dict:
    fields = OPTION_FIELDS.get(name)
    position = reader.field(table, 4)
    if fields is None:
        return {}
    if position is None:
        return {key: OPTION_DEFAULTS.get(key, 0) for key, _, _ in fields}
    options_table = reader.indirect(position)
    out = {key: reader.scalar(options_table, index, fmt, OPTION_DEFAULTS.get(key, 0)) for key, index, fmt in fields}
    if "padding" in out:
        out["padding"] = PADDINGS.get(out["padding"], str(out["padding"]))
    return out


def read_graph(content: bytes, *, source: str) -> Graph:
    """Tensors, operators, inputs and outputs of the first subgraph of the ``.tflite`` bytes ``content``.

    Raises :class:`FlatbufferError` naming ``source`` for bytes that are not a TFLite model.
    """
    reader, model = model_reader(content, source)
    subgraphs = reader.tables(model, 2)
    if not subgraphs:
        raise FlatbufferError(f"{source}: the model has no subgraph")
    graph, buffers, names = subgraphs[0], reader.tables(model, 4), _operator_names(reader, model)
    tensors = tuple(_tensor(reader, table, i, buffers) for i, table in enumerate(reader.tables(graph, 0)))
    operators = []
    for table in reader.tables(graph, 3):
        code = reader.scalar(table, 0, "I")
        if code >= len(names):
            raise FlatbufferError(f"{source}: an operator uses code {code}, but the model has {len(names)}")
        name = names[code]
        operators.append(GraphOperator(name=name, inputs=_ints(reader, table, 1), outputs=_ints(reader, table, 2),
                                       options=_options(reader, table, name)))
    return Graph(tensors=tensors, operators=tuple(operators), inputs=_ints(reader, graph, 1),
                 outputs=_ints(reader, graph, 2))


__all__ = ["BUILTIN_OPERATORS", "Graph", "GraphOperator", "GraphTensor", "read_graph"]
