"""The tf.data input pipeline: decode, augment, batch, prefetch.

Training (``training=True``), per example, in this order: photometric jitter
(brightness, contrast, saturation, hue) on the source image; random scale by a
factor in ``scale_range`` (default: the source's, [0.5, 2.0] for real datasets;
image bilinear, mask nearest); pad to at least
``image_size`` (image with ``mean_pixel``, mask with 255); random crop to
``image_size``; random horizontal flip. All random draws are stateless and
seeded by ``(seed, example counter)``, so a seed gives the same batches
however many threads run the map.

Evaluation (``training=False``) is deterministic: the image is resized to
``image_size`` (bilinear) and the mask with nearest neighbour, i.e. the same
stretch the edge runtime applies to a camera frame; metrics are computed at
``image_size``.

Batches are ``(image float32 (B,H,W,3) RGB in [0,255], mask int32 (B,H,W))``,
255 = ignore. Normalisation is the model's job (it is in the spec), not the
pipeline's.
"""
from __future__ import annotations

from typing import Sequence

from kerasseg.backend import tf
from kerasseg.data.base import DEFAULT_SCALE_RANGE, IGNORE_LABEL, DatasetSource, check_split
from edge.artifact import parse_size

BRIGHTNESS_DELTA = 0.125  # fraction of the 0..255 range
CONTRAST_RANGE = (0.75, 1.25)
SATURATION_RANGE = (0.75, 1.25)
HUE_DELTA = 0.04


def build_pipeline(source: DatasetSource, *, split: str, image_size: Sequence[int], batch_size: int,
                   training: bool, seed: int = 0, mean_pixel: Sequence[float] = (127.5, 127.5, 127.5),
                   repeat: bool | None = None, drop_remainder: bool | None = None,
                   scale_range: Sequence[float] | None = None):
    """Batches of ``(image, mask)`` from ``source`` for ``split``; see the module docstring.

    ``image_size`` is ``(height, width)``. ``scale_range`` is ``(min, max)`` of the
    training scale augmentation; ``None`` takes ``source.scale_range``. ``repeat`` defaults to ``training``
    (an endless stream of shuffled epochs), ``drop_remainder`` likewise.
    """
    check_split(split)
    height, width = parse_size(image_size, name="image_size")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    if len(mean_pixel) != 3:
        raise ValueError(f"mean_pixel: expected 3 values (R, G, B), got {mean_pixel!r}")
    scale_range = check_scale_range(source.scale_range if scale_range is None else scale_range)
    repeat = training if repeat is None else repeat
    drop_remainder = training if drop_remainder is None else drop_remainder
    mean = tf.constant(mean_pixel, tf.float32)

    ds = source.examples(split, shuffle_seed=seed if training else None)
    if repeat:
        ds = ds.repeat()
    if training:
        # A running counter gives every example (in every epoch) its own random stream.
        ds = tf.data.Dataset.zip((ds, tf.data.Dataset.counter()))
        ds = ds.map(lambda ex, i: augment(ex["image"], ex["mask"], size=(height, width), mean_pixel=mean,
                                          scale_range=scale_range, seed=tf.stack([tf.cast(seed, tf.int64), i])),
                    num_parallel_calls=tf.data.AUTOTUNE)
    else:
        ds = ds.map(lambda ex: resize_for_eval(ex["image"], ex["mask"], size=(height, width)),
                    num_parallel_calls=tf.data.AUTOTUNE)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.prefetch(tf.data.AUTOTUNE)


def check_scale_range(value) -> tuple[float, float]:
    """``(min, max)`` scale factors with ``0 < min <= max``, else a ValueError naming ``scale_range``."""
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"scale_range: expected two numbers (min, max), got {value!r}") from None
    if not 0 < low <= high:
        raise ValueError(f"scale_range: expected 0 < min <= max, got {value!r}")
    return low, high


def augment(image, mask, *, size, mean_pixel, seed, scale_range=DEFAULT_SCALE_RANGE):
    """One training example: jitter, scale, pad, crop, flip. ``seed`` is a shape-[2] int tensor."""
    seeds = tf.random.experimental.stateless_split(tf.cast(seed, tf.int64), num=7)
    image = photometric_jitter(tf.cast(image, tf.float32), seeds[:4])
    mask = tf.cast(mask, tf.int32)

    scale = tf.random.stateless_uniform([], seeds[4], scale_range[0], scale_range[1])
    in_size = tf.cast(tf.shape(image)[:2], tf.float32)
    scaled = tf.maximum(tf.cast(tf.round(in_size * scale), tf.int32), 1)
    image = tf.image.resize(image, scaled, method="bilinear")
    mask = resize_mask(mask, scaled)

    height, width = size
    pad_h = tf.maximum(height - scaled[0], 0)
    pad_w = tf.maximum(width - scaled[1], 0)
    paddings = [[0, pad_h], [0, pad_w]]
    image = tf.pad(image - mean_pixel, paddings + [[0, 0]]) + mean_pixel
    mask = tf.pad(mask, paddings, constant_values=IGNORE_LABEL)

    stacked = tf.concat([image, tf.cast(mask[..., None], tf.float32)], axis=-1)
    stacked = tf.image.stateless_random_crop(stacked, [height, width, 4], seed=seeds[5])
    flip = tf.random.stateless_uniform([], seeds[6]) < 0.5
    stacked = tf.cond(flip, lambda: tf.reverse(stacked, axis=[1]), lambda: stacked)
    image = tf.clip_by_value(stacked[..., :3], 0.0, 255.0)
    mask = tf.cast(tf.round(stacked[..., 3]), tf.int32)
    image.set_shape([height, width, 3])
    mask.set_shape([height, width])
    return image, mask


def photometric_jitter(image, seeds):
    """Random brightness, contrast, saturation and hue on a float image in [0, 255]."""
    image = image / 255.0
    image = tf.image.stateless_random_brightness(image, BRIGHTNESS_DELTA, seed=seeds[0])
    image = tf.image.stateless_random_contrast(image, *CONTRAST_RANGE, seed=seeds[1])
    image = tf.clip_by_value(image, 0.0, 1.0)
    image = tf.image.stateless_random_saturation(image, *SATURATION_RANGE, seed=seeds[2])
    image = tf.image.stateless_random_hue(image, HUE_DELTA, seed=seeds[3])
    return tf.clip_by_value(image, 0.0, 1.0) * 255.0


def resize_for_eval(image, mask, *, size):
    """Deterministic: stretch the image (bilinear) and the mask (nearest) to ``size``."""
    image = tf.image.resize(tf.cast(image, tf.float32), size, method="bilinear")
    image = tf.clip_by_value(image, 0.0, 255.0)
    mask = resize_mask(tf.cast(mask, tf.int32), size)
    image.set_shape([size[0], size[1], 3])
    mask.set_shape([size[0], size[1]])
    return image, mask


def resize_mask(mask, size):
    """Nearest-neighbour resize of an (H, W) label mask: never invents a label value."""
    return tf.image.resize(mask[..., None], size, method="nearest")[..., 0]


