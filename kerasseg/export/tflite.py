"""Keras model -> ``.tflite`` bytes for each :class:`Mode`, and checks on the result.

Every artifact takes raw RGB pixels as uint8 at a fixed size, batch 1: the
model's own normalisation layer runs inside the graph. Float modes cast the
uint8 input to float32 first; full-integer modes quantize everything to int8
with a uint8 input of scale 1 and zero point 0, so a device feeds pixels as
they are, and a uint8 output (MediaPipe's ImageSegmenter misreads int8 scores).
The output is what the model ends in (see ``kerasseg.export.heads``): per-pixel
class scores ("logits"), or class ids when the graph ends in ARG_MAX.
"""
from __future__ import annotations

import contextlib
import functools
from typing import Callable, Iterable, Iterator

import numpy as np

from kerasseg.backend import tf
from kerasseg.export.modes import Mode
from edge import console
from edge.artifact import parse_size

# Tensor types allowed inside a full-integer graph (int32 for biases and shapes).
INTEGER_TYPES = ("INT8", "UINT8", "INT32", "INT16", "INT64", "BOOL")
# A full-integer model's scores output: uint8 by default, since MediaPipe's ImageSegmenter misreads int8.
SCORES_TYPES = {"uint8": tf.uint8, "int8": tf.int8}


def check_input_size(input_size) -> tuple[int, int]:
    return parse_size(input_size, name="input_size")


def serving_function(model, *, input_size, input_dtype=tf.uint8):
    """A concrete function running ``model`` on one image of static shape (1, H, W, 3)."""
    height, width = check_input_size(input_size)

    @tf.function(input_signature=[tf.TensorSpec([1, height, width, 3], input_dtype, name="image")])
    def serve(image):
        output = model(tf.cast(image, tf.float32), training=False)
        return {"class_ids" if output.dtype.is_integer else "logits": output}

    try:
        return serve.get_concrete_function()
    except (ValueError, tf.errors.InvalidArgumentError) as err:
        raise ValueError(
            f"input_size: the model cannot take a {height}x{width} input ({str(err).splitlines()[0]})") from None


def calibration_images(batches: Iterable, *, steps: int) -> Iterator[np.ndarray]:
    """Yield ``steps`` single images (1, H, W, 3) float32 from a pipeline of (image, mask) batches.

    The first image gets one pixel at 0 and one at 255 so that the calibrated
    input range is exactly [0, 255]: the uint8 input then has scale 1 and zero
    point 0 and the device feeds raw pixels.
    """
    if steps < 1:
        raise ValueError(f"calibration_steps: must be at least 1, got {steps}")
    produced = 0
    for batch in batches:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        for image in np.asarray(images, dtype=np.float32):
            image = np.array(image[None], dtype=np.float32)
            if produced == 0:
                image[0, 0, 0, :] = 0.0
                image[0, 0, -1, :] = 255.0
            yield image
            produced += 1
            if produced >= steps:
                return
    if produced == 0:
        raise ValueError("calibration data: the training pipeline yielded no image")


@contextlib.contextmanager
def pinned_ranges(model, *, pin: bool = True):
    """While inside (and ``pin``), each identity hook of ``model``'s layers whose ``INT8_TENSORS`` give a range
    (kerasseg.models.blocks: h-swish's gate, ReLU6(x + 3) in [0, 6]) fake-quantizes to that range, for a
    post-training int8 conversion traced meanwhile. The converter takes a fake quant's range as the tensor's.

    Calibration alone gets that tensor wrong: in h-swish's graph (an ADD with a fused RELU6 whose output a MUL
    multiplies by the ADD's own input), the converter gives the ADD's output the MUL's range, about 6 times the
    input's. On a trained LR-ASPP MobileNetV3-Small that left the [0, 6] gate about 40 of its 256 levels, and the
    int8 parity drop grew from 2.0 to 3.2 points.
    """
    hooks = [(layer, hook, known) for layer in (model.submodules if pin else ())
             for hook, known in getattr(layer, "INT8_TENSORS", {}).items() if known is not None]
    originals = [getattr(layer, hook) for layer, hook, _ in hooks]
    for layer, hook, (minimum, maximum) in hooks:
        setattr(layer, hook, functools.partial(tf.quantization.fake_quant_with_min_max_args, min=minimum, max=maximum,
                                               num_bits=8))
    try:
        yield len(hooks)
    finally:
        for (layer, hook, _), original in zip(hooks, originals):
            setattr(layer, hook, original)


def variables_holder(model) -> tf.Module:
    """The converter's trackable object for ``model``'s functions: a module that holds only its variables.

    The converter saves its functions as a SavedModel with this object. Given the Keras model itself, that
    save serialises every layer (tf_keras traces each layer's call again) and the load revives them, which took
    most of each conversion's time (DeepLabv3+ MobileNetV2 at 64x64: float32 30 s -> 5 s, QAT int8 140 s -> 19 s)
    for the same bytes.
    """
    holder = tf.Module()
    holder.model_variables = list(model.variables)
    return holder


def convert(model, *, mode: Mode, input_size, calibration: Callable[[], Iterable[np.ndarray]] | None = None,
            scores_type: str = "uint8") -> bytes:
    """Convert ``model`` (input float RGB [0, 255], output scores or class ids) to TFLite bytes.

    ``calibration`` is a callable returning an iterable of (1, H, W, 3) float32
    images; full-integer modes need it. For ``Mode.QAT`` pass the
    quantization-aware model: its fake-quant ranges are used, and calibration
    only fills in ranges the training did not record. ``scores_type`` ("uint8" or "int8") is the
    type of a full-integer model's scores output (class ids stay as the graph makes them).
    """
    mode = Mode.parse(mode)
    if scores_type not in SCORES_TYPES:
        raise ValueError(f"scores_type: expected one of {list(SCORES_TYPES)}, got {scores_type!r}")
    if mode.full_integer:
        if calibration is None:
            raise ValueError(f"calibration: mode {mode.value} needs representative training images, got None")
        with pinned_ranges(model, pin=mode is not Mode.QAT):  # a QAT model has its fake quants there already
            function = serving_function(model, input_size=input_size, input_dtype=tf.float32)
    else:
        function = serving_function(model, input_size=input_size, input_dtype=tf.uint8)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([function], variables_holder(model))
    if mode is Mode.FLOAT16:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode is Mode.DYNAMIC_RANGE:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode.full_integer:
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = lambda: ([image] for image in calibration())
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.uint8
        if model.outputs[0].dtype.is_floating:  # scores; class ids leave ARG_MAX as integers already
            converter.inference_output_type = SCORES_TYPES[scores_type]
    try:
        with console.native_output():  # the quantizer prints its settings ("fully_quantize: 0, ...")
            return bytes(converter.convert())
    except Exception as err:  # tf.lite ConverterError
        if "FakeQuantWithMinMaxVarsPerChannel" in str(err):
            raise RuntimeError(
                f"mode {mode.value}: the TFLite converter left a per-channel fake-quant op unfolded. It does so "
                f"for very large kernels (kerasseg.export.qat quantizes kernels above PER_TENSOR_ABOVE weights "
                f"per tensor to avoid it); use --int8 (post-training) for this model.") from None
        raise


def tensor_type_name(tensor_type: int) -> str:
    """"INT8", "FLOAT32", ... for a schema TensorType value."""
    from tensorflow.lite.tools import flatbuffer_utils
    return str(flatbuffer_utils.type_to_name(tensor_type))


def float_ops(content: bytes) -> list[dict]:
    """Ops of the main subgraph that read or write a floating-point tensor.

    A full-integer model has none: not even a QUANTIZE/DEQUANTIZE pair at its ends.
    """
    from tensorflow.lite.tools import flatbuffer_utils
    model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    graph = model.subgraphs[0]
    found = []
    for index, op in enumerate(graph.operators):
        name = flatbuffer_utils.opcode_to_name(model, op.opcodeIndex)
        tensors = [t for t in list(op.inputs) + list(op.outputs) if t >= 0]
        types = sorted({tensor_type_name(graph.tensors[t].type) for t in tensors})
        floats = [t for t in types if t not in INTEGER_TYPES]
        if floats:
            found.append({"index": index, "op": name, "types": floats})
    return found
