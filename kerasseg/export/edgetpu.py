"""The Edge TPU: run ``edgetpu_compiler`` when it is installed, and an op-by-op report either way.

The report reads the ``.tflite`` flatbuffer and checks every op of the main
graph against Coral's published table of operations the Edge TPU supports
("TensorFlow models on the Edge TPU", coral.ai/docs/edgetpu/models-intro) and
its general requirements: 8-bit tensors, static shapes, batch 1 (at most the
three innermost dimensions larger than 1). The compiler cuts the graph at the
first op it cannot map: that op and everything after it run on the CPU, so an
op counts as *mapped* only when it and every op before it are supported.
Coral's table says some ops (resizes, large reshapes) may still stay on the
CPU depending on their sizes. For resizes there is evidence of the size that
fails (``RESIZE_LIMIT`` below), so a resize whose output exceeds it counts as
refused and the graph splits there; other size-dependent ops get a note.

The report also counts the bytes that cross between host and accelerator per
frame: the input the Edge TPU reads, every tensor at the predicted CPU/TPU
split, and any output the Edge TPU writes. On a USB Accelerator these cross
the USB link; ``USB_RATES`` gives the effective rates used to time them.
"""
from __future__ import annotations

import collections
import dataclasses
import os
import re
import shutil
import subprocess
import tempfile

import numpy as np
from tensorflow.lite.tools import flatbuffer_utils

from kerasseg.export.tflite import tensor_type_name
from edge.files import write_bytes, write_json

COMPILER = "edgetpu_compiler"
EIGHT_BIT = ("INT8", "UINT8")
# Non-activation inputs (biases, shapes, sizes, axes) may be int32.
INDEX_TYPES = ("INT32",)

# Coral's op table, by TFLite builtin name: the constraint each op carries (None: none listed).
SUPPORTED = {
    "ADD": None, "AVERAGE_POOL_2D": "no fused activation", "CONCATENATION": "no fused activation",
    "CONV_2D": "same dilation in x and y", "DEPTHWISE_CONV_2D": "same dilation in x and y",
    "EXPAND_DIMS": None, "FULLY_CONNECTED": "default weights format", "L2_NORMALIZATION": None,
    "LOGISTIC": None, "LSTM": "unidirectional", "MAXIMUM": None, "MAX_POOL_2D": "no fused activation",
    "MEAN": "no reduction over the batch; a channel reduction needs a multiple of 4 channels", "MINIMUM": None,
    "MUL": None, "PACK": "not along the batch", "PAD": "not along the batch", "PRELU": "1-D alpha",
    "QUANTIZE": None, "REDUCE_MAX": "not over the batch", "REDUCE_MIN": "not over the batch", "RELU": None,
    "RELU6": None, "RELU_N1_TO_1": None, "RESHAPE": "may stay on the CPU for large tensors",
    "RESIZE_BILINEAR": "no half-pixel centres; may stay on the CPU depending on sizes",
    "RESIZE_NEAREST_NEIGHBOR": "no half-pixel centres; may stay on the CPU depending on sizes",
    "RSQRT": None, "SLICE": None, "SOFTMAX": "1-D input of at most 16,000 elements", "SPACE_TO_DEPTH": None,
    "SPLIT": None, "SQUARED_DIFFERENCE": None, "SQUEEZE": None, "STRIDED_SLICE": None, "SUB": None, "SUM": None,
    "TANH": None, "TRANSPOSE": None, "TRANSPOSE_CONV": None,
}
FUSED_ACTIVATION_NONE = 0
FUSED_RELU6 = 3  # schema ActivationFunctionType
# Ops outside Coral's table that models here use, with the public evidence that the compiler leaves them on the CPU.
UNSUPPORTED_EVIDENCE = {
    "HARD_SWISH": "MobileNetV3's h-swish; google-coral/edgetpu #272 lists its HARD_SWISH ops as run on the CPU "
                  "(compiler 15.0), and #353 advises MobileNetV3 minimalistic=True, which has none",
}
# A MUL of a map by a per-channel (1x1xC) gate: squeeze-excite or the LR-ASPP gate. Its ops are all on Coral's table;
# EfficientNet-Lite dropped squeeze-excite as "not well supported for some mobile accelerators", so it is noted.
GATE_NOTE = "a per-channel gate (squeeze-excite or LR-ASPP): on Coral's table, unconfirmed without the compiler"
# MobileNetV3's h-swish as our models export it (kerasseg.models.blocks.HardSwish): ADD 3 with a fused RELU6, and this
# MUL of the result by the ADD's own input. Coral's table has both ops; #272's reports are of the HARD_SWISH op.
H_SWISH_NOTE = "the MUL of a decomposed h-swish (ADD + RELU6, MUL): on Coral's table, unconfirmed without the compiler"

# The largest resize output side known to map. google-coral/edgetpu issue #31 ("ResizeBilinear only for small
# models?"): a 512x512 bilinear upsample was "not mapped due to some unspecified limitation" while 128x128 mapped;
# issue #187: a UNet failed to map at 256x256 input and mapped at 128x128. Coral's op table says resizes "might
# not be mapped depending on input/output size". So an output larger than 128 a side counts as likely refused.
RESIZE_LIMIT = 128
RESIZE_LIMIT_SOURCE = ("google-coral/edgetpu issues #31 (512x512 bilinear upsample not mapped, 128x128 mapped) "
                       "and #187 (UNet not mapped at 256x256 input, mapped at 128x128)")
# Effective bulk-transfer rates in bytes/s. USB 2 high speed signals 480 Mbit/s (60 MB/s); bulk transfers reach
# about 35 MB/s after protocol overhead, which matches the 5.5 MB/frame ~ 160 ms seen with a Coral USB
# Accelerator on USB 2. USB 3 Gen 1 signals 5 Gbit/s, 500 MB/s after 8b/10b coding; we assume 350 MB/s (70%),
# a typical bulk figure for USB 3 storage and cameras. Both are assumptions; a PCIe/M.2 Coral crosses no USB.
USB_RATES = {"usb2": 35e6, "usb3": 350e6}


@dataclasses.dataclass
class OpCheck:
    index: int
    op: str
    output_shape: list
    macs: int
    supported: bool
    reason: str = ""
    note: str = ""
    mapped: bool = False


@dataclasses.dataclass
class EdgeTPUReport:
    """Op-by-op Edge TPU compatibility of one ``.tflite`` file, with the compiler's verdict when it ran."""

    model: str
    ops: list
    compiler: dict
    transfers: list = dataclasses.field(default_factory=list)  # tensors crossing host <-> Edge TPU per frame

    @property
    def transfer_bytes(self) -> int:
        """Bytes per frame crossing between host and Edge TPU (input, split tensors, outputs)."""
        return int(sum(t["bytes"] for t in self.transfers))

    def transfer_ms(self) -> dict:
        """Milliseconds per frame those bytes take at each of ``USB_RATES``."""
        return {link: 1e3 * self.transfer_bytes / rate for link, rate in USB_RATES.items()}

    @property
    def first_unsupported(self) -> OpCheck | None:
        return next((op for op in self.ops if not op.supported), None)

    @property
    def mapped_op_share(self) -> float:
        return sum(op.mapped for op in self.ops) / max(len(self.ops), 1)

    @property
    def mapped_mac_share(self) -> float:
        total = sum(op.macs for op in self.ops)
        return sum(op.macs for op in self.ops if op.mapped) / total if total else 0.0

    def to_dict(self) -> dict:
        first = self.first_unsupported
        return {
            "model": self.model,
            "num_ops": len(self.ops),
            "mapped_ops": sum(op.mapped for op in self.ops),
            "mapped_op_share": self.mapped_op_share,
            "total_macs": int(sum(op.macs for op in self.ops)),
            "mapped_mac_share": self.mapped_mac_share,
            "first_unsupported": None if first is None else dataclasses.asdict(first),
            "compiler": self.compiler,
            "host_transfer": {"bytes_per_frame": self.transfer_bytes, "ms_per_frame": self.transfer_ms(),
                              "assumed_rates_bytes_per_s": dict(USB_RATES), "tensors": self.transfers},
            "ops": [dataclasses.asdict(op) for op in self.ops],
        }

    def save(self, path: str | os.PathLike) -> str:
        return write_json(os.fspath(path), self.to_dict())

    def summary(self, report_path: str | None = None) -> str:
        """A few lines for the terminal: the ops that map out of the total, which stay on the CPU and why, the
        bytes per frame, and where the op-by-op table is (``report_path``)."""
        mapped = sum(op.mapped for op in self.ops)
        if self.compiler.get("available"):
            source = (f"{COMPILER} (exit {self.compiler.get('returncode')}): {self.compiler.get('ops_on_tpu')} ops "
                      f"on the Edge TPU, {self.compiler.get('ops_on_cpu')} on the CPU")
        else:
            source = self.compiler.get("message") or f"{COMPILER} is not on PATH; counted from Coral's op table"
        lines = [f"Edge TPU: {mapped} of {len(self.ops)} ops would map ({100 * self.mapped_mac_share:.1f}% of the "
                 f"multiply-adds); {source}"]
        first = self.first_unsupported
        if first is None:
            lines.append("  on the CPU: nothing, every op is on Coral's list")
        else:
            lines.append(f"  on the CPU: #{first.index} {first.op}: {first.reason}")
            after = collections.Counter(op.op + ("" if op.supported else " (unsupported too)")
                                        for op in self.ops if op.index > first.index)
            if after:
                lines.append(f"  and the {sum(after.values())} ops after it, where the compiler cuts the graph: "
                             + ", ".join(f"{count} {name}" for name, count in after.items()))
        times = self.transfer_ms()
        lines.append(f"  host <-> Edge TPU per frame: {self.transfer_bytes:,d} bytes, {times['usb2']:.1f} ms at USB 2, "
                     f"{times['usb3']:.1f} ms at USB 3 (assumed rates)")
        if report_path:
            lines.append(f"  op by op: {report_path}")
        return "\n".join(lines)

    def format(self) -> str:
        lines = [f"Edge TPU report for {self.model}"]
        if self.compiler.get("available"):
            lines.append(f"{COMPILER}: ran (exit {self.compiler.get('returncode')}); "
                         f"{self.compiler.get('ops_on_tpu')} ops on the Edge TPU, "
                         f"{self.compiler.get('ops_on_cpu')} on the CPU")
        else:
            lines.append(f"{COMPILER}: NOT FOUND on PATH; this report comes from Coral's published op table "
                         f"and constraints, not from the compiler")
        lines.append(f"{'#':>3s} {'op':24s} {'output':18s} {'MACs':>12s}  status")
        for op in self.ops:
            status = "edge tpu" if op.mapped else ("cpu (after the split)" if op.supported else "CPU: " + op.reason)
            note = f"  [{op.note}]" if op.note and op.mapped else ""
            shape = "x".join(str(v) for v in op.output_shape)
            lines.append(f"{op.index:3d} {op.op:24.24s} {shape:18.18s} {op.macs:12,d}  {status}{note}")
        first = self.first_unsupported
        lines.append(f"ops that would map: {sum(op.mapped for op in self.ops)}/{len(self.ops)} "
                     f"({100 * self.mapped_op_share:.1f}%); multiply-adds that would map: "
                     f"{100 * self.mapped_mac_share:.1f}%")
        lines.append("every op is on the supported list" if first is None else
                     f"first unsupported op: #{first.index} {first.op} ({first.reason}); the graph splits there")
        crossing = ", ".join(f"{t['where']} {'x'.join(map(str, t['shape']))} {t['bytes']:,d} B" for t in self.transfers)
        times = self.transfer_ms()
        lines.append(f"host <-> Edge TPU per frame: {self.transfer_bytes:,d} bytes ({crossing or 'nothing maps'}); "
                     f"{times['usb2']:.1f} ms at USB 2, {times['usb3']:.1f} ms at USB 3 "
                     f"(assumed {USB_RATES['usb2'] / 1e6:.0f} and {USB_RATES['usb3'] / 1e6:.0f} MB/s effective)")
        return "\n".join(lines)


def _shape(graph, tensor_index) -> list:
    return [int(v) for v in graph.tensors[tensor_index].shape] if tensor_index >= 0 else []


def _macs(name: str, graph, op) -> int:
    inputs, outputs = list(op.inputs), list(op.outputs)
    out = _shape(graph, outputs[0]) if outputs else []
    if name == "CONV_2D":
        _, kh, kw, cin = _shape(graph, inputs[1])
        return int(np.prod(out)) * kh * kw * cin
    if name == "DEPTHWISE_CONV_2D":
        _, kh, kw, _ = _shape(graph, inputs[1])
        return int(np.prod(out)) * kh * kw
    if name == "TRANSPOSE_CONV":
        cout, kh, kw, _ = _shape(graph, inputs[1])
        return int(np.prod(_shape(graph, inputs[2]))) * kh * kw * cout
    if name == "FULLY_CONNECTED":
        units, depth = _shape(graph, inputs[1])
        return int(np.prod(out)) * depth
    return 0


def _check(name: str, graph, op, constants: dict, producers: dict) -> tuple[str, str]:
    """(reason it cannot map or "", note) for one op."""
    if name not in SUPPORTED:
        evidence = UNSUPPORTED_EVIDENCE.get(name)
        return f"{name} is not in Coral's table of supported operations" + (f" ({evidence})" if evidence else ""), ""
    tensors = [t for t in list(op.inputs) + list(op.outputs) if t >= 0]
    for position, t in enumerate(tensors):
        tensor = graph.tensors[t]
        label = _name(graph, t)
        kind = tensor_type_name(tensor.type)
        is_activation = t in list(op.outputs) or position == 0
        if kind not in EIGHT_BIT and (is_activation or kind not in INDEX_TYPES):
            return f"tensor {label!r} is {kind}; the Edge TPU runs 8-bit tensors only", ""
        signature = tensor.shapeSignature if tensor.shapeSignature is not None else tensor.shape
        if signature is not None and any(int(v) < 0 for v in signature):
            return f"tensor {label!r} has a dynamic shape {list(signature)}", ""
        shape = [int(v) for v in tensor.shape] if tensor.shape is not None else []
        if t not in constants and len(shape) > 3 and any(v > 1 for v in shape[:-3]):
            return f"tensor {label!r} has shape {shape}: only the 3 innermost dimensions may exceed 1", ""
    options = op.builtinOptions
    note = SUPPORTED[name] or ""
    if name in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        if options.dilationHFactor != options.dilationWFactor:
            return f"dilation {options.dilationHFactor}x{options.dilationWFactor} differs in y and x", ""
        note = ""
    if name in ("AVERAGE_POOL_2D", "MAX_POOL_2D", "CONCATENATION"):
        if options is not None and options.fusedActivationFunction != FUSED_ACTIVATION_NONE:
            return "has a fused activation", ""
        note = ""
    if name in ("RESIZE_BILINEAR", "RESIZE_NEAREST_NEIGHBOR"):
        if options is not None and options.halfPixelCenters:
            return "uses half-pixel centres", ""
        out = _shape(graph, op.outputs[0])
        if len(out) == 4 and max(out[1:3]) > RESIZE_LIMIT:
            return (f"likely refused by the compiler: output {out[1]}x{out[2]} is larger than {RESIZE_LIMIT} a side "
                    f"({RESIZE_LIMIT_SOURCE})"), ""
        note = "may stay on the CPU depending on input/output sizes"
    if name in ("MEAN", "SUM", "REDUCE_MAX", "REDUCE_MIN"):
        axes = constants.get(op.inputs[1])
        rank = len(_shape(graph, op.inputs[0]))
        axes = [] if axes is None else [int(a) % rank for a in np.ravel(axes)]
        if 0 in axes:
            return "reduces over the batch dimension", ""
        if name == "MEAN" and rank - 1 in axes and _shape(graph, op.inputs[0])[-1] % 4:
            return "reduces over channels that are not a multiple of 4", ""
        note = ""
    if name == "MUL" and _is_gate(graph, op):
        note = GATE_NOTE
    if name == "MUL" and _is_h_swish(graph, op, producers):
        note = H_SWISH_NOTE
    if name == "SOFTMAX":
        shape = _shape(graph, op.inputs[0])
        if sum(v > 1 for v in shape) > 1 or int(np.prod(shape)) > 16000:
            return f"input {shape} is not 1-D with at most 16,000 elements", ""
        note = ""
    return "", note


def _is_gate(graph, op) -> bool:
    """A MUL of a spatial map by a 1x1 (per-channel) tensor computed in the graph."""
    shapes = [_shape(graph, t) for t in op.inputs if t >= 0]
    return (len(shapes) == 2 and all(len(s) == 4 for s in shapes)
            and sorted(int(np.prod(s[1:3])) > 1 for s in shapes) == [False, True])


def _is_h_swish(graph, op, producers: dict) -> bool:
    """A MUL of ``x`` by ``RELU6(x + 3)`` (an ADD with a fused RELU6 reading ``x``), in either order."""
    inputs = [t for t in op.inputs if t >= 0]
    if len(inputs) != 2:
        return False
    for gate, x in (inputs, inputs[::-1]):
        add = producers.get(gate)
        if (add is not None and add[0] == "ADD" and x in list(add[1].inputs)
                and add[1].builtinOptions is not None and add[1].builtinOptions.fusedActivationFunction == FUSED_RELU6):
            return True
    return False


def analyze(content: bytes, *, name: str = "model.tflite") -> EdgeTPUReport:
    """Check every op of the main graph of ``content`` against the Edge TPU's op table."""
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    graph = model.subgraphs[0]
    constants = {}  # constant tensors by index (weights; int32 axes and sizes decoded)
    for index, tensor in enumerate(graph.tensors):
        data = model.buffers[tensor.buffer].data if tensor.buffer < len(model.buffers) else None
        if data is not None:
            constants[index] = (np.frombuffer(bytes(np.asarray(data, np.uint8)), dtype=np.int32)
                                if tensor_type_name(tensor.type) == "INT32" else None)
    names = [flatbuffer_utils.opcode_to_name(model, op.opcodeIndex) for op in graph.operators]
    producers = {t: (op_name, op) for op_name, op in zip(names, graph.operators) for t in op.outputs}
    checks, split = [], False
    for index, (op_name, op) in enumerate(zip(names, graph.operators)):
        reason, note = _check(op_name, graph, op, constants, producers)
        split = split or bool(reason)
        out = _shape(graph, op.outputs[0]) if len(op.outputs) else []
        checks.append(OpCheck(index=index, op=op_name, output_shape=out, macs=_macs(op_name, graph, op),
                              supported=not reason, reason=reason, note=note, mapped=not split))
    return EdgeTPUReport(model=name, ops=checks, compiler={"available": False},
                         transfers=_transfers(graph, checks))


def _tensor_bytes(graph, index: int) -> int:
    kind = tensor_type_name(graph.tensors[index].type)
    itemsize = 1 if kind in EIGHT_BIT else 2 if kind in ("INT16", "FLOAT16") else 8 if kind == "INT64" else 4
    return int(np.prod(_shape(graph, index))) * itemsize


def _transfers(graph, checks: list) -> list:
    """Tensors crossing host <-> Edge TPU per frame: inputs read by mapped ops, mapped ops' tensors read on the
    CPU after the split, and graph outputs written by mapped ops."""
    mapped = {check.index for check in checks if check.mapped}
    produced_on_tpu = {t for i in mapped for t in graph.operators[i].outputs if t >= 0}
    read_on_cpu = {t for i, op in enumerate(graph.operators) if i not in mapped for t in op.inputs if t >= 0}
    read_on_tpu = {t for i in mapped for t in graph.operators[i].inputs if t >= 0}
    crossing = [("input", t) for t in graph.inputs if t in read_on_tpu]
    crossing += [("split", t) for t in sorted(produced_on_tpu & read_on_cpu)]
    crossing += [("output", t) for t in graph.outputs if t in produced_on_tpu and t not in read_on_cpu]
    return [{"where": where, "tensor": _name(graph, t), "shape": _shape(graph, t), "bytes": _tensor_bytes(graph, t)}
            for where, t in crossing]


def _name(graph, index: int) -> str:
    name = graph.tensors[index].name
    return name.decode("utf-8", "replace") if isinstance(name, bytes) else str(name)


def compiler_path() -> str | None:
    return shutil.which(COMPILER)


_TABLE_ROW = re.compile(r"^(?P<op>[A-Z][A-Z0-9_]+)\s+(?P<count>\d+)\s+(?P<status>\S.*)$")


def parse_compiler_log(log: str) -> dict:
    """The op table and totals from ``edgetpu_compiler -s`` output."""
    rows = []
    for line in log.splitlines():
        match = _TABLE_ROW.match(line.strip())
        if match:
            rows.append({"op": match["op"], "count": int(match["count"]), "status": match["status"].strip()})
    result = {"ops": rows}
    for key, pattern in (("ops_on_tpu", r"operations that will run on Edge TPU:\s*(\d+)"),
                         ("ops_on_cpu", r"operations that will run on CPU:\s*(\d+)")):
        match = re.search(pattern, log)
        result[key] = int(match.group(1)) if match else None
    return result


def compiled_path(tflite_path: str, *, out_dir: str | None = None) -> str:
    """Where ``edgetpu_compiler`` writes the compiled ``tflite_path``: ``NAME_edgetpu.tflite`` in ``out_dir``."""
    out_dir = os.path.dirname(tflite_path) if out_dir is None else out_dir
    return os.path.join(out_dir, os.path.splitext(os.path.basename(tflite_path))[0] + "_edgetpu.tflite")


def compile_model(tflite_path: str, *, out_dir: str, overwrite: bool = False) -> dict:
    """Run ``edgetpu_compiler`` on ``tflite_path`` into ``out_dir``; returns what its log says.

    Without the compiler on PATH returns ``{"available": False, "message": ...}``.
    """
    path = compiler_path()
    if path is None:
        return {"available": False,
                "message": f"{COMPILER} is not on PATH (it runs on x86-64 Debian/Ubuntu; see the README's Edge TPU "
                           f"section); the op report comes from Coral's op table, not the compiler"}
    target = compiled_path(tflite_path, out_dir=out_dir)
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(f"{target} exists; pass --overwrite to replace it")
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        proc = subprocess.run([path, "-s", "-o", tmp, tflite_path], capture_output=True, text=True, check=False)
        log = proc.stdout + proc.stderr
        produced = os.path.join(tmp, os.path.basename(target))
        if proc.returncode == 0 and os.path.exists(produced):
            with open(produced, "rb") as f:
                write_bytes(target, f.read())
    result = {"available": True, "returncode": proc.returncode, "log": log,
              "output": target if proc.returncode == 0 else None}
    result.update(parse_compiler_log(log))
    return result


# Fine-tuning after the switch to legacy alignment (see realign). On a DeepLabv3+ MobileNetV2 run at 256 px (README,
# Edge TPU) 100 steps cut the full head's drop from 2.11 to 0.57 points.
REALIGN_STEPS = 100
REALIGN_LEARNING_RATE = 1e-4


def half_pixel_resizes(model) -> list[str]:
    """Names of ``model``'s resize layers with half-pixel centres: those the Edge TPU rebuild changes."""
    from kerasseg.models.layers import ResizeToReference
    return [layer.name for layer in model.layers
            if isinstance(layer, ResizeToReference) and layer.half_pixel_centers]


def realign(model, batches, *, steps: int, ignore_label: int) -> float:
    """Fine-tune the Edge-TPU-friendly ``model`` for ``steps`` training batches; returns the last loss.

    Weights trained with half-pixel resizes see features shifted by a fraction of
    a pixel at each legacy resize; a short fine-tune at a low rate lets them adapt.
    Batch normalisation stays frozen (inference mode): a few small batches would
    only add noise to its statistics.
    """
    from kerasseg.backend import keras
    from kerasseg.export import qat
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False
    return qat.fine_tune(model, batches, steps=steps, learning_rate=REALIGN_LEARNING_RATE, ignore_label=ignore_label)
