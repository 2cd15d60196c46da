"""Datasets on disk: PASCAL VOC and plain image/mask folders.

Images are decoded with OpenCV (EXIF orientation ignored, so they stay
aligned with their masks); masks with Pillow, which reads a palette PNG's
indices rather than its colours. Every decoding or consistency problem raises
:class:`DatasetError` naming the file. In the tf.data pipeline the same loader
runs inside ``tf.py_function`` on parallel threads (OpenCV and Pillow release
the GIL while decoding), so a bad file stops training with its name.
"""
from __future__ import annotations

import os
from typing import Iterator, Sequence

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from kerasseg.backend import tf
from kerasseg.data.base import IGNORE_LABEL, DatasetError, DatasetSource, Example, check_split, validate_example

VOC_LABELS = ("background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
              "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
              "tvmonitor")
LABEL_FILES = ("labels.txt", "class_names.txt", "classes.txt")
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
MASK_EXTENSIONS = (".png", ".bmp", ".tif", ".tiff")


def read_image(path: str) -> np.ndarray:
    """Decode an image file to uint8 RGB (H, W, 3); raise :class:`DatasetError` naming ``path``."""
    try:
        data = np.fromfile(path, np.uint8)
    except FileNotFoundError:
        raise DatasetError(f"image {path}: file not found", kind="missing") from None
    except OSError as err:
        raise DatasetError(f"image {path}: cannot read ({err})", kind="decode") from None
    image = cv2.imdecode(data, cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION) if data.size else None
    if image is None:
        raise DatasetError(f"image {path}: cannot decode ({data.size} bytes; corrupt or not an image)",
                           kind="decode")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_mask(path: str) -> np.ndarray:
    """Decode an index or palette mask to uint8 (H, W) class ids; raise :class:`DatasetError` naming ``path``."""
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            array = np.asarray(img)
    except FileNotFoundError:
        raise DatasetError(f"mask {path}: file not found", kind="missing") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise DatasetError(f"mask {path}: cannot decode ({err})", kind="decode") from None
    if mode in ("RGB", "RGBA"):
        if not (np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2])):
            raise DatasetError(
                f"mask {path}: is a colour ({mode}) image; masks must be index (greyscale) or palette PNGs "
                f"holding class ids", kind="decode")
        array = array[..., 0]
    if array.ndim != 2:
        raise DatasetError(f"mask {path}: expected one channel, got shape {array.shape} (mode {mode})",
                           kind="decode")
    if array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise DatasetError(f"mask {path}: values {int(array.min())}..{int(array.max())} do not fit in 0..255",
                               kind="labels")
        array = array.astype(np.uint8)
    return array


def read_label_file(path: str) -> tuple[str, ...]:
    """Class names, one per line (line i names class i); blank lines and '#' comments are skipped."""
    with open(path, encoding="utf-8") as f:
        names = [line.split("#", 1)[0].strip() for line in f]
    names = tuple(n for n in names if n)
    if len(names) < 2:
        raise DatasetError(f"labels file {path}: needs at least 2 class names, found {len(names)}")
    if len(set(names)) != len(names):
        raise DatasetError(f"labels file {path}: class names must be unique, got {list(names)}")
    if len(names) > IGNORE_LABEL:
        raise DatasetError(f"labels file {path}: at most {IGNORE_LABEL} classes fit beside the ignore label, "
                           f"got {len(names)}")
    return names


def find_label_file(directory: str) -> str | None:
    for name in LABEL_FILES:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def read_list_file(path: str) -> list[str]:
    """Stems listed one per line (VOC ImageSets style)."""
    if not os.path.isfile(path):
        raise DatasetError(f"split list {path}: file not found")
    with open(path, encoding="utf-8") as f:
        return [line.split()[0] for line in f if line.strip()]


class FileSource(DatasetSource):
    """Pairs of (image file, mask file) per split; subclasses fill ``self._pairs``."""

    def __init__(self, *, skip_bad_files: bool = False):
        super().__init__(skip_bad_files=skip_bad_files)
        self._pairs: dict[str, list[tuple[str, str]]] = {}

    def pairs(self, split: str) -> list[tuple[str, str]]:
        """The ``(image_path, mask_path)`` pairs of ``split``."""
        return self._pairs[check_split(split)]

    def num_examples(self, split: str) -> int:
        return len(self.pairs(split))

    def load(self, image_path: str, mask_path: str) -> tuple[np.ndarray, np.ndarray]:
        """Decode and validate one pair; raise :class:`DatasetError` naming the bad file."""
        image = read_image(image_path)
        mask = read_mask(mask_path)
        validate_example(f"mask {mask_path} (image {image_path})", image, mask, self.num_classes, self.ignore_label)
        return image, mask

    def iter_examples(self, split: str) -> Iterator[Example]:
        for image_path, mask_path in self.pairs(split):
            image, mask = self.load(image_path, mask_path)
            yield Example(image_path, image, mask)

    def iter_checked(self, split: str) -> Iterator[Example | DatasetError]:
        for image_path, mask_path in self.pairs(split):
            try:
                image, mask = self.load(image_path, mask_path)
            except DatasetError as err:
                yield err
                continue
            yield Example(image_path, image, mask)

    def examples(self, split: str, *, shuffle_seed: int | None = None):
        pairs = self.pairs(split)
        _ = self.labels  # resolve lazily computed labels here, not in the decoding threads
        ds = tf.data.Dataset.from_tensor_slices(([p[0] for p in pairs], [p[1] for p in pairs]))
        if shuffle_seed is not None:
            ds = ds.shuffle(len(pairs), seed=shuffle_seed, reshuffle_each_iteration=True)
        ds = ds.map(lambda image, mask: self._load_tensors(image, mask, split), num_parallel_calls=tf.data.AUTOTUNE)
        if self.skip_bad_files:
            ds = ds.filter(lambda ex: ex["ok"])
        return ds.map(lambda ex: {"image": ex["image"], "mask": ex["mask"], "name": ex["name"]})

    def _load_tensors(self, image_path, mask_path, split):
        def load(image_path, mask_path):
            image_path, mask_path = image_path.numpy().decode(), mask_path.numpy().decode()
            try:
                image, mask = self.load(image_path, mask_path)
            except DatasetError as err:
                if not self.skip_bad_files:
                    self.failure = err  # TensorFlow wraps what it raises; the trainer re-raises this
                    raise
                self._record_bad_file(str(err), split=split)
                return np.zeros((1, 1, 3), np.uint8), np.zeros((1, 1), np.uint8), False
            return image, mask, True

        image, mask, ok = tf.py_function(load, [image_path, mask_path], [tf.uint8, tf.uint8, tf.bool])
        image.set_shape([None, None, 3])
        mask.set_shape([None, None])
        ok.set_shape([])
        return {"image": image, "mask": mask, "name": image_path, "ok": ok}


class VocSource(FileSource):
    """``voc:PATH``: JPEGImages/, SegmentationClass/ and ImageSets/Segmentation/{train,val}.txt.

    PATH is the VOC2012 directory or one holding ``VOC2012/``. If
    ``SegmentationClassAug/`` exists (the SBD-augmented masks), masks come
    from it where it has the file, and train lists ``train_aug.txt`` if that
    exists, else every mask in it that is not in val. Class names come from a
    labels file in PATH (``labels.txt``, one per line) or are the 21 VOC names.
    """

    def __init__(self, path: str, *, skip_bad_files: bool = False):
        super().__init__(skip_bad_files=skip_bad_files)
        root = os.path.expanduser(path)
        if not os.path.isdir(os.path.join(root, "JPEGImages")) and os.path.isdir(
                os.path.join(root, "VOC2012", "JPEGImages")):
            root = os.path.join(root, "VOC2012")
        for sub in ("JPEGImages", "SegmentationClass", os.path.join("ImageSets", "Segmentation")):
            if not os.path.isdir(os.path.join(root, sub)):
                raise DatasetError(f"voc:{path}: missing folder {os.path.join(root, sub)}; a VOC dataset holds "
                                   f"JPEGImages/, SegmentationClass/ and ImageSets/Segmentation/{{train,val}}.txt")
        self.root = root
        self.name = f"voc:{path}"
        label_file = find_label_file(root)
        self.labels = read_label_file(label_file) if label_file else VOC_LABELS
        self.colors = None
        lists = os.path.join(root, "ImageSets", "Segmentation")
        aug = os.path.join(root, "SegmentationClassAug")
        val = read_list_file(os.path.join(lists, "val.txt"))
        if os.path.isdir(aug) and os.path.isfile(os.path.join(lists, "train_aug.txt")):
            train = read_list_file(os.path.join(lists, "train_aug.txt"))
        elif os.path.isdir(aug):
            held_out = set(val)
            train = sorted(os.path.splitext(f)[0] for f in os.listdir(aug)
                           if f.endswith(".png") and os.path.splitext(f)[0] not in held_out)
        else:
            train = read_list_file(os.path.join(lists, "train.txt"))
        for split, stems in (("train", train), ("val", val)):
            self._pairs[split] = _keep_existing(self, split, [
                (os.path.join(root, "JPEGImages", stem + ".jpg"), self._mask_path(stem, aug)) for stem in stems])

    def _mask_path(self, stem: str, aug: str) -> str:
        candidate = os.path.join(aug, stem + ".png")
        if os.path.isdir(aug) and os.path.isfile(candidate):
            return candidate
        return os.path.join(self.root, "SegmentationClass", stem + ".png")


class FolderSource(FileSource):
    """``folder:PATH``: ``images/`` and ``masks/`` paired by file stem.

    Masks are index (greyscale) or palette PNGs of class ids (255 = ignore).
    The split comes from ``train.txt`` and ``val.txt`` in PATH (stems, one per
    line) when both exist; otherwise ``val_fraction`` of the stems, drawn with
    ``seed``, form val. Class names come from ``labels.txt`` (one per line),
    else ``class_0..class_N`` with N the largest id found in the masks.
    Colours come from the first mask's palette when it has one.
    """

    def __init__(self, path: str, *, seed: int = 0, val_fraction: float = 0.2, skip_bad_files: bool = False):
        super().__init__(skip_bad_files=skip_bad_files)
        if not 0.0 < val_fraction < 1.0:
            raise ValueError(f"folder:{path}: val_fraction must be between 0 and 1, got {val_fraction}")
        root = os.path.expanduser(path)
        image_dir, mask_dir = os.path.join(root, "images"), os.path.join(root, "masks")
        for directory in (image_dir, mask_dir):
            if not os.path.isdir(directory):
                raise DatasetError(f"folder:{path}: missing folder {directory}; a folder dataset holds images/ "
                                   f"and masks/ with files paired by stem")
        self.root = root
        self.name = f"folder:{path}"
        images = {}
        for file in sorted(os.listdir(image_dir)):
            stem, ext = os.path.splitext(file)
            if ext.lower() in IMAGE_EXTENSIONS:
                images.setdefault(stem, os.path.join(image_dir, file))
        if not images:
            raise DatasetError(f"folder:{path}: no images in {image_dir} (extensions {IMAGE_EXTENSIONS})")
        masks = {}
        for file in sorted(os.listdir(mask_dir)):
            stem, ext = os.path.splitext(file)
            if ext.lower() in MASK_EXTENSIONS:
                masks.setdefault(stem, os.path.join(mask_dir, file))
        pairs = {stem: (image, masks.get(stem, os.path.join(mask_dir, stem + ".png")))
                 for stem, image in images.items()}
        split_files = [os.path.join(root, f"{split}.txt") for split in ("train", "val")]
        if all(os.path.isfile(f) for f in split_files):
            splits = {}
            for split, list_file in zip(("train", "val"), split_files):
                stems = read_list_file(list_file)
                unknown = [s for s in stems if s not in pairs]
                if unknown:
                    raise DatasetError(f"split list {list_file}: {len(unknown)} stem(s) have no image in "
                                       f"{image_dir}, e.g. {unknown[:3]}")
                splits[split] = stems
        else:
            stems = sorted(pairs)
            if len(stems) < 2:
                raise DatasetError(f"folder:{path}: need at least 2 images to make a train/val split, "
                                   f"found {len(stems)}")
            order = np.random.default_rng(seed).permutation(len(stems))
            num_val = min(max(1, int(round(len(stems) * val_fraction))), len(stems) - 1)
            splits = {"val": sorted(stems[i] for i in order[:num_val]),
                      "train": sorted(stems[i] for i in order[num_val:])}
        for split in ("train", "val"):
            self._pairs[split] = _keep_existing(self, split, [pairs[s] for s in splits[split]])
        label_file = find_label_file(root)
        self._labels = read_label_file(label_file) if label_file else None
        self._colors_checked = False
        self._colors = None

    @property
    def labels(self) -> tuple[str, ...]:
        if self._labels is None:
            self._labels = self._labels_from_masks()
        return self._labels

    @property
    def colors(self):
        if not self._colors_checked:
            self._colors_checked = True
            self._colors = _palette_colors(self.pairs("train")[0][1], len(self.labels))
        return self._colors

    def _labels_from_masks(self) -> tuple[str, ...]:
        largest = 0
        for split in ("train", "val"):
            for _, mask_path in self.pairs(split):
                values = np.unique(read_mask(mask_path))
                values = values[values != IGNORE_LABEL]
                if values.size:
                    largest = max(largest, int(values.max()))
        return tuple(f"class_{i}" for i in range(max(largest + 1, 2)))


def _keep_existing(source: FileSource, split: str, pairs: Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """Drop (and record) pairs with a missing file when skipping bad files, else raise naming them."""
    kept, missing = [], []
    for image_path, mask_path in pairs:
        absent = [p for p in (image_path, mask_path) if not os.path.isfile(p)]
        if not absent:
            kept.append((image_path, mask_path))
            continue
        kind = "image" if absent[0] == image_path else "mask"
        missing.append(f"{kind} {absent[0]}: file not found (listed in split {split!r} of {source.name})")
    if missing and not source.skip_bad_files:
        more = f" (and {len(missing) - 1} more missing file(s))" if len(missing) > 1 else ""
        raise DatasetError(missing[0] + more, kind="missing")
    for message in missing:
        source._record_bad_file(message, split=split)
    if not kept:
        raise DatasetError(f"{source.name}: split {split!r} is empty", kind="layout")
    return kept


def _palette_colors(mask_path: str, num_classes: int):
    try:
        with Image.open(mask_path) as img:
            palette = img.getpalette() if img.mode == "P" else None
    except (UnidentifiedImageError, OSError):
        return None
    if not palette or len(palette) < 3 * num_classes:
        return None
    return tuple(tuple(palette[3 * i:3 * i + 3]) for i in range(num_classes))
