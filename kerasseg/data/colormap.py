"""Class-name files and colour maps of annotation-tool exports, and colour (RGB) masks to class ids.

- A class-name file (``class_names.txt``, ``labels.txt``, ``classes.txt``) holds one name per line; line i
  names mask value i. ``_background_`` is renamed ``background``, and ``__ignore__`` marks the ignore
  label: a leading ``__ignore__`` (labelme's convention: its value is -1, stored as 255) is dropped, and
  one elsewhere makes that mask value ignored, the later values moving down by one.
- A colour map (CVAT's ``labelmap.txt``, or ``--colormap FILE`` in the same form) holds one
  ``name:R,G,B[:parts:actions]`` line per class, in class-id order; ``#`` starts a comment. A class named
  ``__ignore__`` gives the colour of ignored pixels.
"""
from __future__ import annotations

import dataclasses
import functools

import numpy as np

from edge.artifact import IGNORE_LABEL
from kerasseg.data.base import DatasetError

IGNORE_NAME = "__ignore__"
BACKGROUND_NAMES = ("_background_", "background")
_UNKNOWN = -1
_NOT_IN_MAP = 256  # colour lookup entry of colours in no map


def clean_names(names, *, where: str) -> tuple[tuple[str, ...], np.ndarray]:
    """Class names and the 256-entry table raw mask value -> class id (255 ignore, -1 unknown).

    Applies the ``_background_`` / ``__ignore__`` rules of the module docstring.
    """
    names = list(names)
    if names and names[0] == IGNORE_NAME:
        names = names[1:]
    table = np.full(256, _UNKNOWN, np.int32)
    table[IGNORE_LABEL] = IGNORE_LABEL
    labels = []
    for value, name in enumerate(names):
        if name == IGNORE_NAME:
            table[value] = IGNORE_LABEL
            continue
        table[value] = len(labels)
        labels.append("background" if value == 0 and name in BACKGROUND_NAMES else name)
    if len(labels) < 2:
        raise DatasetError(f"{where}: needs at least 2 class names besides {IGNORE_NAME}, found {labels}")
    if len(set(labels)) != len(labels):
        raise DatasetError(f"{where}: class names must be unique, got {labels}")
    if len(names) > IGNORE_LABEL:
        raise DatasetError(f"{where}: at most {IGNORE_LABEL} classes fit beside the ignore label, got {len(names)}")
    return tuple(labels), table


@dataclasses.dataclass(frozen=True)
class ColorMap:
    """Class names and their RGB colours (in class-id order); ``ignore_colors`` mark ignored pixels."""

    labels: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    ignore_colors: tuple[tuple[int, int, int], ...] = ()
    path: str = ""

    def decode(self, rgb: np.ndarray, *, where: str) -> np.ndarray:
        """uint8 (H, W, 3) colours -> uint8 (H, W) class ids; a colour in no map raises naming it.

        The error names ``where`` (the file), the colour, its pixel count and the nearest known colour.
        """
        keys = _pack(rgb)
        ids = self._lookup[keys]
        unknown = ids == _NOT_IN_MAP
        if unknown.any():
            values, counts = np.unique(keys[unknown], return_counts=True)
            worst = int(np.argmax(counts))
            color = _unpack(int(values[worst]))
            palette = np.array(self.colors + self.ignore_colors, np.int64)
            nearest = tuple(int(v) for v in palette[np.argmin(((palette - color) ** 2).sum(axis=1))])
            more = f" ({len(values) - 1} other unknown colour(s) too)" if len(values) > 1 else ""
            raise DatasetError(
                f"mask {where}: colour {color} ({int(counts[worst])} pixels) is in no colour map "
                f"({self.path or 'the VOC palette'}); nearest known colour {nearest} "
                f"({self.name_of(nearest)}){more}. Add it to the colour map (--colormap FILE) or repaint it",
                kind="colors")
        return ids.astype(np.uint8)

    @functools.cached_property
    def _lookup(self) -> np.ndarray:
        """Every 24-bit colour -> class id (255 ignore, 256 not in the map): one gather decodes a mask."""
        table = np.full(1 << 24, _NOT_IN_MAP, np.uint16)
        for class_id, color in enumerate(self.colors):
            table[int(_pack(np.array(color)))] = class_id
        for color in self.ignore_colors:
            table[int(_pack(np.array(color)))] = IGNORE_LABEL
        return table

    def name_of(self, color) -> str:
        color = tuple(color)
        return self.labels[self.colors.index(color)] if color in self.colors else IGNORE_NAME


def _pack(rgb: np.ndarray) -> np.ndarray:
    rgb = rgb.astype(np.uint32)
    return (rgb[..., 0] << 16) | (rgb[..., 1] << 8) | rgb[..., 2]


def _unpack(key: int) -> tuple[int, int, int]:
    return (key >> 16) & 255, (key >> 8) & 255, key & 255


def read_colormap(path: str) -> ColorMap:
    """Read a ``name:R,G,B[:parts:actions]`` colour map; a line that does not parse raises naming it."""
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError as err:
        raise DatasetError(f"colour map {path}: cannot read ({err})", kind="missing") from None
    names, colors, ignore = [], [], []
    for number, line in enumerate(lines, start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        name, _, rest = text.partition(":")
        values = rest.split(":", 1)[0].split(",")
        try:
            color = tuple(int(v) for v in values)
            if not name.strip() or len(color) != 3 or not all(0 <= v <= 255 for v in color):
                raise ValueError
        except ValueError:
            raise DatasetError(f"colour map {path}, line {number}: {line.strip()!r} does not parse; expected "
                               f"'name:R,G,B' (e.g. 'cat:255,0,0::') with 0..255 values", kind="layout") from None
        if color in colors or color in ignore:
            raise DatasetError(f"colour map {path}, line {number}: colour {color} is already used", kind="layout")
        if name.strip() == IGNORE_NAME:
            ignore.append(color)
            continue
        names.append(name.strip())
        colors.append(color)
    labels, _ = clean_names(names, where=f"colour map {path}")
    return ColorMap(labels, tuple(colors), tuple(ignore), path)


def voc_colormap(labels) -> ColorMap:
    """The VOC palette for ``labels`` (its colour 224,224,192 is the ignore label, as in VOC's masks)."""
    from edge.artifact import default_colors
    return ColorMap(tuple(labels), default_colors(len(labels)), ((224, 224, 192),), "")
