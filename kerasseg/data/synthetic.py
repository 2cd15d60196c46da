"""The built-in procedural dataset: shapes over textured, noisy backgrounds.

Nothing is downloaded. Each image is drawn with OpenCV from a random generator
seeded by ``(seed, split, index)``, so a seed always gives the same images and
the train and val splits never share one. A shape's class is its geometry,
and each class also keeps to its own band of hues, while the background
spans every hue: colour alone does not find the shapes, but it helps to tell
them apart, which lets a few minutes of CPU training learn the task. Shapes
overlap (the later one occludes the earlier), vary in scale and rotation, may
leave the frame, and sit on a background of colour noise, stripes and clutter
lines, with pixel noise over everything.
"""
from __future__ import annotations

import functools
import math
from typing import Iterator

import cv2
import numpy as np

from kerasseg.backend import tf
from kerasseg.data.base import Example, DatasetSource, check_split

SHAPE_LABELS = ("background", "circle", "square", "triangle", "cross")
# The centre of each shape class's hue band, in OpenCV's 0..180 hue units (red, yellow-green, cyan, violet),
# and the band's half width; saturation and value vary freely within SHAPE_SATURATION and SHAPE_VALUE.
SHAPE_HUES = (None, 10, 55, 100, 145)
HUE_HALF_WIDTH = 10
# The colours masks and overlays draw each class in (the spec's palette), RGB: background black, each shape in the
# middle of the hue gap 135 degrees round the wheel from its own band (blue, pink, yellow, spring green), so that a
# mask never looks like the shape it covers. The shapes' own bands are 45 degrees away from these at the nearest.
MASK_HUE_OFFSET = -67.5  # OpenCV hue units (half degrees)


def _mask_colors() -> tuple[tuple[int, int, int], ...]:
    hues = [(hue + MASK_HUE_OFFSET) % 180 for hue in SHAPE_HUES[1:]]
    hsv = np.array([[[round(hue), 220, 255] for hue in hues]], np.uint8)
    return ((0, 0, 0),) + tuple(tuple(int(v) for v in rgb) for rgb in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0])


SHAPE_COLORS = _mask_colors()
SHAPE_SATURATION = (150, 255)
SHAPE_VALUE = (120, 255)
SHAPES_PER_IMAGE = (2, 3)
RADIUS_RANGE = (0.16, 0.32)  # a shape's radius, as a fraction of the image's shorter side
# Native size (height, width). It matches train.py's default --image-size, so that training crops (at scales
# 0.5..2.0 around 1) and val images (stretched to --image-size) show the shapes at the same scale.
DEFAULT_SIZE = (64, 64)
_SPLIT_CODES = {"train": 0, "val": 1}


def render_example(rng: np.random.Generator, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Draw one (image uint8 (H,W,3) RGB, mask uint8 (H,W)) pair from ``rng``."""
    yy, xx = _grid(height, width)
    image = _background(rng, xx, yy)
    mask = np.zeros((height, width), np.uint8)
    side = min(height, width)
    for _ in range(int(rng.integers(SHAPES_PER_IMAGE[0], SHAPES_PER_IMAGE[1] + 1))):
        label = int(rng.integers(1, len(SHAPE_LABELS)))
        center = (rng.uniform(0.05, 0.95) * width, rng.uniform(0.05, 0.95) * height)
        radius = rng.uniform(*RADIUS_RANGE) * side
        angle = rng.uniform(0, 2 * math.pi)
        shape_mask = np.zeros((height, width), np.uint8)
        _draw_shape(shape_mask, label, center, radius, angle)
        inside = shape_mask.astype(bool)
        if not inside.any():
            continue
        # A flat colour from the class's hue band, with a gentle linear gradient.
        color = _shape_color(rng, label)
        direction = rng.uniform(-1, 1, size=2).astype(np.float32)
        ramp = xx[inside] * (direction[0] / width) + yy[inside] * (direction[1] / height)
        image[inside] = color + ramp[:, None] * rng.uniform(0, 25, size=3).astype(np.float32)
        mask[inside] = label
    image += rng.standard_normal(size=image.shape, dtype=np.float32) * np.float32(rng.uniform(3.0, 8.0))
    image = np.clip(image, 0, 255).astype(np.uint8)
    return image, mask


@functools.lru_cache(maxsize=8)
def _grid(height, width) -> tuple[np.ndarray, np.ndarray]:
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    return yy, xx


def _background(rng, xx, yy) -> np.ndarray:
    """Low-frequency colour noise under two fine stripe textures, plus clutter lines; float32 (H,W,3).

    The fine texture is what tells background from the flat-filled shapes locally; which shape a region is
    can only be told from its outline.
    """
    height, width = xx.shape
    grid = rng.uniform(0, 255, size=(int(rng.integers(2, 6)), int(rng.integers(2, 6)), 3)).astype(np.float32)
    image = cv2.resize(grid, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(2):
        theta = rng.uniform(0, math.pi)
        period = rng.uniform(3.0, 9.0)
        stripes = np.sin((xx * math.cos(theta) + yy * math.sin(theta)) * (2 * math.pi / period))
        image += stripes[..., None] * rng.uniform(15, 40, size=3).astype(np.float32)
    for _ in range(int(rng.integers(0, 3))):
        p1 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        p2 = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        cv2.line(image, p1, p2, tuple(float(v) for v in rng.uniform(0, 255, 3)), int(rng.integers(1, 3)))
    return np.clip(image, 0, 255, out=image)


def _shape_color(rng, label) -> np.ndarray:
    hue = (SHAPE_HUES[label] + rng.integers(-HUE_HALF_WIDTH, HUE_HALF_WIDTH + 1)) % 180
    hsv = np.array([[[hue, rng.integers(*SHAPE_SATURATION, endpoint=True),
                      rng.integers(*SHAPE_VALUE, endpoint=True)]]], np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float32)


def _draw_shape(canvas, label, center, radius, angle) -> None:
    name = SHAPE_LABELS[label]
    if name == "circle":
        cv2.circle(canvas, (int(round(center[0])), int(round(center[1]))), int(round(radius * 0.9)), 1, -1)
        return
    if name == "square":
        points = [(radius * 0.85 * math.sqrt(2), math.pi / 4 + k * math.pi / 2) for k in range(4)]
    elif name == "triangle":
        points = [(radius * 1.15, k * 2 * math.pi / 3) for k in range(3)]
    else:  # cross: a plus sign whose arms are 0.7 radius wide
        half, arm = radius * 0.35, radius * 1.1
        corners = [(half, arm), (half, half), (arm, half), (arm, -half), (half, -half), (half, -arm),
                   (-half, -arm), (-half, -half), (-arm, -half), (-arm, half), (-half, half), (-half, arm)]
        points = [(math.hypot(x, y), math.atan2(y, x)) for x, y in corners]
    polygon = np.array([[center[0] + r * math.cos(a + angle), center[1] + r * math.sin(a + angle)]
                        for r, a in points])
    cv2.fillPoly(canvas, [np.round(polygon * 16).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=4)


class SyntheticSource(DatasetSource):
    """``synthetic``: procedural shapes, generated on first use and kept in memory.

    ``num_train``/``num_val`` images of ``size`` (height, width) pixels; the
    images depend only on ``seed``. The shapes already vary in scale, so the
    pipeline's scale augmentation is narrower than for real datasets.
    """

    scale_range = (0.8, 1.25)

    def __init__(self, *, num_train: int = 1000, num_val: int = 200, size: tuple[int, int] = DEFAULT_SIZE,
                 seed: int = 0):
        super().__init__()
        if num_train < 1 or num_val < 1:
            raise ValueError(f"synthetic: train and val need at least 1 image, got train={num_train} val={num_val}")
        if min(size) < 16:
            raise ValueError(f"synthetic: size must be at least 16 pixels a side, got {size}")
        self.name = "synthetic"
        self.layout_name = "built-in synthetic shapes"
        self.labels = SHAPE_LABELS
        self.colors = SHAPE_COLORS
        self.seed = int(seed)
        self.size = (int(size[0]), int(size[1]))
        self._counts = {"train": int(num_train), "val": int(num_val)}
        self._cache: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def num_examples(self, split: str) -> int:
        return self._counts[check_split(split)]

    def arrays(self, split: str) -> tuple[np.ndarray, np.ndarray]:
        """All images (N,H,W,3) and masks (N,H,W) of ``split`` as uint8 arrays."""
        check_split(split)
        if split not in self._cache:
            height, width = self.size
            count = self._counts[split]
            images = np.empty((count, height, width, 3), np.uint8)
            masks = np.empty((count, height, width), np.uint8)
            for index in range(count):
                rng = np.random.default_rng([self.seed, _SPLIT_CODES[split], index])
                images[index], masks[index] = render_example(rng, height, width)
            self._cache[split] = (images, masks)
        return self._cache[split]

    def examples(self, split: str, *, shuffle_seed: int | None = None):
        images, masks = self.arrays(split)
        names = [f"synthetic/{split}/{i:05d}" for i in range(len(images))]
        ds = tf.data.Dataset.from_tensor_slices({"image": images, "mask": masks, "name": names})
        if shuffle_seed is not None:
            ds = ds.shuffle(len(images), seed=shuffle_seed, reshuffle_each_iteration=True)
        return ds

    def iter_examples(self, split: str) -> Iterator[Example]:
        images, masks = self.arrays(split)
        for index in range(len(images)):
            yield Example(f"synthetic/{split}/{index:05d}", images[index], masks[index])
