"""Backbones: VGG16, MobileNetV2, aligned Xception-65, ResNet-50/101.

Contract: a backbone takes the normalised image tensor and returns a dict of
named feature tensors: "stride4" (the low-level features for a decoder) and
"out" (the deepest features, at the output stride); VGG16 also returns
"stride8", "stride16" and "stride32" (pool3, pool4, pool5) for FCN's skips;
MobileNetV3 (mobilenetv3.py) also returns "stride8" for LR-ASPP.
Heads read only these keys.

Layer names follow keras.applications where it has the network (VGG16,
MobileNetV2, ResNet), so its weight files load by name. Every convolution uses
``padding="same"``, so a stride-s feature map has ceil(H/s) rows for any H and
pixel i sits at input coordinate (i + 0.5) * s - 0.5.
"""
from __future__ import annotations

import dataclasses
from typing import Callable

from kerasseg.backend import layers


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


# ---------------------------------------------------------------- VGG16
def vgg16(x, *, output_stride=None, alpha=None):
    """VGG16 convolutional layers, keras.applications names (block1_conv1 ... block5_pool)."""
    del output_stride, alpha  # validated by the registry: VGG16 is only used at stride 32
    features = {}
    for block, (filters, convs) in enumerate([(64, 2), (128, 2), (256, 3), (512, 3), (512, 3)], start=1):
        for i in range(1, convs + 1):
            x = layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"block{block}_conv{i}")(x)
        x = layers.MaxPooling2D(2, strides=2, padding="same", name=f"block{block}_pool")(x)
        if block >= 2:
            features[f"stride{2 ** block}"] = x
    features["out"] = features["stride32"]
    return features


# ---------------------------------------------------------------- MobileNetV2
MOBILENETV2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
# (output channels, stride, expansion) for keras.applications' blocks 0..16
_MOBILENETV2_BLOCKS = [
    (16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6), (64, 2, 6), (64, 1, 6),
    (64, 1, 6), (64, 1, 6), (96, 1, 6), (96, 1, 6), (96, 1, 6), (160, 2, 6), (160, 1, 6), (160, 1, 6),
    (320, 1, 6),
]


def make_divisible(value: float, divisor: int = 8) -> int:
    """Round channels as keras.applications MobileNetV2 does."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if rounded < 0.9 * value:
        rounded += divisor
    return rounded


# How MobileNetV2 rounds ``channels x alpha``: "keras" as keras.applications (multiples of 8, so its ImageNet
# weights load), "slim" as TF-slim's mobilenet_v2 inside DeepLab (multiples of 8 only at alpha 1.0, else the
# nearest integer; expansions always to multiples of 8): the rule DeepLab's released weights were built with.
MOBILENETV2_CHANNEL_ROUNDINGS = ("keras", "slim")


def _mobilenetv2_channels(rounding: str, alpha: float):
    """(block output channels, expansion channels) functions of ``rounding`` at ``alpha``."""
    if rounding == "slim":
        step = 8 if alpha == 1.0 else 1
        return (lambda filters: make_divisible(filters * alpha, step),
                lambda expansion, channels: make_divisible(expansion * channels, 8))
    return (lambda filters: make_divisible(int(filters * alpha)),
            lambda expansion, channels: expansion * channels)


def _bn(name, epsilon=1e-3, momentum=0.999):
    return layers.BatchNormalization(epsilon=epsilon, momentum=momentum, name=name)


def mobilenetv2(x, *, output_stride=16, alpha=1.0, channel_rounding="keras"):
    """MobileNetV2 up to block 16 (320 x alpha channels; no final 1280 conv, as in DeepLab).

    ``channel_rounding``: one of ``MOBILENETV2_CHANNEL_ROUNDINGS``.
    """
    schedule = AtrousSchedule(output_stride)
    outputs, expanded = _mobilenetv2_channels(channel_rounding, alpha)
    stride, _ = schedule(2)
    first = make_divisible(32 * alpha) if channel_rounding == "keras" else outputs(32)
    x = layers.Conv2D(first, 3, strides=stride, padding="same", use_bias=False, name="Conv1")(x)
    x = _bn("bn_Conv1")(x)
    x = layers.ReLU(6.0, name="Conv1_relu")(x)
    features = {}
    for block_id, (filters, block_stride, expansion) in enumerate(_MOBILENETV2_BLOCKS):
        in_channels = x.shape[-1]
        out_channels = outputs(filters)
        prefix = f"block_{block_id}_" if block_id else "expanded_conv_"
        inputs = x
        if block_id:
            x = layers.Conv2D(expanded(expansion, in_channels), 1, use_bias=False, name=prefix + "expand")(x)
            x = _bn(prefix + "expand_BN")(x)
            x = layers.ReLU(6.0, name=prefix + "expand_relu")(x)
        if block_stride == 2 and schedule.current_stride == 4:
            features["stride4"] = x  # block_3_expand_relu: the last stride-4 tensor
        stride, rate = schedule(block_stride)
        x = layers.DepthwiseConv2D(3, strides=stride, dilation_rate=rate, padding="same", use_bias=False,
                                   name=prefix + "depthwise")(x)
        x = _bn(prefix + "depthwise_BN")(x)
        x = layers.ReLU(6.0, name=prefix + "depthwise_relu")(x)
        x = layers.Conv2D(out_channels, 1, use_bias=False, name=prefix + "project")(x)
        x = _bn(prefix + "project_BN")(x)
        if in_channels == out_channels and block_stride == 1:
            x = layers.Add(name=prefix + "add")([inputs, x])
    if "stride4" not in features:  # only when the output stride is 2 or less, which the registry refuses
        raise AssertionError("mobilenetv2: no stride-4 feature found")
    features["out"] = x
    return features


# ---------------------------------------------------------------- aligned Xception-65
def _xception_separable(x, filters, *, stride, rate, name, relu_first):
    """Depthwise 3x3, BN, pointwise 1x1, BN: with one ReLU before (``relu_first``), else a ReLU after each BN.

    As DeepLab's xception.py (``activation_fn_in_separable_conv``), whose released checkpoints have no
    ReLU between the depthwise and pointwise halves of a pre-activated separable convolution.
    """
    if relu_first:
        x = layers.ReLU(name=name + "_relu_in")(x)
    x = layers.DepthwiseConv2D(3, strides=stride, dilation_rate=rate, padding="same", use_bias=False,
                               name=name + "_depthwise")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name=name + "_depthwise_BN")(x)
    if not relu_first:
        x = layers.ReLU(name=name + "_depthwise_relu")(x)
    x = layers.Conv2D(filters, 1, use_bias=False, name=name + "_pointwise")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name=name + "_pointwise_BN")(x)
    if not relu_first:
        x = layers.ReLU(name=name + "_pointwise_relu")(x)
    return x


def _xception_module(x, depths, *, stride, skip, schedule, name, relu_first=True, taps=None):
    """Three separable convolutions (the last one strided) plus a "conv", "sum" or no shortcut."""
    inputs = x
    for i, depth in enumerate(depths):
        layer_stride, rate = schedule(stride if i == len(depths) - 1 else 1)
        x = _xception_separable(x, depth, stride=layer_stride, rate=rate, name=f"{name}_separable_conv{i + 1}",
                                relu_first=relu_first)
        if taps is not None:
            taps.append(x)
    if skip == "conv":
        shortcut = layers.Conv2D(depths[-1], 1, strides=layer_stride, use_bias=False, name=name + "_shortcut")(inputs)
        shortcut = layers.BatchNormalization(epsilon=1e-3, name=name + "_shortcut_BN")(shortcut)
        x = layers.Add(name=name + "_add")([x, shortcut])
    elif skip == "sum":
        x = layers.Add(name=name + "_add")([x, inputs])
    return x


def xception65(x, *, output_stride=16, alpha=None):
    """Aligned Xception-65 of DeepLabv3+: strided separable convolutions instead of max pooling."""
    del alpha
    schedule = AtrousSchedule(output_stride)
    stride, _ = schedule(2)
    x = layers.Conv2D(32, 3, strides=stride, padding="same", use_bias=False, name="entry_flow_conv1_1")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name="entry_flow_conv1_1_BN")(x)
    x = layers.ReLU(name="entry_flow_conv1_1_relu")(x)
    x = layers.Conv2D(64, 3, padding="same", use_bias=False, name="entry_flow_conv1_2")(x)
    x = layers.BatchNormalization(epsilon=1e-3, name="entry_flow_conv1_2_BN")(x)
    x = layers.ReLU(name="entry_flow_conv1_2_relu")(x)
    features = {}
    x = _xception_module(x, (128, 128, 128), stride=2, skip="conv", schedule=schedule, name="entry_flow_block1")
    block2_taps = []
    x = _xception_module(x, (256, 256, 256), stride=2, skip="conv", schedule=schedule, name="entry_flow_block2",
                         taps=block2_taps)
    features["stride4"] = block2_taps[1]  # second separable conv of block 2, before its stride
    x = _xception_module(x, (728, 728, 728), stride=2, skip="conv", schedule=schedule, name="entry_flow_block3")
    for unit in range(1, 17):
        x = _xception_module(x, (728, 728, 728), stride=1, skip="sum", schedule=schedule,
                             name=f"middle_flow_unit{unit}")
    x = _xception_module(x, (728, 1024, 1024), stride=2, skip="conv", schedule=schedule, name="exit_flow_block1")
    x = _xception_module(x, (1536, 1536, 2048), stride=1, skip=None, schedule=schedule, name="exit_flow_block2",
                         relu_first=False)
    features["out"] = x
    return features


# ---------------------------------------------------------------- ResNet-50 / 101
RESNET_MULTI_GRID = (1, 2, 4)


def _resnet_bottleneck(x, filters, *, stride, rate, shortcut_conv, name):
    """keras.applications ResNet v1 bottleneck: the stride sits in the first 1x1 convolution."""
    if shortcut_conv:
        shortcut = layers.Conv2D(4 * filters, 1, strides=stride, name=name + "_0_conv")(x)
        shortcut = layers.BatchNormalization(epsilon=1.001e-5, name=name + "_0_bn")(shortcut)
    else:
        shortcut = x
    x = layers.Conv2D(filters, 1, strides=stride, name=name + "_1_conv")(x)
    x = layers.BatchNormalization(epsilon=1.001e-5, name=name + "_1_bn")(x)
    x = layers.Activation("relu", name=name + "_1_relu")(x)
    x = layers.Conv2D(filters, 3, padding="same", dilation_rate=rate, name=name + "_2_conv")(x)
    x = layers.BatchNormalization(epsilon=1.001e-5, name=name + "_2_bn")(x)
    x = layers.Activation("relu", name=name + "_2_relu")(x)
    x = layers.Conv2D(4 * filters, 1, name=name + "_3_conv")(x)
    x = layers.BatchNormalization(epsilon=1.001e-5, name=name + "_3_bn")(x)
    x = layers.Add(name=name + "_add")([shortcut, x])
    return layers.Activation("relu", name=name + "_out")(x)


def _resnet(x, *, blocks, output_stride):
    schedule = AtrousSchedule(output_stride)
    # The stem pads like keras.applications (3, then 1 pixel on every side), so its ImageNet weights
    # compute exactly what they did there; sizes stay ceil(H / 2) and ceil(H / 4).
    stride, _ = schedule(2)
    x = layers.ZeroPadding2D(3, name="conv1_pad")(x)
    x = layers.Conv2D(64, 7, strides=stride, name="conv1_conv")(x)
    x = layers.BatchNormalization(epsilon=1.001e-5, name="conv1_bn")(x)
    x = layers.Activation("relu", name="conv1_relu")(x)
    stride, _ = schedule(2)
    x = layers.ZeroPadding2D(1, name="pool1_pad")(x)
    x = layers.MaxPooling2D(3, strides=stride, name="pool1_pool")(x)
    features = {}
    for stage, (filters, units) in enumerate(zip((64, 128, 256, 512), blocks), start=2):
        stack_stride, _ = schedule(1 if stage == 2 else 2)
        rate = schedule.rate  # a dropped stride dilates this stage's 3x3 convolutions already
        for unit in range(1, units + 1):
            unit_rate = rate * RESNET_MULTI_GRID[unit - 1] if stage == 5 else rate
            x = _resnet_bottleneck(x, filters, stride=stack_stride if unit == 1 else 1, rate=unit_rate,
                                   shortcut_conv=unit == 1, name=f"conv{stage}_block{unit}")
        if stage == 2:
            features["stride4"] = x
    features["out"] = x
    return features


def resnet50(x, *, output_stride=16, alpha=None):
    """ResNet-50 v1 (keras.applications names), multi-grid (1, 2, 4) in the last stage."""
    del alpha
    return _resnet(x, blocks=(3, 4, 6, 3), output_stride=output_stride)


def resnet101(x, *, output_stride=16, alpha=None):
    """ResNet-101 v1 (keras.applications names), multi-grid (1, 2, 4) in the last stage."""
    del alpha
    return _resnet(x, blocks=(3, 4, 23, 3), output_stride=output_stride)


# ---------------------------------------------------------------- registry
from kerasseg.models.mobilenetv3 import mobilenetv3_large, mobilenetv3_small  # noqa: E402 (uses AtrousSchedule)

CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)  # keras.applications "caffe" mode, RGB order


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A backbone builder with its normalisation and ImageNet weight files."""

    name: str
    build: Callable
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channel_order: str
    output_strides: tuple[int, ...]
    paper: str


BACKBONES: dict[str, Backbone] = {
    "vgg16": Backbone("vgg16", vgg16, CAFFE_MEAN_RGB, (1.0, 1.0, 1.0), "bgr", (32,),
                      "https://arxiv.org/abs/1409.1556"),
    "mobilenetv2": Backbone("mobilenetv2", mobilenetv2, (127.5,) * 3, (127.5,) * 3, "rgb", (8, 16, 32),
                            "https://arxiv.org/abs/1801.04381"),
    "mobilenetv3_large": Backbone("mobilenetv3_large", mobilenetv3_large, (127.5,) * 3, (127.5,) * 3, "rgb",
                                  (8, 16, 32), "https://arxiv.org/abs/1905.02244"),
    "mobilenetv3_small": Backbone("mobilenetv3_small", mobilenetv3_small, (127.5,) * 3, (127.5,) * 3, "rgb",
                                  (8, 16, 32), "https://arxiv.org/abs/1905.02244"),
    "xception65": Backbone("xception65", xception65, (127.5,) * 3, (127.5,) * 3, "rgb", (8, 16, 32),
                           "https://arxiv.org/abs/1802.02611"),
    "resnet50": Backbone("resnet50", resnet50, CAFFE_MEAN_RGB, (1.0, 1.0, 1.0), "bgr", (8, 16, 32),
                         "https://arxiv.org/abs/1512.03385"),
    "resnet101": Backbone("resnet101", resnet101, CAFFE_MEAN_RGB, (1.0, 1.0, 1.0), "bgr", (8, 16, 32),
                          "https://arxiv.org/abs/1512.03385"),
}
