"""Pictures of a run: prediction overlays and the confusion matrix (matplotlib, Agg canvas, no display)."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from edge import visualize
from kerasseg.files import atomic_path


def overlay_rgb(image: np.ndarray, mask: np.ndarray, colors: Sequence[Sequence[int]], *, alpha: float = 0.5,
                ignore_label: int = 255) -> np.ndarray:
    """``edge.visualize.overlay`` (which draws on BGR frames) for an RGB image; returns RGB uint8."""
    bgr = np.ascontiguousarray(np.asarray(image, np.uint8)[..., ::-1])
    drawn = visualize.overlay(bgr, np.asarray(mask, np.int32), colors, alpha=alpha, ignore_label=ignore_label)
    return drawn[..., ::-1]


def _save(figure: Figure, path: str) -> str:
    FigureCanvasAgg(figure)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    return path


def save_overlays(path: str | os.PathLike, *, images, truths, predictions, labels: Sequence[str],
                  colors: Sequence[Sequence[int]], ignore_label: int = 255) -> str:
    """One row per example: the image, the ground truth overlay and the prediction overlay, plus a legend."""
    path = os.fspath(path)
    count = len(images)
    if count == 0:
        raise ValueError("save_overlays: no images given")
    figure = Figure(figsize=(7.5, 2.5 * count + 0.6))
    for row, (image, truth, prediction) in enumerate(zip(images, truths, predictions)):
        panels = (("image", np.asarray(image, np.uint8)),
                  ("ground truth", overlay_rgb(image, truth, colors, ignore_label=ignore_label)),
                  ("prediction", overlay_rgb(image, prediction, colors, ignore_label=ignore_label)))
        for col, (title, picture) in enumerate(panels):
            axis = figure.add_subplot(count, 3, row * 3 + col + 1)
            axis.imshow(picture, interpolation="nearest")
            axis.set_axis_off()
            if row == 0:
                axis.set_title(title)
    from matplotlib.patches import Patch

    handles = [Patch(color=np.asarray(c) / 255.0, label=name) for name, c in zip(labels, colors)]
    figure.legend(handles=handles, loc="lower center", ncol=min(len(labels), 6), fontsize="small")
    return _save(figure, path)


def save_confusion_matrix(path: str | os.PathLike, matrix, *, labels: Sequence[str], title: str = "") -> str:
    """Row-normalised confusion matrix (rows: truth, columns: prediction) with the share in each cell."""
    path = os.fspath(path)
    matrix = np.asarray(matrix, np.float64)
    rows = matrix.sum(axis=1, keepdims=True)
    share = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    size = max(4.0, 0.45 * len(labels) + 2.5)
    figure = Figure(figsize=(size + 1, size))
    axis = figure.add_subplot(1, 1, 1)
    image = axis.imshow(share, vmin=0, vmax=1, cmap="Blues")
    figure.colorbar(image, ax=axis, fraction=0.046)
    axis.set_xticks(range(len(labels)), labels, rotation=60, ha="right")
    axis.set_yticks(range(len(labels)), labels)
    axis.set_xlabel("prediction")
    axis.set_ylabel("ground truth")
    if title:
        axis.set_title(title)
    if len(labels) <= 25:
        for i in range(len(labels)):
            for j in range(len(labels)):
                axis.text(j, i, f"{share[i, j]:.2f}", ha="center", va="center", fontsize=7,
                          color="white" if share[i, j] > 0.5 else "black")
    return _save(figure, path)
