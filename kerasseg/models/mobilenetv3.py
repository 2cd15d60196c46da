"""MobileNetV3-Large and -Small backbones, full and minimalistic.

Howard, Sandler, Chu, Chen, Chen, Tan, Wang, Zhu, Pang, Vasudevan, Le, Adam, "Searching for MobileNetV3",
ICCV 2019, https://arxiv.org/abs/1905.02244

- Blocks, widths, kernels, squeeze-excite and activations are the paper's Tables 1 and 2, with
  keras.applications' channel rounding and layer names (``Conv``, ``expanded_conv_N/expand``,
  ``.../squeeze_excite/Conv``, ``Conv_1``), so its ImageNet weight files load by name.
- h-swish is ``x * ReLU6(x + 3) / 6`` (:class:`HardSwish`; TFLite fuses it into one HARD_SWISH op); the
  squeeze-excite gate is h-sigmoid ``ReLU6(x + 3) / 6`` (:class:`HardSigmoid`) of a 1x1 conv, ReLU, 1x1 conv
  on the globally pooled features, with a quarter of the expanded channels (rounded to 8).
- ``minimalistic`` (keras.applications and the TF model zoo): no squeeze-excite, ReLU everywhere, 3x3
  depthwise kernels; the same widths. The Edge-TPU-friendly variant.
- Output stride: the last stage (and, for output stride 8, the one before) runs with stride 1 and dilated
  depthwise convolutions (``AtrousSchedule``, as for the other backbones; torchvision also dilates the block
  whose stride it drops), as the paper's segmentation models do.
- Features: "stride4" and "stride8" are the last block outputs at those strides (the DeepLabv3+ decoder
  and LR-ASPP read them), "out" is ``Conv_1`` (960 or 576 channels x alpha) at the output stride.
  torchvision's LR-ASPP taps the first block of the stride-8 stage instead of its last (same channels).
"""
from __future__ import annotations

from kerasseg.backend import keras, layers, tf
from kerasseg.models.backbones import AtrousSchedule, make_divisible

MOBILENETV3_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.25)
_register = keras.saving.register_keras_serializable(package="kerasseg")


@_register
class HardSwish(keras.layers.Layer):
    """h-swish, ``x * ReLU6(x + 3) / 6`` (the paper's section 5.2); the TFLite converter fuses it into HARD_SWISH."""

    def call(self, inputs):
        return inputs * tf.nn.relu6(inputs + 3.0) * (1.0 / 6.0)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)


@_register
class HardSigmoid(keras.layers.Layer):
    """h-sigmoid, ``ReLU6(x + 3) / 6``, the squeeze-excite gate. In TFLite the + 3 and the ReLU6 fold into the
    convolution before it (an ADD with a fused RELU6 after quantization-aware training), then one MUL."""

    def call(self, inputs):
        return tf.nn.relu6(inputs + 3.0) * (1.0 / 6.0)

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)


CUSTOM_OBJECTS = {"HardSwish": HardSwish, "HardSigmoid": HardSigmoid}

# One row per block, keras.applications' blocks 0..N: (expansion ratio, output channels, kernel, stride,
# squeeze-excite, activation). Kernel "k" is 5 (3 when minimalistic); activation "hs" is h-swish (ReLU when
# minimalistic); squeeze-excite is dropped when minimalistic.
LARGE_BLOCKS = (
    (1, 16, 3, 1, False, "relu"), (4, 24, 3, 2, False, "relu"), (3, 24, 3, 1, False, "relu"),
    (3, 40, "k", 2, True, "relu"), (3, 40, "k", 1, True, "relu"), (3, 40, "k", 1, True, "relu"),
    (6, 80, 3, 2, False, "hs"), (2.5, 80, 3, 1, False, "hs"), (2.3, 80, 3, 1, False, "hs"),
    (2.3, 80, 3, 1, False, "hs"), (6, 112, 3, 1, True, "hs"), (6, 112, 3, 1, True, "hs"),
    (6, 160, "k", 2, True, "hs"), (6, 160, "k", 1, True, "hs"), (6, 160, "k", 1, True, "hs"),
)
SMALL_BLOCKS = (
    (1, 16, 3, 2, True, "relu"), (72 / 16, 24, 3, 2, False, "relu"), (88 / 24, 24, 3, 1, False, "relu"),
    (4, 40, "k", 2, True, "hs"), (6, 40, "k", 1, True, "hs"), (6, 40, "k", 1, True, "hs"),
    (3, 48, "k", 1, True, "hs"), (3, 48, "k", 1, True, "hs"), (6, 96, "k", 2, True, "hs"),
    (6, 96, "k", 1, True, "hs"), (6, 96, "k", 1, True, "hs"),
)
STEM_CHANNELS = 16  # not scaled by alpha, as in keras.applications
LAST_CONV_EXPANSION = 6  # Conv_1: 6x the last block's channels (960 for Large, 576 for Small)


def _bn(name):
    return layers.BatchNormalization(epsilon=1e-3, momentum=0.999, name=name + "/BatchNorm")


def _activation(x, kind, name):
    if kind == "hs":
        return HardSwish(name=name + "/hard_swish")(x)
    return layers.ReLU(name=name + "/relu")(x)


def _squeeze_excite(x, prefix):
    """Pool, 1x1 conv to a quarter of the channels, ReLU, 1x1 conv back, h-sigmoid, multiply."""
    channels = x.shape[-1]
    gate = layers.GlobalAveragePooling2D(keepdims=True, name=prefix + "squeeze_excite/AvgPool")(x)
    gate = layers.Conv2D(make_divisible(channels * 0.25), 1, name=prefix + "squeeze_excite/Conv")(gate)
    gate = layers.ReLU(name=prefix + "squeeze_excite/Relu")(gate)
    gate = layers.Conv2D(channels, 1, name=prefix + "squeeze_excite/Conv_1")(gate)
    gate = HardSigmoid(name=prefix + "squeeze_excite/hard_sigmoid")(gate)
    return layers.Multiply(name=prefix + "squeeze_excite/Mul")([x, gate])


def _block(x, row, *, block_id, alpha, minimalistic, schedule):
    """One inverted residual: 1x1 expand, depthwise (strided or dilated), squeeze-excite, 1x1 project, add."""
    expansion, filters, kernel, stride, se, activation = row
    kernel = 3 if minimalistic or kernel == 3 else 5
    activation = "relu" if minimalistic else activation
    prefix = f"expanded_conv_{block_id}/" if block_id else "expanded_conv/"
    inputs, in_channels = x, x.shape[-1]
    if block_id:
        x = layers.Conv2D(make_divisible(in_channels * expansion), 1, use_bias=False, name=prefix + "expand")(x)
        x = _activation(_bn(prefix + "expand")(x), activation, prefix + "expand")
    layer_stride, rate = schedule(stride)
    x = layers.DepthwiseConv2D(kernel, strides=layer_stride, dilation_rate=rate, padding="same", use_bias=False,
                               name=prefix + "depthwise")(x)
    x = _activation(_bn(prefix + "depthwise")(x), activation, prefix + "depthwise")
    if se and not minimalistic:
        x = _squeeze_excite(x, prefix)
    out_channels = make_divisible(filters * alpha)
    x = _bn(prefix + "project")(layers.Conv2D(out_channels, 1, use_bias=False, name=prefix + "project")(x))
    if stride == 1 and in_channels == out_channels:
        x = layers.Add(name=prefix + "Add")([inputs, x])
    return x


def _mobilenetv3(x, blocks, *, output_stride, alpha, minimalistic):
    schedule = AtrousSchedule(output_stride)
    stride, _ = schedule(2)
    x = layers.Conv2D(STEM_CHANNELS, 3, strides=stride, padding="same", use_bias=False, name="Conv")(x)
    x = _activation(_bn("Conv")(x), "relu" if minimalistic else "hs", "Conv")
    features = {}
    for block_id, row in enumerate(blocks):
        if row[3] == 2 and schedule.current_stride >= 4:
            features.setdefault(f"stride{schedule.current_stride}", x)  # the stage's last block output
        x = _block(x, row, block_id=block_id, alpha=alpha, minimalistic=minimalistic, schedule=schedule)
    x = layers.Conv2D(make_divisible(x.shape[-1] * LAST_CONV_EXPANSION), 1, use_bias=False, name="Conv_1")(x)
    features["out"] = _activation(_bn("Conv_1")(x), "relu" if minimalistic else "hs", "Conv_1")
    return features


def mobilenetv3_large(x, *, output_stride=16, alpha=1.0, minimalistic=False):
    """MobileNetV3-Large (https://arxiv.org/abs/1905.02244) with its final 1x1 conv (960 x alpha channels)."""
    return _mobilenetv3(x, LARGE_BLOCKS, output_stride=output_stride, alpha=alpha, minimalistic=minimalistic)


def mobilenetv3_small(x, *, output_stride=16, alpha=1.0, minimalistic=False):
    """MobileNetV3-Small (https://arxiv.org/abs/1905.02244) with its final 1x1 conv (576 x alpha channels)."""
    return _mobilenetv3(x, SMALL_BLOCKS, output_stride=output_stride, alpha=alpha, minimalistic=minimalistic)
