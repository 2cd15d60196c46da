"""MobileNet-EdgeTPU: a table over the one inverted residual block (blocks.py).

Gupta and Akin, "Accelerator-aware Neural Network Design using AutoML", 2020, https://arxiv.org/abs/2003.02838
(Google AI blog, November 2019); the network is TF-slim's ``V3_EDGETPU`` (nets/mobilenet/mobilenet_v3.py).

- The early stages use fused inverted bottlenecks: one regular 3x3 convolution expands (and strides), then the
  1x1 projection, with no depthwise convolution; the Edge TPU runs a regular convolution nearly as fast as a
  depthwise one. The later stages are MobileNetV2's blocks with 3x3 or 5x5 depthwise kernels. ReLU everywhere,
  no h-swish and no squeeze-excite, so every op maps to the Edge TPU.
- Channels as slim's ``depth_multiplier`` (``alpha``) rounds them: ``make_divisible(channels x alpha, 8)``, each
  expansion ``make_divisible(input channels x ratio, 8)``, and no expansion layer where it would not widen (block
  0, ratio 1: its block is the projection alone). ``Conv_1`` stays at 1280 channels at every alpha (slim's
  ``finegrain_classification_mode``, as in its ``edge_tpu_075``). Alpha 0.75 is Google's "slim" variant, the
  backbone of ``deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite``; alpha 1.0 is ``edge_tpu``.
- Layer names are slim's without the ``MobilenetEdgeTPU/`` root (``Conv``, ``expanded_conv_N/expand``,
  ``.../depthwise``, ``.../project``, ``Conv_1``, batch norms ``.../BatchNorm``), so the released-weights name
  map (importing/names.py) is that root and the table.
- Output stride 8/16/32: the strides past it become dilations (``AtrousSchedule``), as DeepLab's feature
  extractor does. Features: "stride4" and "stride8" are the last block outputs at those strides (the DeepLabv3+
  decoder and LR-ASPP read them), "out" is ``Conv_1`` at the output stride.
"""
from __future__ import annotations

import dataclasses

from kerasseg.models.blocks import (AtrousSchedule, BlockNames, InvertedResidual, conv_bn, inverted_residual,
                                    make_divisible)

MOBILENET_EDGETPU_ALPHAS = (0.5, 0.75, 1.0)
STEM_CHANNELS = 32  # scaled by alpha
LAST_CONV_CHANNELS = 1280  # not scaled (finegrain_classification_mode)
ACTIVATION = "relu"
NAMES = BlockNames(batch_norm="/BatchNorm", activation="/{kind}", add="Add")


@dataclasses.dataclass(frozen=True)
class Row:
    """One block of V3_EDGETPU at depth 1.0 (slim's ``mbv3_fused`` / ``mbv3_op``)."""

    fused: bool
    kernel: int
    expansion: int
    filters: int
    stride: int = 1
    residual: bool = True  # slim's residual=False keeps even a same-shape block without its add


def _stage(fused: bool, kernel: int, filters: int, stride: int, count: int, *, first_residual: bool = True):
    """``count`` blocks: the first expands 8x (and strides), the others 4x."""
    return (Row(fused, kernel, 8, filters, stride, first_residual),
            *(Row(fused, kernel, 4, filters) for _ in range(count - 1)))


# TF-slim's V3_EDGETPU, blocks 0..21 (block 0's ratio 1 leaves only its projection).
BLOCKS = (
    Row(fused=True, kernel=3, expansion=1, filters=16),
    *_stage(True, 3, 32, 2, 4),
    *_stage(True, 3, 48, 2, 4),
    *_stage(False, 3, 96, 2, 4),
    *_stage(False, 3, 96, 1, 4, first_residual=False),  # slim: residual=False on its 8x block
    *_stage(False, 5, 160, 2, 4),
    Row(fused=False, kernel=3, expansion=8, filters=192),
)


def block_prefix(block_id: int) -> str:
    """Slim's scope of block ``block_id`` below the network's root, with a trailing slash."""
    return f"expanded_conv_{block_id}/" if block_id else "expanded_conv/"


def _block(row: Row, *, in_channels: int, alpha: float) -> InvertedResidual:
    expanded = make_divisible(in_channels * row.expansion)
    return InvertedResidual(out_channels=make_divisible(row.filters * alpha),
                            expanded_channels=expanded if expanded > in_channels else None, kernel=row.kernel,
                            stride=row.stride, activation=ACTIVATION, fused=row.fused, residual=row.residual)


def mobilenet_edgetpu(x, *, output_stride=16, alpha=1.0):
    """MobileNet-EdgeTPU (https://arxiv.org/abs/2003.02838) with ``Conv_1`` (1280 channels); see the module doc."""
    schedule = AtrousSchedule(output_stride)
    stride, _ = schedule(2)
    x = conv_bn(x, make_divisible(STEM_CHANNELS * alpha), 3, stride=stride, name="Conv", bn_name="Conv/BatchNorm",
                activation_kind=ACTIVATION, activation_name="Conv/relu")
    features = {}
    for block_id, row in enumerate(BLOCKS):
        if row.stride == 2 and schedule.current_stride >= 4:
            features.setdefault(f"stride{schedule.current_stride}", x)  # the stage's last block output
        block = _block(row, in_channels=x.shape[-1], alpha=alpha)
        x, _ = inverted_residual(x, block, prefix=block_prefix(block_id), names=NAMES, schedule=schedule)
    features["out"] = conv_bn(x, LAST_CONV_CHANNELS, 1, name="Conv_1", bn_name="Conv_1/BatchNorm",
                              activation_kind=ACTIVATION, activation_name="Conv_1/relu")
    return features


def convolutions(*, alpha: float) -> list[str]:
    """The names of every convolution ``mobilenet_edgetpu`` builds at ``alpha``, in order (for the name map)."""
    names, channels = ["Conv"], make_divisible(STEM_CHANNELS * alpha)
    for block_id, row in enumerate(BLOCKS):
        block = _block(row, in_channels=channels, alpha=alpha)
        parts = (["expand"] if block.expanded_channels else []) + ([] if row.fused else ["depthwise"]) + ["project"]
        names += [block_prefix(block_id) + part for part in parts]
        channels = block.out_channels
    return names + ["Conv_1"]
