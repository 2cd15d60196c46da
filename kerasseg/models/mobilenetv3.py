"""MobileNetV3-Large and -Small backbones, full and minimalistic.

Howard, Sandler, Chu, Chen, Chen, Tan, Wang, Zhu, Pang, Vasudevan, Le, Adam, "Searching for MobileNetV3",
ICCV 2019, https://arxiv.org/abs/1905.02244

- Blocks, widths, kernels, squeeze-excite and activations are the paper's Tables 1 and 2, with
  keras.applications' channel rounding and layer names (``Conv``, ``expanded_conv_N/expand``,
  ``.../squeeze_excite/Conv``, ``Conv_1``), so its ImageNet weight files load by name.
- A table over the one inverted residual block (blocks.py), which also holds h-swish ``x * ReLU6(x + 3) / 6``
  (:class:`~kerasseg.models.blocks.HardSwish`; TFLite fuses it into one HARD_SWISH op) and the squeeze-excite
  (an h-sigmoid gate of a 1x1 conv, ReLU, 1x1 conv on the globally pooled features, with a quarter of the
  expanded channels, rounded to 8).
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

from kerasseg.models.blocks import (AtrousSchedule, BlockNames, InvertedResidual, conv_bn, inverted_residual,
                                    make_divisible)

MOBILENETV3_ALPHAS = (0.35, 0.5, 0.75, 1.0, 1.25)

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
NAMES = BlockNames(batch_norm="/BatchNorm", activation="/{kind}", add="Add")


def _block(row, *, block_id, in_channels, alpha, minimalistic) -> InvertedResidual:
    """One table row as a block: the kernel, activation and squeeze-excite the variant asks for."""
    expansion, filters, kernel, stride, se, activation = row
    return InvertedResidual(
        out_channels=make_divisible(filters * alpha), stride=stride,
        expanded_channels=make_divisible(in_channels * expansion) if block_id else None,
        kernel=3 if minimalistic or kernel == 3 else 5, squeeze_excite=se and not minimalistic,
        activation="hard_swish" if activation == "hs" and not minimalistic else "relu")


def _conv(x, filters, kernel, name, *, minimalistic, stride=1):
    """The stem and Conv_1: conv, batch norm, h-swish (ReLU when minimalistic)."""
    kind = "relu" if minimalistic else "hard_swish"
    return conv_bn(x, filters, kernel, stride=stride, name=name, bn_name=name + NAMES.batch_norm,
                   activation_kind=kind, activation_name=name + NAMES.activation.format(kind=kind))


def _mobilenetv3(x, blocks, *, output_stride, alpha, minimalistic):
    schedule = AtrousSchedule(output_stride)
    stride, _ = schedule(2)
    x = _conv(x, STEM_CHANNELS, 3, "Conv", stride=stride, minimalistic=minimalistic)
    features = {}
    for block_id, row in enumerate(blocks):
        if row[3] == 2 and schedule.current_stride >= 4:
            features.setdefault(f"stride{schedule.current_stride}", x)  # the stage's last block output
        block = _block(row, block_id=block_id, in_channels=x.shape[-1], alpha=alpha, minimalistic=minimalistic)
        x, _ = inverted_residual(x, block, prefix=f"expanded_conv_{block_id}/" if block_id else "expanded_conv/",
                                 names=NAMES, schedule=schedule)
    features["out"] = _conv(x, make_divisible(x.shape[-1] * LAST_CONV_EXPANSION), 1, "Conv_1",
                            minimalistic=minimalistic)
    return features


def mobilenetv3_large(x, *, output_stride=16, alpha=1.0, minimalistic=False):
    """MobileNetV3-Large (https://arxiv.org/abs/1905.02244) with its final 1x1 conv (960 x alpha channels)."""
    return _mobilenetv3(x, LARGE_BLOCKS, output_stride=output_stride, alpha=alpha, minimalistic=minimalistic)


def mobilenetv3_small(x, *, output_stride=16, alpha=1.0, minimalistic=False):
    """MobileNetV3-Small (https://arxiv.org/abs/1905.02244) with its final 1x1 conv (576 x alpha channels)."""
    return _mobilenetv3(x, SMALL_BLOCKS, output_stride=output_stride, alpha=alpha, minimalistic=minimalistic)
