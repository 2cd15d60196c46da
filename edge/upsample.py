"""From a model's output map to the frame: which output pixels each frame pixel reads, and with what weights.

Every map involved is separable and affine per axis, so one :class:`Grid` per (frame, content box,
output size, alignment) holds all of it: for each frame row (and column) the two output rows it
blends, the weight of the second, and the nearest one. The chain for a frame row ``y``:

    input row   y_in  = top + (y + 0.5) * content_height / frame_height - 0.5   (OpenCV's bilinear resize)
    output row  y_out = the spec's alignment applied to y_in (see ``edge.artifact.Alignment``)

clamped to the map, as TensorFlow and OpenCV clamp at the border. Bilinear scores at the frame's
size are then what the Keras full head computes, sampled where the frame's pixels lie.

The exact method (:func:`exact`) avoids computing them almost everywhere: a convex blend of score
vectors that share their argmax keeps that argmax (for ties too, since argmax takes the first), so
a frame pixel whose four source pixels agree takes their class, and only pixels along class
boundaries need interpolated scores. Those are computed with the same arithmetic as
:func:`bilinear`, so the two agree exactly.
"""
from __future__ import annotations

import dataclasses
import enum
import functools

import numpy as np

from edge.artifact.spec import Alignment


class Upsample(enum.Enum):
    """How the segmenter brings a coarse score map to the frame."""

    EXACT = "exact"  # class of the bilinear scores, as the full head computes them (boundaries only)
    NEAREST = "nearest"  # class at the output resolution, then nearest neighbour: cheaper, blockier

    @classmethod
    def parse(cls, value: "str | Upsample") -> "Upsample":
        if isinstance(value, Upsample):
            return value
        for mode in cls:
            if value == mode.value:
                return mode
        raise ValueError(f"upsample: unknown value {value!r}; valid choices are {[m.value for m in cls]}")


@dataclasses.dataclass(frozen=True)
class Axis:
    """For each frame pixel along one axis: the two output pixels it blends, the second's weight, the nearest."""

    low: np.ndarray  # intp
    high: np.ndarray  # intp, low + 1 except at the last output pixel
    weight: np.ndarray  # float32 in [0, 1)
    nearest: np.ndarray  # intp


@dataclasses.dataclass(frozen=True)
class Grid:
    """Where each frame pixel falls in the output map (rows and columns)."""

    frame_size: tuple[int, int]
    output_size: tuple[int, int]
    rows: Axis
    cols: Axis


def output_coordinates(frame_pixels: int, *, offset: int, content: int, input_pixels: int, output_pixels: int,
                       alignment: "Alignment | str", stride: int) -> np.ndarray:
    """Output-map coordinate (float64) of each frame pixel's centre along one axis."""
    alignment = Alignment.parse(alignment, name="output_alignment")
    y_in = offset + (np.arange(frame_pixels, dtype=np.float64) + 0.5) * (content / frame_pixels) - 0.5
    if alignment is Alignment.HALF_PIXEL:
        return (y_in + 0.5) * (output_pixels / input_pixels) - 0.5
    if alignment is Alignment.LEGACY:
        return y_in * (output_pixels / input_pixels)
    if alignment is Alignment.STRIDE:
        return (y_in + 0.5) / stride - 0.5
    return y_in * ((output_pixels - 1) / (input_pixels - 1) if input_pixels > 1 else 0.0)  # ALIGN_CORNERS


def _axis(coords: np.ndarray, size: int) -> Axis:
    coords = np.clip(coords, 0.0, size - 1)
    low = np.floor(coords).astype(np.intp)
    high = np.minimum(low + 1, size - 1)
    nearest = np.minimum(np.floor(coords + 0.5).astype(np.intp), size - 1)
    return Axis(low=low, high=high, weight=(coords - low).astype(np.float32), nearest=nearest)


@functools.lru_cache(maxsize=16)
def frame_grid(frame_size: tuple[int, int], box: tuple[int, int, int, int], *, input_size: tuple[int, int],
               output_size: tuple[int, int], alignment: "Alignment | str" = Alignment.HALF_PIXEL,
               stride: int = 1) -> Grid:
    """The :class:`Grid` for a frame whose content sits at ``box`` (top, left, height, width) of the input.

    Cached: a camera keeps one geometry, so the tables are computed once.
    """
    top, left, height, width = box
    axes = []
    for frame, offset, content, size_in, size_out in zip(frame_size, (top, left), (height, width), input_size,
                                                         output_size):
        coords = output_coordinates(frame, offset=offset, content=content, input_pixels=size_in,
                                    output_pixels=size_out, alignment=alignment, stride=stride)
        axes.append(_axis(coords, size_out))
    return Grid(frame_size=tuple(frame_size), output_size=tuple(output_size), rows=axes[0], cols=axes[1])


def nearest(grid: Grid, image: np.ndarray) -> np.ndarray:
    """An output-resolution (h, w) or (h, w, k) image at the frame's size, nearest neighbour."""
    rows, cols = grid.rows.nearest, grid.cols.nearest
    if image.ndim == 2:
        return image[rows][:, cols]
    # Gather whole pixels as one 2-D gather over (h, w * k): several times faster than a 3-D one.
    h, w, k = image.shape
    flat_cols = (cols[:, None] * k + np.arange(k)).ravel()
    return np.ascontiguousarray(image).reshape(h, w * k)[rows][:, flat_cols].reshape(len(rows), len(cols), k)


def _blend_rows(grid: Grid, values: np.ndarray) -> np.ndarray:
    """Values blended between output rows, for each frame row: (frame_h, w, k) float32."""
    weight = grid.rows.weight[:, None, None]
    top = values[grid.rows.low].astype(np.float32)
    return top + weight * (values[grid.rows.high].astype(np.float32) - top)


def _blend_rows_at(grid: Grid, values: np.ndarray, ys: np.ndarray, js: np.ndarray) -> np.ndarray:
    """``_blend_rows(grid, values)[ys, js]`` computed for those points only, with the same arithmetic: (n, k)."""
    weight = grid.rows.weight[ys][:, None]
    top = values[grid.rows.low[ys], js].astype(np.float32)
    return top + weight * (values[grid.rows.high[ys], js].astype(np.float32) - top)


def bilinear(grid: Grid, values: np.ndarray) -> np.ndarray:
    """(h, w, k) output-resolution values (real or quantized) -> (H, W, k) float32 at the frame's size."""
    vertical = _blend_rows(grid, values)
    left = vertical[:, grid.cols.low]
    return left + grid.cols.weight[None, :, None] * (vertical[:, grid.cols.high] - left)


def decide(values: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """Class ids of (..., k) values: argmax over k, or for one channel ``value > threshold`` (bool)."""
    if threshold is None:
        return np.argmax(values, axis=-1)
    return values[..., 0] > threshold


def exact(grid: Grid, values: np.ndarray, ids: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """The class of :func:`bilinear` scores at every frame pixel, interpolating only where sources disagree.

    ``ids`` is ``decide(values, threshold)`` at the output resolution, in the dtype wanted for the result.
    First down each output column: a frame row whose two source rows agree there takes their class, the
    others are blended (as :func:`bilinear` does first). Then along each frame row: pixels between two
    output columns of the same class take it, and only the runs between columns of different classes
    are blended horizontally.
    """
    h, w = ids.shape
    column_ids = ids[grid.rows.low]  # (frame rows, output columns)
    ys, js = np.nonzero((ids[np.minimum(np.arange(h) + 1, h - 1)] != ids)[grid.rows.low])
    if len(ys):
        column_ids[ys, js] = decide(_blend_rows_at(grid, values, ys, js), threshold)
    out = column_ids[:, grid.cols.low]
    ys, js = np.nonzero(column_ids[:, :-1] != column_ids[:, 1:])  # runs between output columns j and j + 1
    start = np.searchsorted(grid.cols.low, js)  # each run's frame columns: those whose low source is j
    count = np.searchsorted(grid.cols.low, js, side="right") - start
    if not count.any():
        return out
    left, right = _blend_rows_at(grid, values, ys, js), _blend_rows_at(grid, values, ys, js + 1)
    classes = _candidates(left, right) if threshold is None else None
    if classes is not None:
        left, right = left[:, classes], right[:, classes]
    run = np.repeat(np.arange(len(ys)), count)  # one entry per frame pixel to blend
    xs = start[run] + (np.arange(len(run)) - np.repeat(np.cumsum(count) - count, count))
    ends = np.take(left, run, axis=0)  # np.take: faster than fancy indexing for row gathers
    pixel_ids = decide(ends + grid.cols.weight[xs][:, None] * (np.take(right, run, axis=0) - ends), threshold)
    out[ys[run], xs] = pixel_ids if classes is None else classes[pixel_ids]
    return out


def _candidates(left: np.ndarray, right: np.ndarray) -> np.ndarray | None:
    """The classes (ascending) that can win anywhere on a blend of ``left`` and ``right``, (runs, k) each.

    Along a run the winner is at least as high as the higher of the two end winners' lines, which is
    lowest where they cross; a class whose two ends are both below that never wins there. The result is
    the union over runs, None when that is every class. Ascending, so argmax's first-of-ties holds.
    """
    runs = np.arange(len(left))
    a, b = np.argmax(left, axis=1), np.argmax(right, axis=1)
    drop_a, rise_b = left[runs, a] - left[runs, b], right[runs, b] - right[runs, a]  # both >= 0
    total = drop_a + rise_b
    t = np.divide(drop_a, total, out=np.zeros_like(total), where=total > 0)
    floor = left[runs, a] + t * (right[runs, a] - left[runs, a])
    floor -= 1e-4 * (np.abs(floor) + 1.0)  # margin for float32 rounding: a spare candidate costs little
    classes = np.flatnonzero((np.maximum(left, right) >= floor[:, None]).any(axis=0))
    return None if len(classes) == left.shape[1] else classes


__all__ = ["Axis", "Grid", "Upsample", "bilinear", "decide", "exact", "frame_grid", "nearest",
           "output_coordinates"]
