"""Dataset check and class weights, from one pass over the decoded examples."""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from kerasseg.data.base import DatasetError, DatasetSource, Example, check_split

MAX_LISTED_PROBLEMS = 10


@dataclasses.dataclass
class SplitStats:
    """What one pass over a split found. Pixel counts are indexed by raw mask value (0..255)."""

    split: str
    num_examples: int = 0
    pixels: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(256, np.int64))
    image_pixels_with: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(256, np.int64))
    images_with: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(256, np.int64))
    min_size: tuple[int, int] | None = None  # (height, width)
    max_size: tuple[int, int] | None = None
    problems: list[DatasetError] = dataclasses.field(default_factory=list)

    def add(self, example: Example, ignore_label: int) -> None:
        counts = np.bincount(example.mask.ravel(), minlength=256).astype(np.int64)
        present = counts > 0
        self.pixels += counts
        self.images_with += present
        self.image_pixels_with += present * (example.mask.size - counts[ignore_label])
        size = example.image.shape[:2]
        self.min_size = size if self.min_size is None else tuple(min(a, b) for a, b in zip(self.min_size, size))
        self.max_size = size if self.max_size is None else tuple(max(a, b) for a, b in zip(self.max_size, size))
        self.num_examples += 1

    @property
    def label_values(self) -> list[int]:
        return np.flatnonzero(self.pixels).tolist()

    def problems_of(self, kind: str) -> list[DatasetError]:
        return [p for p in self.problems if p.kind == kind]

    @property
    def unmatched(self) -> list[DatasetError]:
        """The problems of colours in no colour map and mask values that name no class."""
        return [p for p in self.problems if p.kind in ("colors", "labels")]


@dataclasses.dataclass
class DatasetReport:
    """The result of :func:`check_dataset`: per-split statistics and the problems found."""

    name: str
    labels: tuple[str, ...]
    ignore_label: int
    splits: dict[str, SplitStats]
    layout: str = ""
    note: str = ""
    listed: dict[str, int | None] = dataclasses.field(default_factory=dict)  # examples each split lists

    @property
    def problems(self) -> list[DatasetError]:
        return [p for stats in self.splits.values() for p in stats.problems]

    def ignore_share(self, split: str) -> float:
        stats = self.splits[split]
        total = stats.pixels.sum()
        return float(stats.pixels[self.ignore_label] / total) if total else 0.0

    def to_dict(self) -> dict:
        out = {"name": self.name, "layout": self.layout, "note": self.note, "labels": list(self.labels),
               "ignore_label": self.ignore_label, "splits": {}}
        for split, stats in self.splits.items():
            out["splits"][split] = {
                "num_listed": self.listed.get(split),
                "num_examples": stats.num_examples,
                "unmatched": [str(p) for p in stats.unmatched],
                "label_values": stats.label_values,
                "class_pixels": {name: int(stats.pixels[i]) for i, name in enumerate(self.labels)},
                "class_images": {name: int(stats.images_with[i]) for i, name in enumerate(self.labels)},
                "ignore_share": self.ignore_share(split),
                "min_size": list(stats.min_size or ()),
                "max_size": list(stats.max_size or ()),
                "size_mismatches": [str(p) for p in stats.problems_of("size")],
                "problems": [str(p) for p in stats.problems],
            }
        return out

    def __str__(self) -> str:
        return self.format()

    def format(self) -> str:
        """The report as text: per split, the label values, ignore share, mismatches and class histogram."""
        lines = [f"dataset {self.name}: {len(self.labels)} classes, ignore label {self.ignore_label}",
                 f"layout: {self.layout or '-'}"]
        sizes = ", ".join(f"{split} {'?' if n is None else n}" for split, n in self.listed.items())
        lines.append(f"split sizes: {sizes}")
        for split, stats in self.splits.items():
            sizes = ("-" if stats.min_size is None else
                     f"{stats.min_size[1]}x{stats.min_size[0]} .. {stats.max_size[1]}x{stats.max_size[0]} (WxH)")
            total = max(int(stats.pixels.sum()), 1)
            lines += [f"split {split}: {stats.num_examples} examples read, image sizes {sizes}",
                      f"  label values found: {' '.join(map(str, stats.label_values)) or '-'}",
                      f"  ignore pixels: {100 * self.ignore_share(split):.2f}%",
                      f"  image/mask size mismatches: {len(stats.problems_of('size'))}",
                      f"  colours or ids that matched no class: "
                      f"{f'{len(stats.unmatched)} file(s), listed under problems' if stats.unmatched else 'none'}",
                      f"  {'id':>4}  {'class':<24} {'pixels':>12} {'share':>8} {'images':>8}"]
            for i, name in enumerate(self.labels):
                lines.append(f"  {i:>4}  {name[:24]:<24} {int(stats.pixels[i]):>12} "
                             f"{100 * stats.pixels[i] / total:>7.2f}% {int(stats.images_with[i]):>8}")
            if stats.problems:
                lines.append(f"  problems: {len(stats.problems)}")
                lines += [f"    {p}" for p in stats.problems[:MAX_LISTED_PROBLEMS]]
                if len(stats.problems) > MAX_LISTED_PROBLEMS:
                    lines.append(f"    ... and {len(stats.problems) - MAX_LISTED_PROBLEMS} more")
            else:
                lines.append("  problems: none")
        return "\n".join(lines)


class DatasetCheckError(DatasetError):
    """Raised by :func:`check_dataset` when files are bad; ``report`` holds everything found."""

    def __init__(self, message: str, report: DatasetReport, *, kind: str):
        super().__init__(message, kind=kind)
        self.report = report


def check_dataset(source: DatasetSource, *, splits: Sequence[str] = ("train", "val"),
                  max_examples: int | None = None) -> DatasetReport:
    """Read every example of ``splits`` (or the first ``max_examples`` of each) and report.

    The report holds the class histogram, the label values found, image sizes,
    image/mask size mismatches and the share of ignore pixels. File-based
    sources go on past a bad file to list every one; if anything was wrong
    (corrupt image, mask of the wrong size, label out of range, missing file,
    empty split) this raises :class:`DatasetCheckError` naming the files, with
    the full report attached.
    """
    if max_examples is not None and max_examples < 1:
        raise ValueError(f"max_examples: expected a positive int or None, got {max_examples!r}")
    report = DatasetReport(source.name, tuple(source.labels), source.ignore_label, {}, layout=source.layout_name,
                           note=source.split_note)
    for split in splits:
        stats = report.splits.setdefault(check_split(split), SplitStats(split))
        try:
            report.listed[split] = source.num_examples(split)
        except DatasetError as err:
            report.listed[split] = None
            stats.problems.append(err)
        try:
            for item in source.iter_checked(split):
                if isinstance(item, DatasetError):
                    stats.problems.append(item)
                else:
                    stats.add(item, source.ignore_label)
                if max_examples is not None and stats.num_examples + len(stats.problems) >= max_examples:
                    break
        except DatasetError as err:  # the split itself could not be listed
            stats.problems.append(err)
        if stats.num_examples == 0 and not stats.problems:
            stats.problems.append(DatasetError(f"{source.name}: split {split!r} is empty", kind="layout"))
    problems = report.problems
    if problems:
        listed = "\n  ".join(str(p) for p in problems[:MAX_LISTED_PROBLEMS])
        more = f"\n  ... and {len(problems) - MAX_LISTED_PROBLEMS} more" if len(problems) > MAX_LISTED_PROBLEMS else ""
        raise DatasetCheckError(f"dataset {source.name}: {len(problems)} problem(s):\n  {listed}{more}", report,
                                kind=problems[0].kind)
    return report


def class_weights(source: DatasetSource, *, split: str = "train", max_examples: int | None = None) -> np.ndarray:
    """Per-class loss weights by median frequency balancing (Eigen & Fergus, https://arxiv.org/abs/1411.4734).

    ``freq[c] = pixels of class c / labelled pixels of the images where c appears``
    and ``weight[c] = median(freq) / freq[c]``, the median taken over the
    classes that appear; a class absent from ``split`` gets weight 1. Ignored
    pixels count nowhere. Returns float32 of shape ``(num_classes,)``.
    """
    stats = check_dataset(source, splits=(split,), max_examples=max_examples).splits[split]
    num_classes = len(source.labels)
    pixels = stats.pixels[:num_classes].astype(np.float64)
    present = pixels > 0
    freq = np.where(present, pixels / np.maximum(stats.image_pixels_with[:num_classes], 1), 0.0)
    weights = np.ones(num_classes, np.float64)
    weights[present] = np.median(freq[present]) / freq[present]
    return weights.astype(np.float32)
