"""Released ``.tflite`` DeepLab models -> :class:`Official` weights (batch norm folded) and the graph's facts.

The graph is read with ``edge.artifact.tflite_graph`` (no second flatbuffer parser). Each CONV_2D and
DEPTHWISE_CONV_2D gives one scope: its kernel tensor's name (``.../weights``, ``.../depthwise_weights``,
``.../weights_quant/FakeQuantWithMinMaxVars``, ``.../Conv2D_Fold``...) names the official scope, and its
third input is the bias that batch norm folded into. Quantized tensors are dequantized with their own
scales and zero points, per tensor or per channel; float16 weights behind a DEQUANTIZE are followed.
"""
from __future__ import annotations

import dataclasses
import re

import numpy as np

from edge.artifact.spec import Alignment
from edge.artifact.tflite_file import FlatbufferError, read_model_file
from edge.artifact.tflite_graph import Graph, GraphTensor, read_graph
from kerasseg.models.importing.names import NameMapError, Official

CONVOLUTIONS = ("CONV_2D", "DEPTHWISE_CONV_2D")
# How a kernel tensor's name ends after its scope, in the files TF1's converters wrote.
_KERNEL_NAME = re.compile(r"^(.+?)/(?:depthwise_weights|weights(?:_quant/FakeQuantWithMinMaxVars.*)?|"
                          r"Conv2D_Fold|depthwise_Fold|Conv2D|depthwise)$")


@dataclasses.dataclass(frozen=True)
class GraphFacts:
    """What the released graph computes besides its weights."""

    input_size: tuple[int, int]
    output_stride: int
    alignment: Alignment  # of its resizes: align_corners, legacy or half_pixel
    quantized: bool       # an integer model (its weights carry quantization error)
    kind: str             # "tflite, uint8 weights"...


def _stored(tensor: GraphTensor, graph: Graph, producers: dict) -> GraphTensor:
    """The constant behind ``tensor``: itself, or the float16 input of the DEQUANTIZE that produces it."""
    if tensor.data is not None:
        return tensor
    op = producers.get(tensor.index)
    if op is None or op.name != "DEQUANTIZE" or graph.tensors[op.inputs[0]].data is None:
        raise FlatbufferError(f"tensor {tensor.name!r} is not a constant")
    return graph.tensors[op.inputs[0]]


def _array(tensor: GraphTensor, graph: Graph, producers: dict) -> np.ndarray:
    """The constant value of ``tensor`` as float32, dequantized."""
    tensor = _stored(tensor, graph, producers)
    dtype = np.dtype({"float16": "<f2", "float32": "<f4", "int8": "i1", "uint8": "u1", "int32": "<i4"}
                     .get(tensor.dtype, "V1"))
    if dtype.kind == "V":
        raise FlatbufferError(f"tensor {tensor.name!r}: weights of type {tensor.dtype} are not supported")
    values = np.frombuffer(tensor.data, dtype).reshape(tensor.shape).astype(np.float32)
    if not tensor.scale or dtype.kind == "f":
        return values
    shape = [1] * values.ndim
    if len(tensor.scale) > 1:
        shape[tensor.quantized_dimension] = len(tensor.scale)
    scale = np.asarray(tensor.scale, np.float32).reshape(shape)
    zero = np.asarray(tensor.zero_point or [0], np.float32).reshape(shape if len(tensor.zero_point) > 1 else [1])
    return (values - zero) * scale


def kernel_scope(name: str) -> str | None:
    """The official scope in a kernel tensor's name (TFLite joins fused names with ';'), or None."""
    for part in name.split(";"):
        match = _KERNEL_NAME.match(part)
        if match and "weights" in part:
            return match.group(1)
    for part in name.split(";"):
        match = _KERNEL_NAME.match(part)
        if match:
            return match.group(1)
    return None


def read_tflite(path: str) -> tuple[Official, GraphFacts]:
    """The folded weights of every convolution under its official scope, and the graph's facts."""
    graph = read_graph(read_model_file(path), source=path)
    producers = {out: op for op in graph.operators for out in op.outputs}
    tensors, kernels = {}, []
    for op in graph.operators:
        if op.name not in CONVOLUTIONS:
            continue
        kernel_tensor = _stored(graph.tensors[op.inputs[1]], graph, producers)
        scope = kernel_scope(kernel_tensor.name) or kernel_tensor.name
        kernel = _array(kernel_tensor, graph, producers)  # TFLite: (out, kh, kw, in); depthwise (1, kh, kw, c)
        kernel = kernel[0][..., None] if op.name == "DEPTHWISE_CONV_2D" else kernel.transpose(1, 2, 3, 0)
        biases = (_array(graph.tensors[op.inputs[2]], graph, producers) if len(op.inputs) > 2 and op.inputs[2] >= 0
                  else np.zeros(kernel.shape[-1] if op.name == "CONV_2D" else kernel.shape[2], np.float32))
        tensors[scope] = {"weights": kernel, "biases": biases}
        kernels.append((scope, op))
    if not kernels:
        raise NameMapError(f"{path}: no convolution in the graph; not a DeepLab model")
    return Official(tensors=tensors, folded=True, source=path), _facts(path, graph, kernels, producers)


def _facts(path: str, graph: Graph, kernels: list, producers: dict) -> GraphFacts:
    image = graph.tensors[graph.inputs[0]]
    if len(image.shape) != 4 or image.shape[0] != 1 or image.shape[3] != 3:
        raise NameMapError(f"{path}: input {image.name!r} has shape {image.shape}, not (1, H, W, 3)")
    height, width = image.shape[1:3]
    logits = [op for scope, op in kernels if scope == "logits/semantic"]
    if not logits:
        raise NameMapError(f"{path}: not a DeepLab model: no convolution scoped 'logits/semantic' (DeepLab's "
                           f"classifier); its first convolutions are scoped {[scope for scope, _ in kernels][:3]}")
    small = graph.tensors[logits[0].outputs[0]].shape[1]
    strides = [s for s in (8, 16, 32) if -(-height // s) == small]
    if not strides:
        raise NameMapError(f"{path}: classifier map {small} rows for input {height}: no output stride 8/16/32")
    paddings = {op.options.get("padding") for _, op in kernels}
    if paddings != {"SAME"}:
        raise NameMapError(f"{path}: convolutions with padding {sorted(paddings)}; the builders use SAME")
    resizes = [op.options for op in graph.operators if op.name == "RESIZE_BILINEAR"]
    alignments = {Alignment.of_resize(align_corners=o["align_corners"], half_pixel_centers=o["half_pixel_centers"])
                  for o in resizes}
    if len(alignments) > 1:
        raise NameMapError(f"{path}: resizes with different alignments {sorted(map(str, alignments))}")
    weights = graph.tensors[logits[0].inputs[1]].dtype
    if weights == "float32" and logits[0].inputs[1] in producers:
        weights = graph.tensors[producers[logits[0].inputs[1]].inputs[0]].dtype  # float16 behind a DEQUANTIZE
    return GraphFacts(input_size=(height, width), output_stride=strides[0],
                      alignment=alignments.pop() if alignments else Alignment.HALF_PIXEL,
                      quantized=weights in ("int8", "uint8"), kind=f"tflite, {weights} weights")
