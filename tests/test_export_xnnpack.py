"""MobileNetV3's h-swish in int8 TFLite runs inside XNNPACK (LiteRT's CPU delegate), post-training and QAT.

TFLite's converter fuses the textbook h-swish into one HARD_SWISH op, which XNNPACK does not take in int8: each
one splits the graph. Our HardSwish (kerasseg.models.blocks) computes the same function in an order the converter
leaves as ADD + RELU6 and MUL ops. The whole MobileNetV3 models are checked in test_mnv3_pipeline.py.
"""
import numpy as np
import pytest

from edge.benchmark import delegation
from edge.files import write_bytes
from kerasseg.backend import keras, layers, tf
from kerasseg.export import edgetpu, qat, tflite
from kerasseg.export.modes import Mode
from kerasseg.models import blocks
from mnv3_helpers import h_swish_gate_ranges

pytestmark = pytest.mark.slow  # two tiny int8 conversions; a tiny quantization-aware model
SIZE = 16


def _textbook(x):
    return layers.Lambda(lambda t: t * tf.nn.relu6(t + 3.0) / 6.0)(x)


def _ours(x):
    return blocks.HardSwish()(x)


def _tiny(hard_swish):
    """Conv, h-swish read by a depthwise conv only, depthwise conv, h-swish read by squeeze-excite (MEAN and MUL),
    1x1 conv. Inputs are [0, 1] pixels, so the h-swish inputs span its kinks."""
    image = keras.Input((SIZE, SIZE, 3), name="image")
    x = layers.Rescaling(1 / 255)(image)
    x = layers.Conv2D(16, 3, padding="same", kernel_initializer=keras.initializers.RandomNormal(0, 2, seed=0))(x)
    x = layers.DepthwiseConv2D(3, padding="same")(hard_swish(x))
    x = blocks.squeeze_excite(hard_swish(x), "se/")
    return keras.Model(image, layers.Conv2D(4, 1)(x))


def _images(count):
    return np.random.default_rng(0).uniform(0, 255, (count, SIZE, SIZE, 3)).astype(np.float32)


def _convert(model, mode, tmp_path, name):
    content = tflite.convert(model, mode=mode, input_size=(SIZE, SIZE),
                             calibration=lambda: (image[None] for image in _images(4)))
    ops = [op.op for op in edgetpu.analyze(content).ops]
    return ops, delegation(write_bytes(str(tmp_path / f"{name}.tflite"), content))


def test_textbook_h_swish_leaves_xnnpack_and_ours_stays_inside(tmp_path):
    ops, delegated = _convert(_tiny(_textbook), Mode.INT8, tmp_path, "textbook")
    assert ops.count("HARD_SWISH") == 2 and delegated.left_out.get("HARD_SWISH") == 2 and delegated.partitions == 3

    ops, delegated = _convert(_tiny(_ours), Mode.INT8, tmp_path, "ours")
    assert "HARD_SWISH" not in ops
    # One partition; only the uint8 <-> int8 QUANTIZE at the two ends stays out (XNNPACK takes no uint8 input).
    assert delegated.partitions == 1 and delegated.left_out == {"QUANTIZE": 2}, delegated.describe()
    # Each h-swish is ADD (+ RELU6), MUL, MUL by 1/6; the converter folds the 1/6 into the depthwise conv after the
    # first, its only reader, not after the second (two readers). Squeeze-excite adds h-sigmoid's MUL and the gate.
    assert ops.count("ADD") == 2 and ops.count("MUL") == (1 + 2) + 2
    # The gates keep their [0, 6] (tflite.pinned_ranges); calibration alone would give them the products' range.
    assert h_swish_gate_ranges(str(tmp_path / "ours.tflite")) == [(0.0, 6.0), (0.0, 6.0)]


def test_quantization_aware_h_swish_quantizes_its_int8_tensors():
    """The QAT export of the fixture's LR-ASPP MobileNetV3-Small, one XNNPACK partition with [0, 6] gates, is
    checked in test_mnv3_pipeline.py."""
    quantized = qat.quantize_aware(_tiny(_ours))
    batches = tf.data.Dataset.from_tensor_slices((_images(8), np.zeros((8, SIZE, SIZE), np.int32))).batch(4).repeat()
    assert qat.warm_up_ranges(quantized, batches) == qat.RANGE_WARMUP_BATCHES
    ranges = {v.name.rsplit(":", 1)[0]: float(v.numpy()) for v in quantized.variables
              if "hard_" in v.name and v.name.endswith(("_min:0", "_max:0"))}
    # h-swish: the product, an int8 tensor TFLite keeps (the output is the product times 1/6, folded into the next
    # conv), learnt from data; its gate ReLU6(x + 3) is quantized over [0, 6], a fixed range with no variables.
    # h-sigmoid: its gate and its output, learnt.
    swish = sorted(name.rsplit("/", 1)[1] for name in ranges if "hard_swish" in name)
    assert swish == ["product_max", "product_max", "product_min", "product_min"]
    assert sorted(name.rsplit("/", 1)[1] for name in ranges if "hard_sigmoid" in name) == [
        "gate_max", "gate_min", "output_max", "output_min"]
    # Warmed up from the data, not tfmot's initial [-6, 6]: the products pass 6.
    assert all(value > 6.5 for name, value in ranges.items() if name.endswith("product_max"))

