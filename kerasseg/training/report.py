"""Pictures of a run: prediction overlays and the confusion matrix (matplotlib, Agg canvas, no display)."""
from __future__ import annotations

import os
from typing import Sequence

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from edge import visualize
from edge.files import atomic_path
from kerasseg.rundir.run import CONFUSION, OVERLAYS


# Fixed colours of the error panel and of ignored pixels (VOC draws its "void" border in this cream).
IGNORE_RGB = (224, 224, 192)
ERROR_RGB = (255, 0, 255)
PANELS = ("image", "ground truth", "prediction", "errors")
PANEL_INCHES = 2.2


def mask_rgb(mask: np.ndarray, colors: Sequence[Sequence[int]], *, ignore_label: int = 255) -> np.ndarray:
    """(H, W) class ids -> (H, W, 3) RGB in solid class colours; ignored pixels in ``IGNORE_RGB``."""
    mask = np.asarray(mask, np.int32)
    rgb = visualize.colorize(mask, colors, ignore_label=ignore_label)[..., ::-1].copy()
    rgb[mask == ignore_label] = IGNORE_RGB
    return rgb


def error_rgb(image: np.ndarray, truth: np.ndarray, prediction: np.ndarray, *,
              ignore_label: int = 255) -> tuple[np.ndarray, float]:
    """The image in dim grey with wrong pixels in ``ERROR_RGB`` and ignored ones in ``IGNORE_RGB``; and the share
    of wrong pixels among those not ignored."""
    truth, prediction = np.asarray(truth, np.int32), np.asarray(prediction, np.int32)
    grey = np.asarray(image, np.float32) @ np.array([0.299, 0.587, 0.114], np.float32)
    out = np.repeat((0.35 * grey + 20).astype(np.uint8)[..., None], 3, axis=-1)
    ignored = truth == ignore_label
    wrong = (truth != prediction) & ~ignored
    out[wrong] = ERROR_RGB
    out[ignored] = IGNORE_RGB
    counted = int((~ignored).sum())
    return out, (float(wrong.sum()) / counted if counted else 0.0)


def _save(figure: Figure, path: str) -> str:
    FigureCanvasAgg(figure)
    with atomic_path(path) as tmp:
        figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight")
    return path


def save_overlays(path: str | os.PathLike, *, images, truths, predictions, labels: Sequence[str],
                  colors: Sequence[Sequence[int]], ignore_label: int = 255) -> str:
    """One row per example: the image, the ground truth and the prediction in solid class colours, and the
    pixels where they differ; a legend of the classes present below."""
    path = os.fspath(path)
    count = len(images)
    if count == 0:
        raise ValueError("save_overlays: no images given")
    height, width = np.asarray(images[0]).shape[:2]
    row_inches = PANEL_INCHES * height / width + 0.3
    figure = Figure(figsize=(PANEL_INCHES * len(PANELS), row_inches * count + 0.5), layout="constrained")
    axes = figure.subplots(count, len(PANELS), squeeze=False)
    for row, (image, truth, prediction) in enumerate(zip(images, truths, predictions)):
        errors, share = error_rgb(image, truth, prediction, ignore_label=ignore_label)
        pictures = (np.asarray(image, np.uint8), mask_rgb(truth, colors, ignore_label=ignore_label),
                    mask_rgb(prediction, colors, ignore_label=ignore_label), errors)
        titles = PANELS[:3] + (f"errors {100 * share:.1f}%",)
        for axis, title, picture in zip(axes[row], titles, pictures):
            axis.imshow(picture, interpolation="nearest")
            axis.set_axis_off()
            if row == 0 or axis is axes[row][-1]:
                axis.set_title(title, fontsize="medium")
    figure.legend(handles=_legend_handles(truths, predictions, labels, colors, ignore_label=ignore_label),
                  loc="outside lower center", ncol=6, fontsize="small", frameon=False)
    return _save(figure, path)


def _legend_handles(truths, predictions, labels, colors, *, ignore_label: int):
    """Patches for the classes in any mask, then for ignored and wrong pixels."""
    from matplotlib.patches import Patch

    stacked = np.concatenate([np.asarray(m, np.int32).ravel() for m in (*truths, *predictions)])
    present = visualize.classes_present(stacked, len(labels), ignore_label=ignore_label)
    handles = [Patch(facecolor=np.asarray(colors[i]) / 255.0, edgecolor="grey", label=labels[i]) for i in present]
    if (stacked == ignore_label).any():
        handles.append(Patch(facecolor=np.asarray(IGNORE_RGB) / 255.0, edgecolor="grey", label="ignored"))
    handles.append(Patch(facecolor=np.asarray(ERROR_RGB) / 255.0, edgecolor="grey", label="wrong (errors)"))
    return handles


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


def save_run_pictures(run, *, matrix, title: str, images, truths, predictions) -> None:
    """The confusion matrix and the val overlays of the best model so far, in ``run`` (a ``kerasseg.rundir.Run``)."""
    if not run.chief:
        return
    spec = run.spec
    save_confusion_matrix(run.file(CONFUSION), matrix, labels=spec.labels, title=title)
    save_overlays(run.file(OVERLAYS), images=images, truths=truths, predictions=predictions, labels=spec.labels,
                  colors=spec.colors, ignore_label=spec.ignore_label)
