"""Tiny on-disk datasets for the data tests (VOC layout and image/mask folders)."""
import os

import cv2
import numpy as np
from PIL import Image

from kerasseg.artifact import default_colors

VOC_PALETTE = [v for color in default_colors(256) for v in color]


def random_pair(rng, size=(24, 32), num_classes=3):
    """An RGB image and a mask with a 255 border, both (H, W)."""
    height, width = size
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    mask = rng.integers(0, num_classes, (height, width)).astype(np.uint8)
    mask[0, :] = 255
    return image, mask


def write_image(path, image):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    assert cv2.imwrite(path, image[..., ::-1])


def write_mask(path, mask, *, palette=True):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if palette:  # a palette PNG: pixel values are indices into the VOC colour table
        img = Image.frombytes("P", (mask.shape[1], mask.shape[0]), np.ascontiguousarray(mask).tobytes())
        img.putpalette(VOC_PALETTE)
    else:
        img = Image.fromarray(mask)
    img.save(path)


def make_voc(root, *, train=("a", "b", "c"), val=("d", "e"), size=(24, 32), num_classes=21, seed=0):
    """A VOC2012-style tree; returns {stem: mask} of what was written."""
    rng = np.random.default_rng(seed)
    masks = {}
    for stem in list(train) + list(val):
        image, mask = random_pair(rng, size, num_classes)
        write_image(os.path.join(root, "JPEGImages", stem + ".jpg"), image)
        write_mask(os.path.join(root, "SegmentationClass", stem + ".png"), mask)
        masks[stem] = mask
    lists = os.path.join(root, "ImageSets", "Segmentation")
    os.makedirs(lists, exist_ok=True)
    for split, stems in (("train", train), ("val", val)):
        with open(os.path.join(lists, f"{split}.txt"), "w") as f:
            f.write("".join(s + "\n" for s in stems))
    return masks


def make_folder(root, *, stems=("s0", "s1", "s2", "s3", "s4"), size=(24, 32), num_classes=3, palette=False,
                image_ext=".png", seed=0):
    """images/ + masks/ paired by stem; returns {stem: (image, mask)}."""
    rng = np.random.default_rng(seed)
    pairs = {}
    for stem in stems:
        image, mask = random_pair(rng, size, num_classes)
        write_image(os.path.join(root, "images", stem + image_ext), image)
        write_mask(os.path.join(root, "masks", stem + ".png"), mask, palette=palette)
        pairs[stem] = (image, mask)
    return pairs
