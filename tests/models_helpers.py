"""Shared helpers for the models tests."""
import functools

import numpy as np


def random_images(batch, height, width, seed=0):
    """Raw RGB pixels in [0, 255], float32."""
    return np.random.default_rng(seed).uniform(0, 255, (batch, height, width, 3)).astype(np.float32)


# Small-but-real configurations; the heavy backbones run in the slow tests.
SMALL = dict(arch="deeplabv3plus", backbone="mobilenetv2", alpha=0.35)
FAST_CONFIGS = [
    SMALL,
    dict(SMALL, edgetpu_friendly=True),
    dict(SMALL, output_stride=8, aspp=False, decoder=False),
    dict(arch="lraspp", backbone="mobilenetv3_small"),
]
SLOW_CONFIGS = [
    dict(arch="fcn32s"),
    dict(arch="fcn16s"),
    dict(arch="fcn8s"),
    dict(arch="deeplabv3plus", backbone="mobilenetv2", alpha=0.5, output_stride=32),
    dict(arch="deeplabv3plus", backbone="xception65"),
    dict(arch="deeplabv3plus", backbone="resnet50", output_stride=8),
    dict(arch="deeplabv3plus", backbone="resnet101", decoder=False),
    dict(arch="lraspp", backbone="mobilenetv3_large", minimalistic=True, output_stride=8),
    dict(arch="deeplabv3plus", backbone="mobilenetv3_large", decoder=False, output_stride=32),
    dict(arch="deeplabv3plus", backbone="mobilenetv3_small", minimalistic=True),
    dict(arch="deeplabv3plus", backbone="mobilenet_edgetpu", alpha=0.5, output_stride=8, head_filters=64),
    dict(arch="lraspp", backbone="mobilenet_edgetpu", alpha=0.75, output_stride=32),
]
NUM_CLASSES = 3


@functools.lru_cache(maxsize=None)
def _cached(items):
    from kerasseg.models import build_model
    return build_model(num_classes=NUM_CLASSES, **dict(items))


def cached_model(**config):
    """A dynamic-shape model with NUM_CLASSES classes, built once per session; do not train or mutate it."""
    return _cached(tuple(sorted(config.items())))
