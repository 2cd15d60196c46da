"""What every dataset source provides, and the errors it raises.

A source yields examples as uint8 RGB images ``(H, W, 3)`` and uint8 masks
``(H, W)`` holding class ids ``0..num_classes-1`` or ``ignore_label`` (255).
``examples(split)`` gives them as a ``tf.data.Dataset`` of dicts
``{"image", "mask", "name"}`` for the input pipeline; ``iter_examples(split)``
gives the same examples as numpy for checks and statistics.
"""
from __future__ import annotations

import dataclasses
import threading
from typing import Iterator

import numpy as np

SPLITS = ("train", "val")
from edge.artifact import IGNORE_LABEL  # noqa: E402  (one definition, in the artifact contract)
# The training scale augmentation of real datasets, as in DeepLab: a factor in [0.5, 2.0].
DEFAULT_SCALE_RANGE = (0.5, 2.0)


class DatasetError(ValueError):
    """A dataset that is missing, malformed or holds a bad file (the message names it).

    ``kind`` says what went wrong: "missing", "decode", "size", "labels", "colors" (a colour in no colour
    map) or "layout".
    """

    def __init__(self, message: str, *, kind: str = "layout"):
        super().__init__(message)
        self.kind = kind


@dataclasses.dataclass(frozen=True)
class Example:
    """One decoded example: ``name`` identifies it (a file path or an index)."""

    name: str
    image: np.ndarray  # uint8 (H, W, 3) RGB
    mask: np.ndarray  # uint8 (H, W) class ids, 255 = ignore


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    return split


class DatasetSource:
    """Base class: subclasses set ``name``, ``labels``, ``colors`` and implement the three methods.

    ``colors`` is a tuple of RGB triples, or None for the default (VOC) palette. ``label_ids``, when
    not None, gives for each class id the dataset's own id (COCO's category id; 0 for background).
    ``scale_range`` is the training scale augmentation the pipeline applies by
    default; a source whose images already vary in scale may narrow it.
    With ``skip_bad_files`` the file-based sources drop an example that fails to
    load and record its file in ``bad_files`` instead of raising.
    """

    name: str = ""
    layout_name: str = ""  # the layout detected, in words (printed by the dataset check)
    split_note: str = ""  # one line when the source made its own train/val split
    labels: tuple[str, ...] = ()
    label_ids: tuple[int, ...] | None = None  # each class's id in the dataset's own numbering (COCO category ids)
    colors: tuple[tuple[int, int, int], ...] | None = None
    ignore_label: int = IGNORE_LABEL
    scale_range: tuple[float, float] = DEFAULT_SCALE_RANGE
    labelled: bool = True  # False: images without masks (images:PATH), whose classes are the model's

    def __init__(self, *, skip_bad_files: bool = False):
        self.skip_bad_files = bool(skip_bad_files)
        self.bad_files: list[str] = []
        self.skipped: dict[str, dict[str, int]] = {split: {} for split in SPLITS}  # message -> times met
        self.failure: DatasetError | None = None  # the bad file that stopped a tf.data pipeline
        self._bad_lock = threading.Lock()

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def num_examples(self, split: str) -> int | None:
        """How many examples ``split`` holds, or None when unknown without reading it all."""
        raise NotImplementedError

    def examples(self, split: str, *, shuffle_seed: int | None = None):
        """``tf.data.Dataset`` of ``{"image": uint8 (H,W,3), "mask": uint8 (H,W), "name": string}``.

        With ``shuffle_seed`` the order changes every iteration, deterministically
        for the seed (shuffled before decoding where the source allows it).
        """
        raise NotImplementedError

    def iter_examples(self, split: str) -> Iterator[Example]:
        """The same examples as numpy, in a fixed order; bad files raise :class:`DatasetError`."""
        raise NotImplementedError

    def iter_checked(self, split: str) -> Iterator[Example | DatasetError]:
        """Like ``iter_examples`` but yields a bad example's error instead of raising it.

        Sources that can go on past a bad file (the file-based ones) do; others stop after the first error.
        """
        try:
            yield from self.iter_examples(split)
        except DatasetError as err:
            yield err

    def _record_bad_file(self, message: str, *, split: str | None = None) -> None:
        with self._bad_lock:
            self.bad_files.append(message)
            if split is not None:
                self.skipped[split][message] = self.skipped[split].get(message, 0) + 1

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r}: {self.num_classes} classes>"


def validate_example(name: str, image: np.ndarray, mask: np.ndarray, num_classes: int,
                     ignore_label: int = IGNORE_LABEL) -> None:
    """Raise :class:`DatasetError` naming ``name`` if the pair is unusable."""
    if image.ndim != 3 or image.shape[2] != 3:
        raise DatasetError(f"{name}: image must be (height, width, 3), got shape {image.shape}")
    if mask.ndim != 2:
        raise DatasetError(f"{name}: mask must be (height, width), got shape {mask.shape}")
    if image.shape[:2] != mask.shape:
        raise DatasetError(
            f"{name}: mask size {mask.shape[1]}x{mask.shape[0]} (WxH) differs from image size "
            f"{image.shape[1]}x{image.shape[0]}", kind="size")
    values = np.flatnonzero(np.bincount(mask.ravel(), minlength=256)) if mask.dtype == np.uint8 else np.unique(mask)
    bad = values[(values >= num_classes) & (values != ignore_label)]
    if bad.size:
        raise DatasetError(
            f"{name}: mask holds label values {bad.tolist()} outside 0..{num_classes - 1} "
            f"(and {ignore_label} = ignore)", kind="labels")


def parse_options(query: str, *, allowed: dict[str, type], where: str) -> dict:
    """Parse ``key=value&key=value`` into typed options, rejecting unknown keys."""
    options = {}
    if not query:
        return options
    for item in query.split("&"):
        if not item:
            continue
        key, sep, value = item.partition("=")
        if not sep:
            raise ValueError(f"{where}: option {item!r} must look like key=value")
        if key not in allowed:
            raise ValueError(f"{where}: unknown option {key!r}; valid options are {sorted(allowed)}")
        try:
            options[key] = allowed[key](value)
        except ValueError:
            raise ValueError(f"{where}: option {key}={value!r} must be {allowed[key].__name__}") from None
    return options
