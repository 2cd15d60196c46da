"""Drawing: colourise a class map, blend it over the frame, a legend, the stats.

Every function here is pure: it returns a new BGR image and leaves its inputs
untouched. Colours arrive as RGB (as the spec stores them) and are drawn in
BGR (as OpenCV stores frames).
"""
from __future__ import annotations

import functools
from typing import Mapping, Sequence

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_SIMPLEX
TEXT_COLOR = (255, 255, 255)
PANEL_ALPHA = 0.6  # darkening behind text
STAGES = ("capture", "preprocess", "invoke", "postprocess", "render", "sink")
LUT_PIXELS = 16384  # colour maps larger than this through OpenCV's table lookup
BACKGROUND_NAMES = ("background", "_background_")  # a class named so is left untinted


def palette_bgr(colors: Sequence[Sequence[int]], size: int = 256) -> np.ndarray:
    """An (size, 3) uint8 BGR table; ids without a colour map to black."""
    table = np.zeros((max(size, len(colors)), 3), np.uint8)
    if len(colors):
        table[:len(colors)] = np.asarray(colors, np.uint8)[:, ::-1]
    return table


def untinted_classes(labels: Sequence[str], ignore_label: int | None = None) -> tuple[int, ...]:
    """The ids an overlay leaves as the photo shows them: the ignore label and the class named background."""
    ids = [i for i, name in enumerate(labels) if name.strip().lower() in BACKGROUND_NAMES]
    return tuple(ids) + ((ignore_label,) if ignore_label is not None and ignore_label >= 0 else ())


def colorize(class_map: np.ndarray, colors: Sequence[Sequence[int]], *, ignore_label: int | None = None) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) BGR colours; the ignore label and unknown ids are black."""
    if class_map.ndim != 2:
        raise ValueError(f"class_map: expected (H, W) ids, got shape {class_map.shape}")
    table = palette_bgr(colors, 256 if class_map.dtype == np.uint8 else int(class_map.max(initial=0)) + 1)
    if ignore_label is not None and 0 <= ignore_label < len(table):
        table[ignore_label] = 0
    if class_map.dtype == np.uint8 and len(table) == 256 and class_map.size > LUT_PIXELS:
        # One pass of OpenCV's table lookup: ~5x numpy indexing at 640x480, slower on small maps.
        return cv2.applyColorMap(class_map, table.reshape(256, 1, 3))
    return table[np.clip(class_map, 0, len(table) - 1)]


def overlay(frame: np.ndarray, class_map: np.ndarray, colors: Sequence[Sequence[int]], *, alpha: float = 0.5,
            untinted: Sequence[int] = ()) -> np.ndarray:
    """Blend class colours over ``frame``: ``(1 - alpha) * frame + alpha * colour``, except where the class is in
    ``untinted`` (see :func:`untinted_classes`), which keeps the frame's own pixels.

    ``class_map`` has the frame's height and width (as ``Segmenter.segment`` returns it). Colours come from a
    table, the frame is read once by the blend, and the untinted pixels are copied back through a mask.
    """
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha: expected a value in [0, 1], got {alpha}")
    if class_map.ndim != 2 or frame.ndim != 3 or class_map.shape != frame.shape[:2]:
        raise ValueError(f"class_map shape {class_map.shape} does not match frame {frame.shape}: expected (H, W) "
                         f"ids and an (H, W, 3) frame")
    blended = cv2.addWeighted(frame, 1.0 - alpha, colorize(class_map, colors), alpha, 0.0)
    if len(untinted):
        if class_map.dtype == np.uint8:
            keep = np.zeros(256, np.uint8)
            keep[[i for i in untinted if 0 <= i < 256]] = 255
            cv2.copyTo(frame, cv2.LUT(class_map, keep), blended)
        else:
            kept = np.isin(class_map, untinted)
            blended[kept] = frame[kept]
    return blended


def class_counts(class_map: np.ndarray) -> np.ndarray:
    """How many pixels hold each id, indexed by id (at least 256 entries); negative ids are not counted."""
    if class_map.dtype == np.uint8 and class_map.size < 1 << 24:  # float32 counts stay exact below 2**24
        return cv2.calcHist([class_map], [0], None, [256], [0, 256]).ravel().astype(np.int64)  # 2x np.bincount
    ids = class_map.ravel()
    return np.bincount(ids[ids >= 0], minlength=256)


def classes_present(class_map: np.ndarray | None, num_classes: int, *, ignore_label: int | None = None,
                    counts: np.ndarray | None = None) -> list[int]:
    """Sorted ids in ``0..num_classes-1`` that occur in the map (or have ``counts``), the ignore label excluded."""
    counts = class_counts(class_map) if counts is None else counts
    return [int(i) for i in np.flatnonzero(counts[:num_classes]) if i != ignore_label]


@functools.lru_cache(maxsize=256)
def _text_size(text: str, font: int, scale: float, thickness: int):
    """``cv2.getTextSize``, cached: the legend and stats measure the same few strings every frame."""
    return cv2.getTextSize(text, font, scale, thickness)


def _font_scale(image_shape: tuple[int, ...]) -> float:
    return 0.4 if image_shape[1] < 480 else 0.5


def _darken(image: np.ndarray, top: int, left: int, bottom: int, right: int) -> None:
    h, w = image.shape[:2]
    top, left, bottom, right = max(0, top), max(0, left), min(h, bottom), min(w, right)
    if bottom > top and right > left:
        image[top:bottom, left:right] = cv2.convertScaleAbs(image[top:bottom, left:right], alpha=1.0 - PANEL_ALPHA)


def legend_layout(image_shape: tuple[int, ...], labels: Sequence[str], classes: Sequence[int],
                  *, scale: float | None = None) -> list[tuple[int, tuple[int, int, int, int], tuple[int, int]]]:
    """Where the legend puts each class: (class id, swatch (top, left, bottom, right), text origin (x, y)).

    The legend sits at the top-right corner, one row per class.
    """
    h, w = image_shape[:2]
    scale = scale or _font_scale(image_shape)
    (_, text_h), _ = _text_size("Ag", FONT, scale, 1)
    row = text_h + 8
    swatch = text_h + 2
    widest = max((_text_size(labels[c], FONT, scale, 1)[0][0] for c in classes), default=0)
    left = max(0, w - (swatch + 6 + widest + 8))
    rows = []
    for i, class_id in enumerate(classes):
        top = 4 + i * row
        rows.append((class_id, (top, left + 4, top + swatch, left + 4 + swatch), (left + 4 + swatch + 6, top + text_h)))
    return rows


def draw_legend(image: np.ndarray, classes: Sequence[int], labels: Sequence[str],
                colors: Sequence[Sequence[int]]) -> np.ndarray:
    """A copy of ``image`` with a legend of ``classes`` (swatch + name) at the top-right."""
    return _legend_into(image.copy(), classes, labels, colors)


def _legend_into(out: np.ndarray, classes: Sequence[int], labels: Sequence[str],
                 colors: Sequence[Sequence[int]], *, scale: float | None = None) -> np.ndarray:
    scale = scale or _font_scale(out.shape)
    rows = legend_layout(out.shape, labels, classes, scale=scale)
    if not rows:
        return out
    table = palette_bgr(colors)
    first_top = rows[0][1][0]
    last_bottom = rows[-1][1][2]
    left = rows[0][1][1] - 4
    _darken(out, first_top - 4, left, last_bottom + 4, out.shape[1])
    for class_id, (top, x0, bottom, x1), origin in rows:
        color = tuple(int(v) for v in table[class_id])
        cv2.rectangle(out, (x0, top), (x1 - 1, bottom - 1), color, thickness=-1)
        cv2.putText(out, labels[class_id], origin, FONT, scale, TEXT_COLOR, 1, cv2.LINE_AA)
    return out


def legend_scale(image_shape: tuple[int, ...]) -> float:
    """A font scale that grows with the image: 0.5 at 640x480 (and below, down to 0.4), 1.125 at 1920x1080."""
    return float(np.clip(0.5 * min(image_shape[:2]) / 480, 0.4, 3.0))


def legend_with_image(image: np.ndarray, classes: Sequence[int], labels: Sequence[str],
                      colors: Sequence[Sequence[int]]) -> np.ndarray:
    """``image`` with a legend of ``classes``, for a still picture: drawn at the top-right with a font that scales
    with the image when it covers at most a third of its width and half its height, else on a dark panel to the
    right of the image (which then grows wider, and taller if the legend needs it)."""
    if not classes:
        return image.copy()
    h, w = image.shape[:2]
    scale = legend_scale(image.shape)
    rows = legend_layout(image.shape, labels, classes, scale=scale)
    if w - rows[0][1][1] <= w / 3 and rows[-1][1][2] + 4 <= h / 2:
        return _legend_into(image.copy(), classes, labels, colors, scale=scale)
    scale = 0.4
    rows = legend_layout((h, 1 << 16), labels, classes, scale=scale)
    width, height = (1 << 16) - rows[0][1][1] + 4, rows[-1][1][2] + 8
    out = np.full((max(h, height), w + width, 3), 32, np.uint8)
    out[:h, :w] = image
    panel = _legend_into(out[:, w:].copy(), classes, labels, colors, scale=scale)
    out[:, w:] = panel
    return out


def stats_lines(*, fps: float, stages_ms: Mapping[str, float]) -> list[str]:
    """The text the stats panel shows: FPS, then one line per stage in pipeline order."""
    lines = [f"FPS {fps:.1f}"]
    for stage in STAGES:
        if stage in stages_ms:
            lines.append(f"{stage} {stages_ms[stage]:.1f} ms")
    return lines


def draw_stats(image: np.ndarray, *, fps: float, stages_ms: Mapping[str, float]) -> np.ndarray:
    """A copy of ``image`` with FPS and per-stage latency at the top-left."""
    return _stats_into(image.copy(), fps=fps, stages_ms=stages_ms)


def stats_box(image_shape: tuple[int, ...], lines: Sequence[str]) -> tuple[tuple[int, int, int, int], float, int]:
    """Where the stats panel sits: ((top, left, bottom, right) at the top-left corner, font scale, row height)."""
    scale = _font_scale(image_shape)
    (_, text_h), _ = _text_size("Ag", FONT, scale, 1)
    row = text_h + 6
    width = max(_text_size(line, FONT, scale, 1)[0][0] for line in lines)
    return (0, 0, 8 + row * len(lines), width + 12), scale, row


def _stats_into(out: np.ndarray, *, fps: float, stages_ms: Mapping[str, float]) -> np.ndarray:
    lines = stats_lines(fps=fps, stages_ms=stages_ms)
    (top, left, bottom, right), scale, row = stats_box(out.shape, lines)
    _darken(out, top, left, bottom, right)
    for i, line in enumerate(lines):
        cv2.putText(out, line, (6, row - 2 + i * row), FONT, scale, TEXT_COLOR, 1, cv2.LINE_AA)
    return out


def render(frame: np.ndarray, class_map: np.ndarray, *, labels: Sequence[str], colors: Sequence[Sequence[int]],
           alpha: float, ignore_label: int | None, fps: float | None = None,
           stages_ms: Mapping[str, float] | None = None, counts: np.ndarray | None = None) -> np.ndarray:
    """Overlay (background and ignore label untinted), a legend of the tinted classes present and, when ``fps``
    is given, the stats panel.

    ``class_map`` has the frame's size; ``counts`` (:func:`class_counts` of it) saves counting again. The legend
    and the stats are drawn in place on the new overlay image, so the frame is copied once.
    """
    untinted = untinted_classes(labels, ignore_label)
    out = overlay(frame, class_map, colors, alpha=alpha, untinted=untinted)
    present = classes_present(class_map, len(labels), ignore_label=ignore_label, counts=counts)
    _legend_into(out, [c for c in present if c not in untinted], labels, colors)
    if fps is not None:
        _stats_into(out, fps=fps, stages_ms=stages_ms or {})
    return out


__all__ = ["BACKGROUND_NAMES", "STAGES", "class_counts", "classes_present", "colorize", "draw_legend", "draw_stats",
           "legend_layout", "legend_scale", "legend_with_image", "overlay", "palette_bgr", "render", "stats_box",
           "stats_lines", "untinted_classes"]
