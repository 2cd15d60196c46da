"""The building blocks the backbones share: the atrous schedule, channel rounding, conv + batch norm +
activation, h-swish and h-sigmoid, squeeze-excite and the one inverted residual block.

Each MobileNet is a table of :class:`InvertedResidual` rows over :func:`inverted_residual` (as torchvision's
``InvertedResidualConfig``): MobileNetV2 (mobilenetv2.py) and V3 (mobilenetv3.py). A family keeps its
keras.applications layer names through :class:`BlockNames`, so its ImageNet weight files load by name.

- Inverted residual (Sandler et al., https://arxiv.org/abs/1801.04381): 1x1 expansion, KxK depthwise
  (strided, or dilated past the output stride), optional squeeze-excite, linear 1x1 projection, and the
  input added back when the shape is kept.
- Fused expansion (MobileNet-EdgeTPU, Gupta and Akin 2019; TF-slim's ``mbv3_fused``): one regular KxK
  convolution expands (strided or dilated), then the 1x1 projection, with no depthwise convolution.
- Squeeze-excite as in MobileNetV3 (https://arxiv.org/abs/1905.02244): pool, 1x1 conv to a quarter of the
  channels (rounded to 8), ReLU, 1x1 conv back, h-sigmoid gate, multiply.
"""
from __future__ import annotations

import dataclasses

from kerasseg.backend import keras, layers, tf

_register = keras.saving.register_keras_serializable(package="kerasseg")


class AtrousSchedule:
    """Turns strides into dilation rates once the output stride is reached.

    As in the DeepLab feature extractors: a strided layer that would take the
    network past ``output_stride`` runs with stride 1 at the current rate, and
    every later layer's rate is multiplied by the dropped stride.
    """

    def __init__(self, output_stride: int | None):
        self.output_stride = output_stride
        self.current_stride = 1
        self.rate = 1

    def __call__(self, stride: int) -> tuple[int, int]:
        """Return ``(stride, dilation_rate)`` for a layer that asks for ``stride``."""
        if stride == 1:
            return 1, self.rate
        if self.output_stride is not None and self.current_stride * stride > self.output_stride:
            rate = self.rate
            self.rate *= stride
            return 1, rate
        self.current_stride *= stride
        return stride, self.rate


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels as keras.applications MobileNetV2 does."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


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
ACTIVATIONS = ("relu", "relu6", "hard_swish")


def batch_norm(name):
    """The MobileNets' batch norm (keras.applications: epsilon 1e-3, momentum 0.999)."""
    return layers.BatchNormalization(epsilon=1e-3, momentum=0.999, name=name)


def activation(x, kind, name):
    """``kind``: "relu", "relu6" (ReLU capped at 6) or "hard_swish"."""
    if kind == "hard_swish":
        return HardSwish(name=name)(x)
    if kind not in ("relu", "relu6"):
        raise ValueError(f"activation: got {kind!r}; valid choices are {list(ACTIVATIONS)}")
    return layers.ReLU(6.0 if kind == "relu6" else None, name=name)(x)


def conv_bn(x, filters, kernel, *, name, bn_name, activation_kind=None, activation_name=None, stride=1, rate=1):
    """A bias-free convolution, its batch norm and (unless ``activation_kind`` is None) its activation.

    The stems and the last 1x1 convolutions of the MobileNets.
    """
    padding = "valid" if kernel == 1 else "same"  # the same thing for a 1x1 kernel, as keras.applications writes it
    x = layers.Conv2D(filters, kernel, strides=stride, dilation_rate=rate, padding=padding, use_bias=False,
                      name=name)(x)
    x = batch_norm(bn_name)(x)
    return x if activation_kind is None else activation(x, activation_kind, activation_name)


def squeeze_excite(x, prefix):
    """Pool, 1x1 conv to a quarter of the channels, ReLU, 1x1 conv back, h-sigmoid, multiply."""
    channels = x.shape[-1]
    gate = layers.GlobalAveragePooling2D(keepdims=True, name=prefix + "squeeze_excite/AvgPool")(x)
    gate = layers.Conv2D(make_divisible(channels * 0.25), 1, name=prefix + "squeeze_excite/Conv")(gate)
    gate = layers.ReLU(name=prefix + "squeeze_excite/Relu")(gate)
    gate = layers.Conv2D(channels, 1, name=prefix + "squeeze_excite/Conv_1")(gate)
    gate = HardSigmoid(name=prefix + "squeeze_excite/hard_sigmoid")(gate)
    return layers.Multiply(name=prefix + "squeeze_excite/Mul")([x, gate])


@dataclasses.dataclass(frozen=True)
class BlockNames:
    """How a family names a block's layers: ``prefix + part`` for a convolution (part: "expand",
    "depthwise", "project"), then these suffixes for its batch norm and activation, and the residual add."""

    batch_norm: str   # "_BN" (keras.applications MobileNetV2) or "/BatchNorm" (MobileNetV3)
    activation: str   # formatted with ``kind``: "_relu" (MobileNetV2) or "/{kind}" (MobileNetV3: relu, hard_swish)
    add: str          # "add" or "Add"

    def of(self, prefix, part, kind):
        """(conv, batch norm, activation) names of one part."""
        return prefix + part, prefix + part + self.batch_norm, prefix + part + self.activation.format(kind=kind)


@dataclasses.dataclass(frozen=True)
class InvertedResidual:
    """One block, its channels resolved (torchvision's ``InvertedResidualConfig``)."""

    out_channels: int
    expanded_channels: int | None = None  # None: no expansion layer (the MobileNets' first block)
    kernel: int = 3                       # of the depthwise convolution, or of the fused expansion
    stride: int = 1                       # asked of the AtrousSchedule, which may dilate instead
    squeeze_excite: bool = False          # after the depthwise (or fused) convolution
    activation: str = "relu6"             # one of ACTIVATIONS, after the expansion and the depthwise
    fused: bool = False                   # one regular KxK conv expands; no depthwise (MobileNet-EdgeTPU)


def inverted_residual(x, block: InvertedResidual, *, prefix, names: BlockNames, schedule: AtrousSchedule):
    """Build one block on ``x``; return ``(output, expanded)``, ``expanded`` the tensor after the expansion
    (``x`` itself without one), which MobileNetV2 taps as its stride-4 feature."""
    inputs, in_channels = x, x.shape[-1]
    layer_stride, rate = schedule(block.stride)
    if block.fused:
        if block.expanded_channels is None:
            raise ValueError(f"{prefix}: a fused block needs expanded_channels")
        conv, bn, act = names.of(prefix, "expand", block.activation)
        x = conv_bn(x, block.expanded_channels, block.kernel, stride=layer_stride, rate=rate, name=conv, bn_name=bn,
                    activation_kind=block.activation, activation_name=act)
        expanded = x
    else:
        if block.expanded_channels is not None:
            conv, bn, act = names.of(prefix, "expand", block.activation)
            x = conv_bn(x, block.expanded_channels, 1, name=conv, bn_name=bn, activation_kind=block.activation,
                        activation_name=act)
        expanded = x
        conv, bn, act = names.of(prefix, "depthwise", block.activation)
        x = layers.DepthwiseConv2D(block.kernel, strides=layer_stride, dilation_rate=rate, padding="same",
                                   use_bias=False, name=conv)(x)
        x = activation(batch_norm(bn)(x), block.activation, act)
    if block.squeeze_excite:
        x = squeeze_excite(x, prefix)
    conv, bn, _ = names.of(prefix, "project", block.activation)
    x = conv_bn(x, block.out_channels, 1, name=conv, bn_name=bn)
    if block.stride == 1 and in_channels == block.out_channels:
        x = layers.Add(name=prefix + names.add)([inputs, x])
    return x, expanded
