"""Shared helpers for the models tests."""
import numpy as np


def random_images(batch, height, width, seed=0):
    """Raw RGB pixels in [0, 255], float32."""
    return np.random.default_rng(seed).uniform(0, 255, (batch, height, width, 3)).astype(np.float32)


# Small-but-real configurations, one per registered (arch, backbone); heavy ones are marked slow by the tests.
FAST_CONFIGS = [
    dict(arch="deeplabv3plus", backbone="mobilenetv2", alpha=0.35),
    dict(arch="deeplabv3plus", backbone="mobilenetv2", alpha=0.35, output_stride=8, aspp=False, decoder=False),
    dict(arch="deeplabv3plus", backbone="mobilenetv2", alpha=0.5, output_stride=32, edgetpu_friendly=True),
]
SLOW_CONFIGS = [
    dict(arch="fcn32s"),
    dict(arch="fcn16s"),
    dict(arch="fcn8s"),
    dict(arch="deeplabv3plus", backbone="xception65"),
    dict(arch="deeplabv3plus", backbone="resnet50", output_stride=8),
    dict(arch="deeplabv3plus", backbone="resnet101", decoder=False),
]
