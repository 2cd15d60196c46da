"""``coco:PATH``: COCO segmentation JSON (instances or stuff; polygons and RLE) as semantic masks.

Layouts PATH may have:

- the dataset-hub export: ``train/``, ``valid/`` (or ``val/``) and maybe ``test/``, each holding
  ``_annotations.coco.json`` and its images;
- the COCO layout: ``annotations/{instances,stuff}_{train,val}YEAR.json`` with the images in
  ``{train,val}YEAR/`` (option ``annotations=instances|stuff`` picks one kind when both exist);
- one JSON file: its images are found by ``file_name`` relative to the JSON's folder (or its
  ``images/`` subfolder), and ``val_fraction`` of them, drawn with the seed, form val.

Masks are rasterised with pycocotools (polygons and RLE, compressed or not). Class 0 is
``background`` (every pixel no annotation covers); the categories follow in increasing category
id as classes 1..K, and ``label_ids`` records each class's category id (0 for background). A
hub export's parent category (one that other categories name as their supercategory and that no
annotation uses) is left out. Overlaps: annotations are drawn largest area first, so where two
overlap the smaller one wins. A crowd region (``iscrowd: 1``) becomes the ignore label (255),
except where a non-crowd annotation covers it.
"""
from __future__ import annotations

import glob
import json
import os
import re

import numpy as np

from kerasseg.data.base import IGNORE_LABEL, DatasetError, validate_example
from kerasseg.data.files import IMAGE_EXTENSIONS, FileSource, check_val_fraction, read_image, split_stems

HUB_FILE = "_annotations.coco.json"
HUB_SPLITS = {"train": ("train",), "val": ("valid", "val")}
KINDS = ("instances", "stuff")


def read_coco(path: str) -> dict:
    """Load a COCO JSON file and check the fields used here; raise :class:`DatasetError` naming the file."""
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"COCO file {path}: cannot read ({err})", kind="decode") from None
    for key in ("images", "annotations", "categories"):
        if not isinstance(data, dict) or not isinstance(data.get(key), list):
            raise DatasetError(f"COCO file {path}: needs a list under {key!r}", kind="layout")
    for category in data["categories"]:
        name = category.get("name") if isinstance(category, dict) else None
        if not isinstance(name, str) or not name.strip():
            raise DatasetError(f"COCO file {path}: category {category!r} has no name", kind="layout")
        if not isinstance(category.get("id"), int):
            raise DatasetError(f"COCO file {path}: category {name!r} has no integer id", kind="layout")
    return data


def rasterize(annotations, *, height: int, width: int, class_of: dict, where: str) -> np.ndarray:
    """uint8 (H, W) class ids from one image's annotations (rule in the module docstring)."""
    from pycocotools import mask as mask_utils
    out = np.zeros((height, width), np.uint8)
    crowd = [a for a in annotations if a.get("iscrowd")]
    solid = sorted((a for a in annotations if not a.get("iscrowd")), key=lambda a: -float(a.get("area", 0)))
    for ann in crowd + solid:
        seg = ann.get("segmentation")
        try:
            if isinstance(seg, list):  # polygons
                rle = mask_utils.merge(mask_utils.frPyObjects(seg, height, width))
            elif isinstance(seg, dict) and isinstance(seg.get("counts"), list):  # uncompressed RLE
                rle = mask_utils.frPyObjects(seg, height, width)
            elif isinstance(seg, dict):  # compressed RLE
                rle = dict(seg, counts=seg["counts"].encode() if isinstance(seg["counts"], str) else seg["counts"])
            else:
                raise ValueError(f"unknown segmentation {type(seg).__name__}")
            region = mask_utils.decode(rle).astype(bool)
        except (ValueError, TypeError, KeyError, IndexError) as err:
            raise DatasetError(f"{where}: annotation {ann.get('id')}: cannot rasterise its segmentation ({err})",
                               kind="decode") from None
        if region.shape != (height, width):
            raise DatasetError(f"{where}: annotation {ann.get('id')} is {region.shape[1]}x{region.shape[0]}, "
                               f"its image {width}x{height}", kind="size")
        out[region] = IGNORE_LABEL if ann.get("iscrowd") else class_of[ann["category_id"]]
    return out


class CocoSource(FileSource):
    """``coco:PATH`` (see the module docstring); options ``val_fraction`` and ``annotations``."""

    def __init__(self, path: str, *, seed: int = 0, val_fraction: float = 0.2, annotations: str | None = None,
                 skip_bad_files: bool = False):
        super().__init__(skip_bad_files=skip_bad_files)
        check_val_fraction(val_fraction, where=f"coco:{path}")
        if annotations is not None and annotations not in KINDS:
            raise ValueError(f"coco:{path}: annotations must be one of {KINDS}, got {annotations!r}")
        self.name = f"coco:{path}"
        self.root = os.path.expanduser(path)
        files = self._find_files(annotations)
        data = {split: read_coco(file) for split, (file, _) in files.items()}
        self._set_classes(data)
        self._records: dict[str, tuple] = {}  # image path -> (annotations, height, width, json file)
        for split, (file, image_dir) in files.items():
            self._pairs[split] = self._index(data[split], file, image_dir)
        if len(files) == 1:
            split_file = next(iter(files.values()))[0]
            pairs = dict((p[0], p) for p in self._pairs.pop("all"))
            splits = split_stems(sorted(pairs), val_fraction=val_fraction, seed=seed, where=split_file)
            for split, (paths, _) in splits.items():
                self._pairs[split] = [pairs[p] for p in paths]
            self.split_note = (f"{self.name}: one annotation file; split its {len(pairs)} images into "
                               f"{len(self._pairs['train'])} train and {len(self._pairs['val'])} val "
                               f"(val_fraction {val_fraction}, seed {seed})")

    def _find_files(self, kind: str | None) -> dict:
        root = self.root
        if os.path.isfile(root):
            self.layout_name = f"COCO JSON file {os.path.basename(root)}"
            folder = os.path.dirname(root)
            images = os.path.join(folder, "images")
            return {"all": (root, images if os.path.isdir(images) else folder)}
        if not os.path.isdir(root):
            raise DatasetError(f"{self.name}: no such file or folder", kind="missing")
        hub = {split: [os.path.join(root, d, HUB_FILE) for d in dirs if os.path.isfile(os.path.join(root, d, HUB_FILE))]
               for split, dirs in HUB_SPLITS.items()}
        if hub["train"] and hub["val"]:
            self.layout_name = f"dataset-hub COCO export ({{train,valid}}/{HUB_FILE})"
            return {split: (found[0], os.path.dirname(found[0])) for split, found in hub.items()}
        files = {}
        for split in ("train", "val"):
            pattern = re.compile(rf"({'|'.join(KINDS)})_({split}\w*)\.json$")
            found = sorted(f for f in glob.glob(os.path.join(root, "annotations", "*.json"))
                           if pattern.search(os.path.basename(f))
                           and (kind is None or os.path.basename(f).startswith(kind + "_")))
            kinds = {pattern.search(os.path.basename(f)).group(1) for f in found}
            if len(kinds) > 1:
                raise DatasetError(f"{self.name}: both instances and stuff annotations for {split}; choose one with "
                                   f"'coco:{root}?annotations=instances' (or stuff)", kind="layout")
            if found:
                files[split] = (found[0], os.path.join(root, pattern.search(os.path.basename(found[0])).group(2)))
        if len(files) == 2:
            self.layout_name = "COCO (annotations/{instances,stuff}_{train,val}*.json)"
            return files
        raise DatasetError(f"{self.name}: found no COCO layout; expected train/ and valid/ each with {HUB_FILE}, or "
                           f"annotations/instances_train*.json and annotations/instances_val*.json, or a JSON file",
                           kind="layout")

    def _set_classes(self, data: dict) -> None:
        categories, used = {}, set()
        for split_data in data.values():
            for category in split_data["categories"]:
                categories.setdefault(category["id"], category)
            used.update(a.get("category_id") for a in split_data["annotations"])
        parents = {c.get("supercategory") for c in categories.values()}
        ids = sorted(i for i, c in categories.items() if i in used or c["name"] not in parents)
        self.labels = ("background",) + tuple(categories[i]["name"].strip() for i in ids)
        if len(set(self.labels)) != len(self.labels):
            raise DatasetError(f"{self.name}: category names must be unique, got {list(self.labels)}")
        if len(self.labels) > IGNORE_LABEL:
            raise DatasetError(f"{self.name}: {len(self.labels)} classes do not fit beside the ignore label")
        self.label_ids = (0,) + tuple(ids)
        self.class_of = {category_id: index + 1 for index, category_id in enumerate(ids)}
        self.colors = None

    def _index(self, data: dict, file: str, image_dir: str) -> list[tuple[str, str]]:
        by_image = {}
        for ann in data["annotations"]:
            if ann.get("category_id") not in self.class_of:
                raise DatasetError(f"COCO file {file}: annotation {ann.get('id')} has category_id "
                                   f"{ann.get('category_id')!r}, which is not in its categories", kind="labels")
            by_image.setdefault(ann.get("image_id"), []).append(ann)
        pairs, missing = [], []
        for image in data["images"]:
            path = os.path.join(image_dir, str(image.get("file_name", "")))
            if not os.path.isfile(path) or os.path.splitext(path)[1].lower() not in IMAGE_EXTENSIONS:
                missing.append(f"COCO file {file}: image {image.get('id')} names {path}, which is not there")
                continue
            try:
                height, width = int(image["height"]), int(image["width"])
            except (KeyError, TypeError, ValueError):
                raise DatasetError(f"COCO file {file}: image {image.get('id')} ({path}) needs integer height and "
                                   f"width", kind="layout") from None
            self._records[path] = (by_image.get(image.get("id"), []), height, width, file)
            pairs.append((path, file))
        if missing and not self.skip_bad_files:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise DatasetError(missing[0] + more, kind="missing")
        for message in missing:
            self._record_bad_file(message)
        if not pairs:
            raise DatasetError(f"COCO file {file}: no images", kind="layout")
        return pairs

    def read_mask(self, mask_path: str, *, image_path: str = "") -> np.ndarray:
        annotations, height, width, file = self._records[image_path]
        return rasterize(annotations, height=height, width=width, class_of=self.class_of,
                         where=f"COCO file {file}, image {image_path}")

    def load(self, image_path: str, mask_path: str):
        """Decode the image and rasterise its annotations; raise :class:`DatasetError` naming the file."""
        image = read_image(image_path)
        mask = self.read_mask(mask_path, image_path=image_path)
        validate_example(f"image {image_path} (COCO file {mask_path})", image, mask, self.num_classes,
                         self.ignore_label)
        return image, mask
