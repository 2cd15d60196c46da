"""MobileNetV2 up to block 16, as DeepLab uses it: a table over the one inverted residual (blocks.py).

Sandler, Howard, Zhu, Zhmoginov, Chen, "MobileNetV2: Inverted Residuals and Linear Bottlenecks", CVPR 2018,
https://arxiv.org/abs/1801.04381

Layer names are keras.applications' (``Conv1``, ``expanded_conv_*``, ``block_N_*``), so its ImageNet weight
files load by name and the released-weights name map (importing/names.py) finds every layer.
"""
from __future__ import annotations

from kerasseg.models.blocks import (AtrousSchedule, BlockNames, InvertedResidual, conv_bn, inverted_residual,
                                    make_divisible)

MOBILENETV2_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.3, 1.4)
# (output channels, stride, expansion) for keras.applications' blocks 0..16
MOBILENETV2_BLOCKS = (
    (16, 1, 1), (24, 2, 6), (24, 1, 6), (32, 2, 6), (32, 1, 6), (32, 1, 6), (64, 2, 6), (64, 1, 6),
    (64, 1, 6), (64, 1, 6), (96, 1, 6), (96, 1, 6), (96, 1, 6), (160, 2, 6), (160, 1, 6), (160, 1, 6),
    (320, 1, 6),
)
STEM_CHANNELS = 32  # scaled by alpha
NAMES = BlockNames(batch_norm="_BN", activation="_relu", add="add")

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


def mobilenetv2(x, *, output_stride=16, alpha=1.0, channel_rounding="keras"):
    """MobileNetV2 up to block 16 (320 x alpha channels; no final 1280 conv, as in DeepLab).

    ``channel_rounding``: one of ``MOBILENETV2_CHANNEL_ROUNDINGS``.
    """
    schedule = AtrousSchedule(output_stride)
    outputs, expanded = _mobilenetv2_channels(channel_rounding, alpha)
    stride, _ = schedule(2)
    first = make_divisible(STEM_CHANNELS * alpha) if channel_rounding == "keras" else outputs(STEM_CHANNELS)
    x = conv_bn(x, first, 3, stride=stride, name="Conv1", bn_name="bn_Conv1", activation_kind="relu6",
                activation_name="Conv1_relu")
    features = {}
    for block_id, (filters, block_stride, expansion) in enumerate(MOBILENETV2_BLOCKS):
        block = InvertedResidual(out_channels=outputs(filters), stride=block_stride,
                                 expanded_channels=expanded(expansion, x.shape[-1]) if block_id else None)
        tap = block_stride == 2 and schedule.current_stride == 4  # block_3_expand_relu: the last stride-4 tensor
        x, expanded_tensor = inverted_residual(x, block, prefix=f"block_{block_id}_" if block_id else "expanded_conv_",
                                               names=NAMES, schedule=schedule)
        if tap:
            features["stride4"] = expanded_tensor
    if "stride4" not in features:  # only when the output stride is 2 or less, which the registry refuses
        raise AssertionError("mobilenetv2: no stride-4 feature found")
    features["out"] = x
    return features
