"""Datasets on disk: PASCAL VOC (and VOC-style tool exports), image/mask folders and ADE20K.

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

from edge.artifact.labels import VOC_LABELS
from kerasseg.backend import tf
from kerasseg.data.base import IGNORE_LABEL, DatasetError, DatasetSource, Example, check_split, validate_example
from kerasseg.data.colormap import ColorMap, clean_names, read_colormap, voc_colormap

LABEL_FILES = ("labels.txt", "class_names.txt", "classes.txt")
COLORMAP_FILE = "labelmap.txt"  # CVAT's colour map: name:R,G,B:: per line
POOL_LISTS = ("default.txt", "trainval.txt", "train.txt", "val.txt")  # split lists pooled when train/val are absent
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


def read_mask(path: str, *, colormap: ColorMap | None = None, fallback: ColorMap | None = None,
              table: np.ndarray | None = None) -> np.ndarray:
    """Decode a mask to uint8 (H, W) class ids; raise :class:`DatasetError` naming ``path``.

    Index (greyscale) and palette PNGs give their values, mapped through ``table`` (256 entries: raw value
    -> class id, 255 ignore, -1 unknown) when given. A colour (RGB) mask is decoded with ``colormap``;
    without one, a grey RGB mask gives its values and any other is decoded with ``fallback`` (the VOC palette).
    """
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
        if colormap is not None:
            return colormap.decode(array[..., :3], where=path)
        grey = np.array_equal(array[..., 0], array[..., 1]) and np.array_equal(array[..., 0], array[..., 2])
        if fallback is not None and not grey:
            return fallback.decode(array[..., :3], where=path)
        if not grey:
            raise DatasetError(
                f"mask {path}: is a colour ({mode}) image and no colour map was given; pass one with "
                f"--colormap FILE (lines 'name:R,G,B', as in CVAT's labelmap.txt), or use index or palette PNGs "
                f"holding class ids", kind="colors")
        array = array[..., 0]
    if array.ndim != 2:
        raise DatasetError(f"mask {path}: expected one channel, got shape {array.shape} (mode {mode})",
                           kind="decode")
    if array.dtype != np.uint8:
        if array.size and (array.min() < 0 or array.max() > 255):
            raise DatasetError(f"mask {path}: values {int(array.min())}..{int(array.max())} do not fit in 0..255",
                               kind="labels")
        array = array.astype(np.uint8)
    if table is None:
        return array
    mapped = table[array]
    if (mapped < 0).any():
        raise DatasetError(f"mask {path}: values {np.unique(array[mapped < 0]).tolist()} name no class "
                           f"(known values: {np.flatnonzero(table >= 0).tolist()[:20]})", kind="labels")
    return mapped.astype(np.uint8)


def read_label_file(path: str) -> tuple[tuple[str, ...], np.ndarray]:
    """Class names, one per line (line i names mask value i), and the table mask value -> class id.

    Blank lines and '#' comments are skipped; ``_background_`` and ``__ignore__`` follow
    :func:`kerasseg.data.colormap.clean_names`.
    """
    with open(path, encoding="utf-8") as f:
        names = [line.split("#", 1)[0].strip() for line in f]
    return clean_names([n for n in names if n], where=f"labels file {path}")


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
        self.colormap: ColorMap | None = None  # decodes every colour mask
        self.fallback_colormap: ColorMap | None = None  # decodes colour masks that are not grey
        self.value_table: np.ndarray | None = None  # raw mask value -> class id (255 ignore, -1 unknown)

    def pairs(self, split: str) -> list[tuple[str, str]]:
        """The ``(image_path, mask_path)`` pairs of ``split``."""
        return self._pairs[check_split(split)]

    def num_examples(self, split: str) -> int:
        return len(self.pairs(split))

    def load(self, image_path: str, mask_path: str) -> tuple[np.ndarray, np.ndarray]:
        """Decode and validate one pair; raise :class:`DatasetError` naming the bad file."""
        image = read_image(image_path)
        mask = self.read_mask(mask_path)
        validate_example(f"mask {mask_path} (image {image_path})", image, mask, self.num_classes, self.ignore_label)
        return image, mask

    def read_mask(self, mask_path: str) -> np.ndarray:
        """The mask of ``mask_path`` as class ids (see :func:`read_mask`)."""
        return read_mask(mask_path, colormap=self.colormap, fallback=self.fallback_colormap, table=self.value_table)

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
    """``voc:PATH``: PASCAL VOC, and the VOC-style exports of annotation tools (labelme, CVAT).

    PATH is the VOC2012 directory or one holding ``VOC2012/``; it holds ``JPEGImages/`` and
    ``SegmentationClass/`` (palette, index or colour PNGs). The split comes from
    ``ImageSets/Segmentation/{train,val}.txt``. When those two are absent, every image listed in the
    lists that exist (``default.txt``, ``trainval.txt``, ...), or else every image that has a mask, is
    split: ``val_fraction`` of them, drawn with ``seed``, form val (see ``split_note``). If
    ``SegmentationClassAug/`` exists (the SBD-augmented masks), masks come from it where it has the file,
    and train lists ``train_aug.txt`` if that exists, else every mask in it that is not in val.

    Class names and colours come from ``colormap`` (a ``name:R,G,B`` file), else ``labelmap.txt`` in PATH
    (CVAT), else a class-name file (``labels.txt``, ``class_names.txt``), else the 21 VOC names. With a
    colour map, colour masks are decoded by it and its colours become the spec's; otherwise colour
    masks must use the VOC palette.
    """

    def __init__(self, path: str, *, seed: int = 0, val_fraction: float = 0.2, colormap: str | None = None,
                 skip_bad_files: bool = False):
        super().__init__(skip_bad_files=skip_bad_files)
        check_val_fraction(val_fraction, where=f"voc:{path}")
        root = os.path.expanduser(path)
        if not os.path.isdir(os.path.join(root, "JPEGImages")) and os.path.isdir(
                os.path.join(root, "VOC2012", "JPEGImages")):
            root = os.path.join(root, "VOC2012")
        for sub in ("JPEGImages", "SegmentationClass"):
            if not os.path.isdir(os.path.join(root, sub)):
                raise DatasetError(f"voc:{path}: missing folder {os.path.join(root, sub)}; a VOC dataset (or a VOC "
                                   f"export of an annotation tool) holds JPEGImages/ and SegmentationClass/")
        self.root = root
        self.name = f"voc:{path}"
        self._read_classes(colormap)
        lists = os.path.join(root, "ImageSets", "Segmentation")
        aug = os.path.join(root, "SegmentationClassAug")
        images = files_by_stem(os.path.join(root, "JPEGImages"), IMAGE_EXTENSIONS)
        self.split_note = ""
        if os.path.isfile(os.path.join(lists, "val.txt")) and (
                os.path.isfile(os.path.join(lists, "train.txt")) or os.path.isdir(aug)):
            splits = self._listed_splits(lists, aug)
            self.layout_name = "PASCAL VOC (ImageSets/Segmentation train/val lists)"
        else:
            pool_files = [os.path.join(lists, f) for f in POOL_LISTS if os.path.isfile(os.path.join(lists, f))]
            if pool_files:
                stems = sorted({s for f in pool_files for s in read_list_file(f)})
                pool = "the images listed in " + ", ".join(os.path.basename(f) for f in pool_files)
            else:
                stems = sorted(files_by_stem(os.path.join(root, "SegmentationClass"), MASK_EXTENSIONS))
                pool = "every image with a mask"
            splits = split_stems(stems, val_fraction=val_fraction, seed=seed,
                                 where=", ".join(pool_files) or os.path.join(root, "SegmentationClass"))
            self.split_note = (f"{self.name}: no ImageSets/Segmentation train/val lists; split {pool} "
                               f"({len(stems)}) into {len(splits['train'][0])} train and {len(splits['val'][0])} val "
                               f"(val_fraction {val_fraction}, seed {seed})")
            self.layout_name = "VOC-style export without train/val lists"
        if self.colormap is not None:
            self.layout_name += f", colour masks decoded by {self.colormap.path}"
        for split, (stems, listed_in) in splits.items():
            self._pairs[split] = _keep_existing(self, split, [
                (images.get(stem, os.path.join(root, "JPEGImages", stem + ".jpg")), self._mask_path(stem, aug))
                for stem in stems], where=listed_in)

    def _read_classes(self, colormap: str | None) -> None:
        map_file = colormap or (os.path.join(self.root, COLORMAP_FILE)
                                if os.path.isfile(os.path.join(self.root, COLORMAP_FILE)) else None)
        label_file = find_label_file(self.root)
        if map_file:
            self.colormap = read_colormap(map_file)
            self.labels, self.colors = self.colormap.labels, self.colormap.colors
        elif label_file:
            self.labels, self.value_table = read_label_file(label_file)
            self.colors = None
        else:
            self.labels, self.colors = VOC_LABELS, None
        if self.colormap is None:
            self.fallback_colormap = voc_colormap(self.labels)

    def _listed_splits(self, lists: str, aug: str) -> dict:
        val_file = os.path.join(lists, "val.txt")
        val = read_list_file(val_file)
        if os.path.isdir(aug) and os.path.isfile(os.path.join(lists, "train_aug.txt")):
            train_file = os.path.join(lists, "train_aug.txt")
            train = read_list_file(train_file)
        elif os.path.isdir(aug):
            held_out = set(val)
            train_file = aug
            train = sorted(os.path.splitext(f)[0] for f in os.listdir(aug)
                           if f.endswith(".png") and os.path.splitext(f)[0] not in held_out)
        else:
            train_file = os.path.join(lists, "train.txt")
            train = read_list_file(train_file)
        return {"train": (train, train_file), "val": (val, val_file)}

    def _mask_path(self, stem: str, aug: str) -> str:
        candidate = os.path.join(aug, stem + ".png")
        if os.path.isdir(aug) and os.path.isfile(candidate):
            return candidate
        return os.path.join(self.root, "SegmentationClass", stem + ".png")


class FolderSource(FileSource):
    """``folder:PATH``: ``images/`` and ``masks/`` paired by file stem.

    Masks are index (greyscale) or palette PNGs of class ids (255 = ignore), or colour masks with a
    ``colormap`` (``name:R,G,B`` lines). The split comes from ``train.txt`` and ``val.txt`` in PATH
    (stems, one per line) when both exist; otherwise ``val_fraction`` of the stems, drawn with
    ``seed``, form val. Class names come from the colour map, else ``labels.txt`` (one per line),
    else ``class_0..class_N`` with N the largest id found in the masks. Colours come from the
    colour map, else the first mask's palette when it has one.
    """

    def __init__(self, path: str, *, seed: int = 0, val_fraction: float = 0.2, colormap: str | None = None,
                 skip_bad_files: bool = False):
        super().__init__(skip_bad_files=skip_bad_files)
        check_val_fraction(val_fraction, where=f"folder:{path}")
        root = os.path.expanduser(path)
        image_dir, mask_dir = os.path.join(root, "images"), os.path.join(root, "masks")
        for directory in (image_dir, mask_dir):
            if not os.path.isdir(directory):
                raise DatasetError(f"folder:{path}: missing folder {directory}; a folder dataset holds images/ "
                                   f"and masks/ with files paired by stem")
        self.root = root
        self.name = f"folder:{path}"
        images = files_by_stem(image_dir, IMAGE_EXTENSIONS)
        if not images:
            raise DatasetError(f"folder:{path}: no images in {image_dir} (extensions {IMAGE_EXTENSIONS})")
        masks = files_by_stem(mask_dir, MASK_EXTENSIONS)
        pairs = {stem: (image, masks.get(stem, os.path.join(mask_dir, stem + ".png")))
                 for stem, image in images.items()}
        split_files = [os.path.join(root, f"{split}.txt") for split in ("train", "val")]
        if all(os.path.isfile(f) for f in split_files):
            self.layout_name = "image/mask folders with train.txt and val.txt"
            splits = {}
            for split, list_file in zip(("train", "val"), split_files):
                stems = read_list_file(list_file)
                unknown = [s for s in stems if s not in pairs]
                if unknown:
                    raise DatasetError(f"split list {list_file}: {len(unknown)} stem(s) have no image in "
                                       f"{image_dir}, e.g. {unknown[:3]}")
                splits[split] = stems
        else:
            self.layout_name = f"image/mask folders, split by val_fraction {val_fraction}"
            splits = {k: v[0] for k, v in split_stems(sorted(pairs), val_fraction=val_fraction, seed=seed,
                                                      where=self.name).items()}
        for split in ("train", "val"):
            self._pairs[split] = _keep_existing(self, split, [pairs[s] for s in splits[split]])
        self._colors = None
        if colormap:
            self.colormap = read_colormap(colormap)
            self._labels, self._colors = self.colormap.labels, self.colormap.colors
        else:
            label_file = find_label_file(root)
            self._labels, self.value_table = read_label_file(label_file) if label_file else (None, None)
        self._colors_checked = colormap is not None

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


class Ade20kSource(FileSource):
    """``ade20k:PATH``: ADE20K SceneParsing (``ADEChallengeData2016/``, or PATH holding it).

    ``images/{training,validation}/*.jpg`` pair by stem with ``annotations/{training,validation}/*.png``
    (train and val). As the benchmark defines it: 150 classes, the objectInfo150 names; mask value 0
    ("other" / unlabelled) becomes the ignore label and values 1..150 become class ids 0..149.
    """

    def __init__(self, path: str, *, skip_bad_files: bool = False):
        super().__init__(skip_bad_files=skip_bad_files)
        from kerasseg.data.tfds_sources import ADE20K_LABELS
        root = os.path.expanduser(path)
        if not os.path.isdir(os.path.join(root, "images")) and os.path.isdir(
                os.path.join(root, "ADEChallengeData2016", "images")):
            root = os.path.join(root, "ADEChallengeData2016")
        self.root, self.name = root, f"ade20k:{path}"
        self.layout_name = "ADE20K SceneParsing (ADEChallengeData2016)"
        self.labels, self.colors = ADE20K_LABELS, None
        self.value_table = np.full(256, -1, np.int32)
        self.value_table[0] = IGNORE_LABEL
        self.value_table[1:len(ADE20K_LABELS) + 1] = np.arange(len(ADE20K_LABELS))
        for split, folder in (("train", "training"), ("val", "validation")):
            image_dir, mask_dir = (os.path.join(root, kind, folder) for kind in ("images", "annotations"))
            for directory in (image_dir, mask_dir):
                if not os.path.isdir(directory):
                    raise DatasetError(f"ade20k:{path}: missing folder {directory}; ADE20K SceneParsing holds "
                                       f"images/ and annotations/, each with training/ and validation/")
            images = files_by_stem(image_dir, IMAGE_EXTENSIONS)
            self._pairs[split] = _keep_existing(self, split, [
                (image, os.path.join(mask_dir, stem + ".png")) for stem, image in sorted(images.items())])


class ImageSource(FileSource):
    """``images:PATH``: a folder of images without masks, for ``convert.py``'s calibration and parity.

    Both splits are every image in PATH; each mask is all ``ignore_label``. The classes are the model's:
    ``kerasseg.data.sources.open_data`` gives them (``labelled`` is False), and the parity report then
    takes the Keras model's class map as the truth. Training and evaluation need masks and refuse it.
    """

    labelled = False

    def __init__(self, path: str, *, skip_bad_files: bool = False):
        super().__init__(skip_bad_files=skip_bad_files)
        root = os.path.expanduser(path)
        if not os.path.isdir(root):
            raise DatasetError(f"images:{path}: no such folder", kind="missing")
        images = sorted(files_by_stem(root, IMAGE_EXTENSIONS).values())
        if not images:
            raise DatasetError(f"images:{path}: no images in it (extensions {IMAGE_EXTENSIONS})", kind="missing")
        self.name, self.layout_name = f"images:{path}", "a folder of images without masks"
        self._pairs = {split: [(image, "") for image in images] for split in ("train", "val")}

    def load(self, image_path: str, mask_path: str) -> tuple[np.ndarray, np.ndarray]:
        image = read_image(image_path)
        return image, np.full(image.shape[:2], self.ignore_label, np.uint8)


def files_by_stem(directory: str, extensions: Sequence[str]) -> dict[str, str]:
    """``{stem: path}`` of the files in ``directory`` with one of ``extensions`` (first one wins per stem)."""
    found = {}
    for file in sorted(os.listdir(directory)):
        stem, ext = os.path.splitext(file)
        if ext.lower() in extensions:
            found.setdefault(stem, os.path.join(directory, file))
    return found


def check_val_fraction(val_fraction: float, *, where: str) -> None:
    if not 0.0 < val_fraction < 1.0:
        raise ValueError(f"{where}: val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")


def split_stems(stems: Sequence[str], *, val_fraction: float, seed: int, where: str) -> dict:
    """A seeded train/val split: ``{"train": (stems, where), "val": (stems, where)}``, val ``val_fraction`` of it."""
    stems = list(stems)
    if len(stems) < 2:
        raise DatasetError(f"{where}: need at least 2 images to make a train/val split, found {len(stems)}")
    order = np.random.default_rng(seed).permutation(len(stems))
    num_val = min(max(1, int(round(len(stems) * val_fraction))), len(stems) - 1)
    return {"train": (sorted(stems[i] for i in order[num_val:]), where),
            "val": (sorted(stems[i] for i in order[:num_val]), where)}

def _keep_existing(source: FileSource, split: str, pairs: Sequence[tuple[str, str]], *,
                   where: str | None = None) -> list[tuple[str, str]]:
    """Drop (and record) pairs with a missing file when skipping bad files, else raise naming them.

    ``where`` names the list the pairs came from (a split file), for the message.
    """
    kept, missing = [], []
    for image_path, mask_path in pairs:
        absent = [p for p in (image_path, mask_path) if not os.path.isfile(p)]
        if not absent:
            kept.append((image_path, mask_path))
            continue
        kind = "image" if absent[0] == image_path else "mask"
        listed = f"listed in {where}" if where else f"listed in split {split!r} of {source.name}"
        missing.append(f"{kind} {absent[0]}: file not found ({listed})")
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
