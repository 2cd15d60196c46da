"""FCN-32s, FCN-16s and FCN-8s heads on VGG16.

Long, Shelhamer, Darrell, "Fully Convolutional Networks for Semantic
Segmentation", CVPR 2015, https://arxiv.org/abs/1411.4038

Arbitrary input sizes: the original pads the input by 100 pixels so that
fc6 (a 7x7 "valid" convolution) never sees a map smaller than 7x7, and crops
with per-layer offsets. Here every layer uses ``padding="same"`` instead: pool_k
has ceil(H / 2^k) rows, each ``Conv2DTranspose`` (kernel 2f, stride f, "same")
returns exactly f times its input with pixel centres aligned, and every crop is
the top-left window at offset 0. The output is exactly H x W for any H, W, the
parameter count is the paper's, and no compute is spent on 100-pixel borders.
"""
from __future__ import annotations

from kerasseg.backend import layers
from kerasseg.models.layers import BilinearUpsampling, CropToReference

# arch -> upsampling factors, coarsest first; their product is 32.
FCN_VARIANTS = {"fcn32s": (32,), "fcn16s": (2, 16), "fcn8s": (2, 2, 8)}
_SKIPS = ("stride16", "stride8")  # pool4 then pool3


def _upsample(x, factor, *, num_classes, name, trainable=True):
    """Conv2DTranspose initialised to bilinear interpolation, no bias (as in FCN)."""
    return layers.Conv2DTranspose(num_classes, 2 * factor, strides=factor, padding="same", use_bias=False,
                                  kernel_initializer=BilinearUpsampling(), trainable=trainable, name=name)(x)


def fcn_head(image, features, *, arch, num_classes, dropout=0.5):
    """fc6/fc7 as convolutions, score layers, skip fusion and upsampling to the image size.

    FCN paper: https://arxiv.org/abs/1411.4038. ``arch`` picks the skips: fcn32s none,
    fcn16s pool4, fcn8s pool4 and pool3.
    """
    factors = FCN_VARIANTS[arch]
    x = layers.Conv2D(4096, 7, padding="same", activation="relu", name="fc6")(features["stride32"])
    x = layers.Dropout(dropout, name="drop6")(x)
    x = layers.Conv2D(4096, 1, activation="relu", name="fc7")(x)
    x = layers.Dropout(dropout, name="drop7")(x)
    x = layers.Conv2D(num_classes, 1, name="score_fr")(x)
    for factor, skip_key, pool_name in zip(factors[:-1], _SKIPS, ("pool4", "pool3")):
        x = _upsample(x, factor, num_classes=num_classes, name=f"upscore_{skip_key}")
        # Skip scores start at zero, so a fresh FCN-8s predicts what the coarser net does.
        skip = layers.Conv2D(num_classes, 1, kernel_initializer="zeros", name=f"score_{pool_name}")(features[skip_key])
        x = CropToReference(name=f"upscore_{skip_key}_crop")([x, skip])
        x = layers.Add(name=f"fuse_{pool_name}")([x, skip])
    # The final upsampling stays bilinear, as in the paper.
    x = _upsample(x, factors[-1], num_classes=num_classes, name=f"upscore{factors[-1]}", trainable=False)
    return CropToReference(name="logits", dtype="float32")([x, image])
