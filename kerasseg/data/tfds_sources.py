"""TensorFlow Datasets sources: Oxford-IIIT Pet, ADE20K (scene_parse150), Cityscapes.

Each maps its raw mask values to class ids with a 256-entry lookup table:

- ``oxford_iiit_pet``: the trimap's 1 (pet) -> 1 ``pet``, 2 (background) -> 0
  ``background``, 3 (the uncertain border drawn around each pet) -> 255 ignore.
  Splits: train -> ``train``, val -> ``test``.
- ``scene_parse150``: 150 ADE20K classes, raw 0 (unlabelled) -> 255 ignore.
  TFDS 4.9 builds this dataset from the Places Challenge 2017 *instance*
  annotations, whose red channel holds one of 100 object categories (their own
  1..100 numbering) and 0 elsewhere. Each category is mapped by name to its id
  among the 150 scene-parsing classes; stuff classes (wall, sky, floor, ...)
  are therefore never labelled and their pixels are ignored. Splits: train ->
  ``train``, val -> ``test`` (the ADE validation images).
- ``cityscapes``: config ``semantic_segmentation`` (gtFine labelIds) from a
  manual directory holding ``leftImg8bit_trainvaltest.zip`` and
  ``gtFine_trainvaltest.zip``; the 34 label ids become the 19 train ids of the
  official benchmark and every other id becomes 255. Splits: train ->
  ``train``, val -> ``validation``.

A raw value the table does not know (outside the dataset's documented values)
stops the pipeline with an error naming the dataset and the example's TFDS id.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Iterator

import numpy as np

from edge.artifact.labels import CITYSCAPES_COLORS, CITYSCAPES_LABELS
from kerasseg.backend import tf
from kerasseg.data.base import IGNORE_LABEL, DatasetError, DatasetSource, Example, check_split

_UNKNOWN = -1  # table entry for raw values a dataset never holds

ADE20K_LABELS = (
    "wall", "building", "sky", "floor", "tree", "ceiling", "road", "bed", "windowpane", "grass", "cabinet",
    "sidewalk", "person", "earth", "door", "table", "mountain", "plant", "curtain", "chair", "car", "water",
    "painting", "sofa", "shelf", "house", "sea", "mirror", "rug", "field", "armchair", "seat", "fence", "desk",
    "rock", "wardrobe", "lamp", "bathtub", "railing", "cushion", "base", "box", "column", "signboard",
    "chest of drawers", "counter", "sand", "sink", "skyscraper", "fireplace", "refrigerator", "grandstand", "path",
    "stairs", "runway", "case", "pool table", "pillow", "screen door", "stairway", "river", "bridge", "bookcase",
    "blind", "coffee table", "toilet", "flower", "book", "hill", "bench", "countertop", "stove", "palm",
    "kitchen island", "computer", "swivel chair", "boat", "bar", "arcade machine", "hovel", "bus", "towel", "light",
    "truck", "tower", "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane",
    "dirt track", "apparel", "pole", "land", "bannister", "escalator", "ottoman", "bottle", "buffet", "poster",
    "stage", "van", "ship", "fountain", "conveyer belt", "canopy", "washer", "plaything", "swimming pool", "stool",
    "barrel", "basket", "waterfall", "tent", "bag", "minibike", "cradle", "oven", "ball", "food", "step", "tank",
    "trade name", "microwave", "pot", "animal", "bicycle", "lake", "dishwasher", "screen", "blanket", "sculpture",
    "hood", "sconce", "vase", "traffic light", "tray", "ashcan", "fan", "pier", "crt screen", "plate", "monitor",
    "bulletin board", "shower", "radiator", "glass", "clock", "flag")

# The Places Challenge 2017 instance categories, in their 1..100 order (instanceInfo100).
ADE20K_INSTANCE_CATEGORIES = (
    "bed", "windowpane", "cabinet", "person", "door", "table", "curtain", "chair", "car", "painting", "sofa",
    "shelf", "mirror", "armchair", "seat", "fence", "desk", "wardrobe", "lamp", "bathtub", "railing", "cushion",
    "box", "column", "signboard", "chest of drawers", "counter", "sink", "fireplace", "refrigerator", "stairs",
    "case", "pool table", "pillow", "screen door", "bookcase", "coffee table", "toilet", "flower", "book", "bench",
    "countertop", "stove", "palm", "kitchen island", "computer", "swivel chair", "boat", "arcade machine", "bus",
    "towel", "light", "truck", "chandelier", "awning", "streetlight", "booth", "television receiver", "airplane",
    "apparel", "pole", "bannister", "ottoman", "bottle", "van", "ship", "fountain", "washer", "plaything", "stool",
    "barrel", "basket", "bag", "minibike", "oven", "ball", "food", "step", "trade name", "microwave", "pot",
    "animal", "bicycle", "dishwasher", "screen", "sculpture", "hood", "sconce", "vase", "traffic light", "tray",
    "ashcan", "fan", "plate", "monitor", "bulletin board", "radiator", "glass", "clock", "flag")

# Cityscapes label id -> train id for the 19 evaluated classes (labels.py of cityscapesScripts).
CITYSCAPES_TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12,
                        26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18}


def _table(mapping: dict[int, int], default: int) -> np.ndarray:
    table = np.full(256, default, np.int32)
    for raw, label in mapping.items():
        table[raw] = label
    return table


PET_TABLE = _table({1: 1, 2: 0, 3: IGNORE_LABEL}, _UNKNOWN)
ADE20K_TABLE = _table({0: IGNORE_LABEL, **{i + 1: ADE20K_LABELS.index(name)
                                            for i, name in enumerate(ADE20K_INSTANCE_CATEGORIES)}}, _UNKNOWN)
CITYSCAPES_TABLE = _table(CITYSCAPES_TRAIN_IDS, IGNORE_LABEL)


@dataclasses.dataclass(frozen=True)
class TfdsLayout:
    """How one TFDS dataset maps onto (image, mask, name)."""

    builder_name: str
    labels: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...] | None
    splits: dict  # our split -> TFDS split
    image_key: str
    mask_key: str
    table: np.ndarray  # raw mask value (first channel) -> class id, 255 ignore, -1 unknown
    needs_manual_dir: bool = False


LAYOUTS = {
    "oxford_iiit_pet": TfdsLayout("oxford_iiit_pet", ("background", "pet"), None,
                                  {"train": "train", "val": "test"}, "image", "segmentation_mask", PET_TABLE),
    "scene_parse150": TfdsLayout("scene_parse150", ADE20K_LABELS, None, {"train": "train", "val": "test"},
                                 "image", "annotation", ADE20K_TABLE),
    "cityscapes": TfdsLayout("cityscapes/semantic_segmentation", CITYSCAPES_LABELS, CITYSCAPES_COLORS,
                             {"train": "train", "val": "validation"}, "image_left", "segmentation_label",
                             CITYSCAPES_TABLE, needs_manual_dir=True),
}


def map_mask(raw_mask, table, *, dataset: str, example_id):
    """Raw TFDS mask (H, W[, C]) -> uint8 class ids via ``table``; unknown raw values raise naming the example."""
    raw = tf.cast(raw_mask if raw_mask.shape.rank == 2 else raw_mask[..., 0], tf.int32)
    mask = tf.gather(tf.constant(table, tf.int32), raw)
    check = tf.debugging.Assert(
        tf.reduce_all(mask != _UNKNOWN),
        [f"{dataset}: mask holds raw values this dataset does not define; example", example_id,
         "values", tf.boolean_mask(raw, mask == _UNKNOWN)[:10]], summarize=10)
    with tf.control_dependencies([check]):
        return tf.cast(mask, tf.uint8)


class TfdsSource(DatasetSource):
    """``tfds:NAME``: one of :data:`LAYOUTS`, read with ``tfds.builder`` / ``as_dataset``.

    ``data_dir`` is TFDS's data directory; ``manual_dir`` holds manually
    downloaded archives (required for Cityscapes); with ``download`` the data
    is downloaded and prepared on first use.
    """

    SHUFFLE_BUFFER = 64

    def __init__(self, name: str, *, data_dir: str | None = None, manual_dir: str | None = None,
                 download: bool = True):
        super().__init__()
        if name not in LAYOUTS:
            raise ValueError(f"dataset 'tfds:{name}': unknown TFDS dataset {name!r}; valid names are {sorted(LAYOUTS)}")
        import tensorflow_datasets as tfds

        layout = LAYOUTS[name]
        if layout.needs_manual_dir and download and not manual_dir:
            raise DatasetError(
                f"dataset 'tfds:{name}' needs the archives downloaded by hand (register at cityscapes-dataset.com): "
                f"put leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip in a folder and pass "
                f"'tfds:{name}?manual_dir=FOLDER'")
        self._tfds = tfds
        self.layout = layout
        self.name = f"tfds:{name}"
        self.layout_name = f"TensorFlow Datasets {layout.builder_name}"
        self.labels = layout.labels
        self.colors = layout.colors
        self._builder = tfds.builder(layout.builder_name, data_dir=data_dir)
        if not download and not self._builder.is_prepared():
            raise DatasetError(self._not_prepared_message(data_dir), kind="missing")
        if download:
            try:
                self._builder.download_and_prepare(
                    download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
            except Exception as err:  # TFDS raises many types (network, assertion, file system)
                raise DatasetError(f"dataset 'tfds:{name}': download_and_prepare failed: {err}") from err

    def _not_prepared_message(self, data_dir: str | None) -> str:
        name, where = self.name, data_dir or "TFDS's default data_dir (~/tensorflow_datasets)"
        if self.layout.needs_manual_dir:
            how = (f"put leftImg8bit_trainvaltest.zip and gtFine_trainvaltest.zip (downloaded by hand from "
                   f"cityscapes-dataset.com) in a folder and run with '{name}?manual_dir=FOLDER&download=1"
                   f"{'&data_dir=' + data_dir if data_dir else ''}'")
        else:
            how = (f"run once with download=1 ('{name}?download=1{'&data_dir=' + data_dir if data_dir else ''}'), "
                   f"or prepare it elsewhere with 'tfds build {self.layout.builder_name.split('/')[0]}' and copy "
                   f"it there; for a manual download, put the archives in "
                   f"{os.path.join(data_dir or '~/tensorflow_datasets', 'downloads', 'manual')}")
        return (f"dataset '{name}': the prepared data is not in {where} (looked for "
                f"{self._builder.data_dir}) and download=0; {how}")

    def num_examples(self, split: str) -> int | None:
        try:
            count = self._builder.info.splits[self.layout.splits[check_split(split)]].num_examples
        except (KeyError, ValueError, AttributeError):
            return None
        return int(count) or None

    def examples(self, split: str, *, shuffle_seed: int | None = None):
        tfds_split = self.layout.splits[check_split(split)]
        read_config = self._tfds.ReadConfig(add_tfds_id=True, shuffle_seed=shuffle_seed)
        ds = self._builder.as_dataset(split=tfds_split, shuffle_files=shuffle_seed is not None,
                                      read_config=read_config)
        ds = ds.map(self._convert, num_parallel_calls=tf.data.AUTOTUNE)
        if shuffle_seed is not None:
            ds = ds.shuffle(self.SHUFFLE_BUFFER, seed=shuffle_seed, reshuffle_each_iteration=True)
        return ds

    def iter_examples(self, split: str) -> Iterator[Example]:
        iterator = self.examples(split).as_numpy_iterator()
        while True:
            try:
                ex = next(iterator)
            except StopIteration:
                return
            except tf.errors.InvalidArgumentError as err:
                kind = "size" if "size differs" in err.message else "labels"
                raise DatasetError(err.message.split("\n")[0], kind=kind) from None
            yield Example(ex["name"].decode(), ex["image"], ex["mask"])

    def _convert(self, ex):
        name = ex["tfds_id"]
        image = ex[self.layout.image_key]
        mask = map_mask(ex[self.layout.mask_key], self.layout.table, dataset=self.name, example_id=name)
        check = tf.debugging.Assert(
            tf.reduce_all(tf.shape(image)[:2] == tf.shape(mask)[:2]),
            [f"{self.name}: mask size differs from image size; example", name,
             "image", tf.shape(image), "mask", tf.shape(mask)])
        with tf.control_dependencies([check]):
            image = tf.identity(image)
        return {"image": image, "mask": mask, "name": name}


def open_tfds(name: str, *, data_dir: str | None = None, manual_dir: str | None = None,
              download: int = 1) -> TfdsSource:
    return TfdsSource(name, data_dir=data_dir, manual_dir=manual_dir, download=bool(download))
