"""Lite R-ASPP (LR-ASPP), the segmentation head of "Searching for MobileNetV3".

Howard et al., ICCV 2019, section 6.4 and figure 10, https://arxiv.org/abs/1905.02244

On the deepest features ("out", stride 16 by default): a 1x1 conv + BN + ReLU, multiplied by a gate, the
sigmoid of a 1x1 conv of the globally pooled features (the paper pools with a large strided kernel;
torchvision and this head pool globally). The gated map is upsampled to the stride-8 features ("stride8"),
classified, and added to a classifier of the stride-8 features; the sum is upsampled to the input.
"""
from __future__ import annotations

from kerasseg.backend import layers
from kerasseg.models.layers import ResizeToReference, resize_alignment

LRASPP_FILTERS = 128


def lraspp_head(image, features, *, num_classes, output_stride, edgetpu_friendly=False):
    """LR-ASPP (https://arxiv.org/abs/1905.02244): reads ``features["out"]`` and ``features["stride8"]``.

    ``edgetpu_friendly`` turns off half-pixel centres in both resizes. The classifier's own
    resolution is stride 8 (what an export's ``native`` head ends at) whatever the output stride.
    """
    del output_stride  # the head is the same at every output stride
    alignment = resize_alignment(edgetpu_friendly=edgetpu_friendly)
    high, low = features["out"], features["stride8"]
    x = layers.Conv2D(LRASPP_FILTERS, 1, use_bias=False, name="lraspp_conv")(high)
    x = layers.BatchNormalization(epsilon=1e-5, name="lraspp_conv_BN")(x)
    x = layers.ReLU(name="lraspp_conv_relu")(x)
    gate = layers.GlobalAveragePooling2D(keepdims=True, name="lraspp_pooling")(high)
    gate = layers.Conv2D(LRASPP_FILTERS, 1, use_bias=False, name="lraspp_gate_conv")(gate)
    gate = layers.Activation("sigmoid", name="lraspp_gate_sigmoid")(gate)
    x = layers.Multiply(name="lraspp_gate")([x, gate])
    x = ResizeToReference.aligned(alignment, name="lraspp_upsample")([x, low])
    x = layers.Conv2D(num_classes, 1, name="classifier")(x)
    low_scores = layers.Conv2D(num_classes, 1, name="low_classifier")(low)
    x = layers.Add(name="lraspp_add")([low_scores, x])
    return ResizeToReference.aligned(alignment, name="logits", dtype="float32")([x, image])
