"""The graph inside a ``.tflite`` file: tensors (names, shapes, types, quantization, constant data) and operators.

Read with the one flatbuffer reader, ``tflite_file.py`` (its buffers, operator codes, subgraph and tensor
shapes), no TensorFlow: the training side reads the weights of released models through it
(``kerasseg.models.importing``). Field numbers come from the TFLite schema
(tensorflow/compiler/mlir/lite/schema/schema.fbs), besides those ``tflite_file.py`` lists:

- ``Tensor { shape:0, type:1, buffer:2, name:3, quantization:4 }``
- ``QuantizationParameters { min:0, max:1, scale:2, zero_point:3, details_type:4, details:5,
  quantized_dimension:6 }``
- ``Operator { opcode_index:0, inputs:1, outputs:2, builtin_options_type:3, builtin_options:4 }``
"""
from __future__ import annotations

import dataclasses

from edge.artifact.tflite_file import (FlatbufferError, FlatbufferReader, buffer_data, first_subgraph, model_reader,
                                       operator_codes, tensor_info)

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


def _constant(reader: FlatbufferReader, buffers: list[int], index: int) -> bytes | None:
    """A tensor's constant bytes (None: an activation, whose buffer is 0, the empty sentinel, or empty)."""
    if index == 0 or index >= len(buffers):
        return None
    return buffer_data(reader, buffers[index]) or None


def _tensor(reader: FlatbufferReader, table: int, index: int, buffers: list[int]) -> GraphTensor:
    quant = reader.field(table, 4)
    scale, zero_point, axis = (), (), 0
    if quant is not None:
        quant = reader.indirect(quant)
        scale = reader.ints(quant, 2, "f")
        zero_point = reader.ints(quant, 3, "q", 8)
        axis = reader.scalar(quant, 6, "i")
    info = tensor_info(reader, table)
    return GraphTensor(index=index, name=(reader.bytes_field(table, 3) or b"").decode("utf-8", "replace"),
                       shape=info.shape, dtype=info.dtype,
                       data=_constant(reader, buffers, reader.scalar(table, 2, "I")), scale=scale,
                       zero_point=zero_point, quantized_dimension=axis)


def _options(reader: FlatbufferReader, table: int, name: str) -> dict:
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
    graph, buffers = first_subgraph(reader, model), reader.tables(model, 4)
    names = [code.name for code in operator_codes(reader, model)]
    tensors = tuple(_tensor(reader, table, i, buffers) for i, table in enumerate(reader.tables(graph, 0)))
    operators = []
    for table in reader.tables(graph, 3):
        code = reader.scalar(table, 0, "I")
        if code >= len(names):
            raise FlatbufferError(f"{source}: an operator uses code {code}, but the model has {len(names)}")
        name = names[code]
        operators.append(GraphOperator(name=name, inputs=reader.ints(table, 1), outputs=reader.ints(table, 2),
                                       options=_options(reader, table, name)))
    return Graph(tensors=tensors, operators=tuple(operators), inputs=reader.ints(graph, 1),
                 outputs=reader.ints(graph, 2))


__all__ = ["Graph", "GraphOperator", "GraphTensor", "read_graph"]
