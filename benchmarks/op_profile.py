"""A per-op profile of a ``.tflite`` model under LiteRT, where the Python interpreter has no profiler.

``split`` (TensorFlow side: it edits the flatbuffer with ``tensorflow.lite.tools.flatbuffer_utils``) writes one
model per operator: that op alone, its constant inputs (weights, biases, shapes) kept, its other inputs made
model inputs, with their shapes, types and quantization. ``time_ops`` (LiteRT only) times each on random inputs,
1 thread, the CPU time of the invoking thread, in alternating rounds, with the whole model in the same rounds; each
op runs in XNNPACK when XNNPACK takes it, alone as a one-op partition. The ops' sum exceeds the whole model's
invoke by the per-invoke overhead and the caches the whole model keeps warm between ops, and says where the time
goes. ``role`` names what each op is for, from the layer names the converter gives its output tensor.
"""
from __future__ import annotations

import copy
import os
import re
import statistics
import time

# (role, pattern on the op's output tensor name), first match wins; the names are the Keras layers' (the converter
# joins fused layers' names with ";", the first is the op's own). BLOCK: MobileNetV3's "expanded_conv_6/expand",
# MobileNetV2's "block_6_expand".
BLOCK = r"(expanded_conv(_\d+)?|block_\d+)[/_]"
ROLES = (
    ("h-swish", r"hard_swish"),
    ("squeeze-excite", r"squeeze_excite"),
    ("input normalisation", r"normalize"),
    ("expand 1x1 conv", BLOCK + r"expand(?![a-z])"),
    ("depthwise conv", BLOCK + r"depthwise(?![a-z])"),
    ("project 1x1 conv", BLOCK + r"project(?![a-z])"),
    ("residual add", BLOCK + r"add(?![a-z])"),
    ("stem conv", r"/(Conv/|Conv1_|bn_Conv1)"),
    ("last 1x1 conv (Conv_1)", r"/Conv_1/"),
    ("head", r"lraspp|classifier|logits|aspp|image_pooling|concat_projection|decoder"),
)


def role(op: str, tensor: str) -> str:
    """What an op is for: one of ``ROLES``, "uint8 <-> int8 quantize", or "other OP". The model's last ops before
    the output QUANTIZE write tensors the converter names after the signature ("StatefulPartitionedCall:0"): the
    head's."""
    if op == "QUANTIZE":
        return "uint8 <-> int8 quantize"
    name = tensor.split(";")[0]
    found = next((label for label, pattern in ROLES if re.search(pattern, name, re.IGNORECASE)), None)
    return found or ("head" if name.startswith("StatefulPartitionedCall") else f"other {op}")


def split(content: bytes) -> list[dict]:
    """One single-op model per operator of ``content``'s main graph: [{"index", "op", "tensor", "content"}]."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    graph = model.subgraphs[0]

    def constant(t):
        buffer = graph.tensors[t].buffer
        return 0 < buffer < len(model.buffers) and model.buffers[buffer].data is not None \
            and len(model.buffers[buffer].data) > 0

    ops = []
    for index, op in enumerate(graph.operators):
        used = list(dict.fromkeys(t for t in list(op.inputs) + list(op.outputs) if t >= 0))
        single = schema.ModelT()
        single.version, single.operatorCodes, single.buffers = model.version, model.operatorCodes, [schema.BufferT()]
        sub = schema.SubGraphT()
        sub.tensors = []
        for t in used:
            tensor = copy.copy(graph.tensors[t])
            single.buffers.append(model.buffers[tensor.buffer] if constant(t) else schema.BufferT())
            tensor.buffer = len(single.buffers) - 1
            sub.tensors.append(tensor)
        position = {t: i for i, t in enumerate(used)}
        alone = copy.copy(op)
        alone.inputs = [position[t] if t >= 0 else -1 for t in op.inputs]
        alone.outputs = [position[t] for t in op.outputs]
        sub.operators = [alone]
        sub.inputs = [position[t] for t in dict.fromkeys(op.inputs) if t >= 0 and not constant(t)]
        sub.outputs = list(alone.outputs)
        single.subgraphs = [sub]
        name = graph.tensors[op.outputs[0]].name
        ops.append({"index": index, "op": flatbuffer_utils.opcode_to_name(model, op.opcodeIndex),
                    "tensor": name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name),
                    "content": bytes(flatbuffer_utils.convert_object_to_bytearray(single))})
    return ops


def write_split(content: bytes, folder: str) -> list[dict]:
    """``split`` into ``folder``: [{"index", "op", "tensor", "path"}]."""
    os.makedirs(folder, exist_ok=True)
    rows = []
    for op in split(content):
        path = os.path.join(folder, f"op{op['index']:03d}_{op['op']}.tflite")
        with open(path, "wb") as f:
            f.write(op.pop("content"))
        rows.append({**op, "path": path})
    return rows


def _interpreter(path: str):
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    rng = np.random.default_rng(0)
    for detail in interpreter.get_input_details():
        dtype = np.dtype(detail["dtype"])
        if dtype.kind in "iu":
            info = np.iinfo(dtype)
            value = rng.integers(info.min, int(info.max) + 1, detail["shape"]).astype(dtype)
        else:
            value = rng.uniform(-1, 1, detail["shape"]).astype(dtype)
        interpreter.set_tensor(detail["index"], value)
    interpreter.invoke()  # warm-up: XNNPACK packs the weights on the first run
    return interpreter


def time_ops(rows: list[dict], whole: str, *, rounds: int = 5, runs: int = 3) -> tuple[list[float], float]:
    """(median CPU ms of each op's model, median CPU ms of the whole model ``whole``), timed in alternating rounds
    of ``runs`` invokes each."""
    interpreters = [_interpreter(row["path"]) for row in rows] + [_interpreter(whole)]
    times = [[] for _ in interpreters]
    for _ in range(rounds):
        for interpreter, values in zip(interpreters, times):
            for _ in range(runs):
                start = time.thread_time()
                interpreter.invoke()
                values.append(time.thread_time() - start)
    medians = [1e3 * statistics.median(values) for values in times]
    return medians[:-1], medians[-1]
