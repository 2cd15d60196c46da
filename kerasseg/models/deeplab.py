"""DeepLabv3 / DeepLabv3+ head: ASPP, optional decoder, classifier.

Chen, Zhu, Papandreou, Schroff, Adam, "Encoder-Decoder with Atrous Separable
Convolution for Semantic Image Segmentation", ECCV 2018, https://arxiv.org/abs/1802.02611
(DeepLabv3: https://arxiv.org/abs/1706.05587).
"""
from __future__ import annotations

from kerasseg.backend import layers
from kerasseg.models.layers import ResizeToReference, resize_alignment

ASPP_RATES = {8: (12, 24, 36), 16: (6, 12, 18), 32: (3, 6, 9)}
ASPP_FILTERS = 256  # the default head width (``head_filters``); DeepLab's EdgeTPU-DeepLab-slim uses 128
DECODER_FILTERS = 256
DECODER_LOW_LEVEL_FILTERS = 48


def _conv_bn_relu(x, filters, *, name):
    x = layers.Conv2D(filters, 1, use_bias=False, name=name)(x)
    x = layers.BatchNormalization(epsilon=1e-5, name=name + "_BN")(x)
    return layers.ReLU(name=name + "_relu")(x)


def _separable_bn_relu(x, filters, *, rate, name):
    """Depthwise 3x3 (atrous), BN, ReLU, pointwise 1x1, BN, ReLU."""
    x = layers.DepthwiseConv2D(3, dilation_rate=rate, padding="same", use_bias=False, name=name + "_depthwise")(x)
    x = layers.BatchNormalization(epsilon=1e-5, name=name + "_depthwise_BN")(x)
    x = layers.ReLU(name=name + "_depthwise_relu")(x)
    return _conv_bn_relu(x, filters, name=name + "_pointwise")


def deeplab_head(image, features, *, num_classes, output_stride, aspp=True, decoder=True, dropout=0.1,
                 edgetpu_friendly=False, align_corners=False, head_filters=ASPP_FILTERS):
    """ASPP (1x1, three atrous separable 3x3 if ``aspp``, image pooling; each branch and the projection
    ``head_filters`` wide), decoder if ``decoder``.

    DeepLabv3+ paper: https://arxiv.org/abs/1802.02611. Reads ``features["out"]`` and, with the
    decoder, ``features["stride4"]``. Every resize takes ``resize_alignment(edgetpu_friendly=...,
    align_corners=...)``: half-pixel centres by default, legacy for the Edge TPU, TF1's corner
    alignment for DeepLab's released weights.
    """
    alignment = resize_alignment(edgetpu_friendly=edgetpu_friendly, align_corners=align_corners)
    x = features["out"]
    branches = [_conv_bn_relu(x, head_filters, name="aspp0")]
    if aspp:
        for i, rate in enumerate(ASPP_RATES[output_stride], start=1):
            branches.append(_separable_bn_relu(x, head_filters, rate=rate, name=f"aspp{i}"))
    pooled = layers.GlobalAveragePooling2D(keepdims=True, name="image_pooling")(x)
    pooled = _conv_bn_relu(pooled, head_filters, name="image_pooling_conv")
    branches.append(ResizeToReference.aligned(alignment, name="image_pooling_resize")([pooled, x]))
    x = layers.Concatenate(name="aspp_concat")(branches)
    x = _conv_bn_relu(x, head_filters, name="concat_projection")
    x = layers.Dropout(dropout, name="concat_projection_dropout")(x)
    if decoder:
        low = _conv_bn_relu(features["stride4"], DECODER_LOW_LEVEL_FILTERS, name="decoder_low_level")
        x = ResizeToReference.aligned(alignment, name="decoder_upsample")([x, low])
        x = layers.Concatenate(name="decoder_concat")([x, low])
        x = _separable_bn_relu(x, DECODER_FILTERS, rate=1, name="decoder_conv0")
        x = _separable_bn_relu(x, DECODER_FILTERS, rate=1, name="decoder_conv1")
    x = layers.Conv2D(num_classes, 1, name="classifier")(x)
    return ResizeToReference.aligned(alignment, name="logits", dtype="float32")([x, image])
