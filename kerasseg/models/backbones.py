"""Backbones: VGG16, aligned Xception-65, ResNet-50/101 (the MobileNets: mobilenetv2.py, mobilenetv3.py).

Contract: a backbone takes the normalised image tensor and returns a dict of
named feature tensors: "stride4" (the low-level features for a decoder) and
"out" (the deepest features, at the output stride); VGG16 also returns
"stride8", "stride16" and "stride32" (pool3, pool4, pool5) for FCN's skips;
MobileNetV3 (mobilenetv3.py) also returns "stride8" for LR-ASPP.
Heads read only these keys. The registry (registry.py) holds the table of backbones.

Layer names follow keras.applications where it has the network (VGG16,
ResNet), so its weight files load by name. Every convolution uses
``padding="same"``, so a stride-s feature map has ceil(H/s) rows for any H and
pixel i sits at input coordinate (i + 0.5) * s - 0.5.
"""
from __future__ import annotations

from kerasseg.backend import layers
from kerasseg.models.blocks import AtrousSchedule


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
