"""Tiny on-disk datasets for the data tests: VOC, image/mask folders, tool exports, COCO and ADE20K."""
import json
import os

import cv2
import numpy as np
from PIL import Image

from edge.artifact import default_colors

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


# --- Annotation-tool exports and public layouts (issue 12). Each writer returns {stem or file: expected ids}.

CVAT_COLORS = {"background": (0, 0, 0), "cat": (250, 50, 83), "dog": (61, 245, 61)}


def _blocks(rng, size, num_classes):
    """A mask of random rectangles of class ids 1..num_classes-1 on 0, independent of any loader."""
    height, width = size
    mask = np.zeros(size, np.uint8)
    for _ in range(3):
        y0, x0 = rng.integers(0, height - 4), rng.integers(0, width - 4)
        y1, x1 = y0 + rng.integers(3, height - y0 + 1), x0 + rng.integers(3, width - x0 + 1)
        mask[y0:y1, x0:x1] = rng.integers(1, num_classes)
    return mask


def make_labelme_voc(root, *, stems=tuple(f"img{i}" for i in range(8)), size=(32, 40), seed=0):
    """labelme's VOC export: JPEGImages/, palette SegmentationClass/ (255 = __ignore__), class_names.txt,
    no ImageSets."""
    rng = np.random.default_rng(seed)
    with open(os.path.join(_mkdir(root), "class_names.txt"), "w") as f:
        f.write("__ignore__\n_background_\ncat\ndog\n")
    expected = {}
    for stem in stems:
        mask = _blocks(rng, size, 3)
        mask[:2, :] = 255
        write_image(os.path.join(root, "JPEGImages", stem + ".jpg"), random_pair(rng, size)[0])
        write_mask(os.path.join(root, "SegmentationClass", stem + ".png"), mask)
        expected[stem] = mask
    return expected


def make_cvat(root, *, stems=tuple(f"frame_{i:06d}" for i in range(8)), size=(32, 40), seed=1, colors=CVAT_COLORS):
    """CVAT's "Segmentation mask" export: RGB masks, labelmap.txt and ImageSets/Segmentation/default.txt."""
    rng = np.random.default_rng(seed)
    with open(os.path.join(_mkdir(root), "labelmap.txt"), "w") as f:
        f.write("# label:color_rgb:parts:actions\n")
        f.write("".join(f"{name}:{r},{g},{b}::\n" for name, (r, g, b) in colors.items()))
    palette = np.array(list(colors.values()), np.uint8)
    expected = {}
    for stem in stems:
        mask = _blocks(rng, size, len(colors))
        write_image(os.path.join(root, "JPEGImages", stem + ".jpg"), random_pair(rng, size)[0])
        _mkdir(os.path.join(root, "SegmentationClass"))
        Image.fromarray(palette[mask]).save(os.path.join(root, "SegmentationClass", stem + ".png"))
        expected[stem] = mask
    _mkdir(os.path.join(root, "ImageSets", "Segmentation"))
    with open(os.path.join(root, "ImageSets", "Segmentation", "default.txt"), "w") as f:
        f.write("".join(s + "\n" for s in stems))
    return expected


def rle_counts(region):
    """Uncompressed COCO RLE counts of a binary (H, W) region: column-major runs, starting with zeros."""
    flat = region.astype(np.uint8).ravel(order="F")
    changes = np.flatnonzero(np.diff(flat)) + 1
    runs = np.diff(np.concatenate([[0], changes, [flat.size]])).tolist()
    return ([0] + runs) if flat[0] else runs


def coco_json(folder, stems, *, size=(32, 40), seed=2, hub_parent=False):
    """Images in ``folder`` and their COCO dict: per image a big polygon (cat), a smaller overlapping
    polygon (dog, wins), an uncompressed RLE (dog) and a crowd RLE (ignore). Returns (dict, {file: expected})."""
    rng = np.random.default_rng(seed)
    height, width = size
    categories = [{"id": 3, "name": "cat", "supercategory": "animals"},
                  {"id": 7, "name": "dog", "supercategory": "animals"}]
    if hub_parent:  # dataset hubs add the parent category, unused by any annotation
        categories.insert(0, {"id": 0, "name": "animals", "supercategory": "none"})
    images, annotations, expected = [], [], {}
    for index, stem in enumerate(stems):
        file = stem + ".jpg"
        write_image(os.path.join(folder, file), random_pair(rng, size)[0])
        images.append({"id": index + 10, "file_name": file, "height": height, "width": width})
        mask = np.zeros(size, np.uint8)
        crowd = np.zeros(size, bool)
        crowd[height - 10:, :8] = True  # overlaps the big polygon, which wins there
        mask[crowd] = 255
        y0, x0 = int(rng.integers(0, 6)), int(rng.integers(0, 6))
        big = (x0, y0, x0 + 24, y0 + 20)
        small = (x0 + 4, y0 + 4, x0 + 12, y0 + 10)
        mask[big[1]:big[3], big[0]:big[2]] = 1
        mask[small[1]:small[3], small[0]:small[2]] = 2
        blob = np.zeros(size, bool)
        blob[2:9, width - 9:width - 2] = True
        blob[4:6, width - 7:width - 4] = False  # a hole, which only RLE can carry
        mask[blob] = 2
        def poly(x0, y0, x1, y1):
            return [[x0, y0, x1, y0, x1, y1, x0, y1]]
        for number, (seg, category, area, is_crowd) in enumerate([
                (poly(*small), 7, 48, 0), (poly(*big), 3, 480, 0),
                ({"size": [height, width], "counts": rle_counts(blob)}, 7, int(blob.sum()), 0),
                ({"size": [height, width], "counts": rle_counts(crowd)}, 3, int(crowd.sum()), 1)]):
            annotations.append({"id": 100 * index + number, "image_id": index + 10, "category_id": category,
                                "segmentation": seg, "area": area, "iscrowd": is_crowd})
        expected[file] = mask
    return {"images": images, "annotations": annotations, "categories": categories}, expected


def make_coco_hub(root, *, size=(32, 40)):
    """The dataset-hub COCO export: train/, valid/, test/ each with _annotations.coco.json and images."""
    expected = {}
    for split, count in (("train", 6), ("valid", 2), ("test", 1)):
        folder = _mkdir(os.path.join(root, split))
        data, masks = coco_json(folder, [f"{split}_{i}" for i in range(count)], size=size, seed=len(split),
                                hub_parent=True)
        with open(os.path.join(folder, "_annotations.coco.json"), "w") as f:
            json.dump(data, f)
        expected.update({os.path.join(folder, k): v for k, v in masks.items()})
    return expected


def make_coco_layout(root, *, size=(32, 40)):
    """The COCO layout: annotations/instances_{train,val}2017.json, images in train2017/ and val2017/."""
    expected = {}
    for split, count in (("train", 6), ("val", 2)):
        folder = _mkdir(os.path.join(root, f"{split}2017"))
        data, masks = coco_json(folder, [f"{i:012d}" for i in range(count)], size=size, seed=len(split) + 5)
        with open(os.path.join(_mkdir(os.path.join(root, "annotations")), f"instances_{split}2017.json"), "w") as f:
            json.dump(data, f)
        expected.update({os.path.join(folder, k): v for k, v in masks.items()})
    return expected


def make_coco_file(root, *, count=8, size=(32, 40)):
    """One COCO instances JSON beside an images/ folder; returns (json path, {image path: expected})."""
    data, masks = coco_json(_mkdir(os.path.join(root, "images")), [f"im{i}" for i in range(count)], size=size)
    path = os.path.join(root, "instances.json")
    with open(path, "w") as f:
        json.dump(data, f)
    return path, {os.path.join(root, "images", k): v for k, v in masks.items()}


def make_ade20k(root, *, counts=(("training", 6), ("validation", 2)), size=(32, 40), seed=3):
    """ADEChallengeData2016/ with raw masks 0..150; returns {image path: expected ids (0 -> 255, v -> v-1)}."""
    rng = np.random.default_rng(seed)
    base = os.path.join(root, "ADEChallengeData2016")
    expected = {}
    for folder, count in counts:
        for i in range(count):
            stem = f"ADE_{folder}_{i:08d}"
            raw = rng.integers(0, 151, size).astype(np.uint8)
            raw[0, 0], raw[0, 1] = 0, 150
            image_path = os.path.join(base, "images", folder, stem + ".jpg")
            write_image(image_path, random_pair(rng, size)[0])
            write_mask(os.path.join(base, "annotations", folder, stem + ".png"), raw, palette=False)
            expected[image_path] = np.where(raw == 0, 255, raw.astype(np.int32) - 1).astype(np.uint8)
    return expected


def _mkdir(path):
    os.makedirs(path, exist_ok=True)
    return path
