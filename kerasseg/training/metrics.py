"""Segmentation metrics from a streaming confusion matrix.

The four metrics of the FCN paper (Long et al., 2015, https://arxiv.org/abs/1411.4038, section 5),
with ``n[i, j]`` the number of pixels of class ``i`` predicted as ``j`` and ``t[i] = sum_j n[i, j]``:

* pixel accuracy            ``sum_i n[i, i] / sum_i t[i]``
* mean accuracy             ``mean_i n[i, i] / t[i]``
* mean IoU                  ``mean_i n[i, i] / (t[i] + sum_j n[j, i] - n[i, i])``
* frequency-weighted IoU    ``sum_i t[i] * IoU_i / sum_i t[i]``

Pixels whose label is the ignore label (255) are not counted. A class absent from both the labels and
the predictions has no IoU and is left out of the means (its per-class IoU is ``None``).

``ConfusionMatrix`` is plain numpy, for evaluation and reports. ``ConfusionMatrixMetric`` is the same
count as a Keras metric, for training loops and ``model.fit``; both share ``scores_from_confusion``.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from kerasseg.backend import keras, tf

from edge.artifact import IGNORE_LABEL  # noqa: E402  (one definition, in the artifact contract)
METRIC_NAMES = ("pixel_accuracy", "mean_accuracy", "mean_iou", "frequency_weighted_iou")


def scores_from_confusion(matrix, *, labels: Sequence[str] | None = None) -> dict:
    """The four FCN metrics and per-class IoU / accuracy from a ``(C, C)`` matrix (rows: truth, columns: prediction).

    ``labels`` names the classes in the per-class dicts (default: ``"0"``, ``"1"``, ...).
    Returns plain Python floats (``None`` for undefined values) so the result is JSON-ready.
    """
    matrix = np.asarray(matrix, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"confusion matrix: expected a square (C, C) array, got shape {matrix.shape}")
    num_classes = matrix.shape[0]
    names = [str(i) for i in range(num_classes)] if labels is None else [str(x) for x in labels]
    if len(names) != num_classes:
        raise ValueError(f"labels: expected {num_classes} class names, got {len(names)}: {names}")

    true_positive = np.diag(matrix)
    per_truth = matrix.sum(axis=1)      # t[i]
    per_prediction = matrix.sum(axis=0)
    union = per_truth + per_prediction - true_positive
    total = per_truth.sum()

    with np.errstate(divide="ignore", invalid="ignore"):
        accuracy = np.where(per_truth > 0, true_positive / per_truth, np.nan)
        iou = np.where(union > 0, true_positive / union, np.nan)

    def mean_or_none(values):
        values = values[~np.isnan(values)]
        return float(values.mean()) if values.size else None

    def as_dict(values):
        return {name: (None if np.isnan(v) else float(v)) for name, v in zip(names, values)}

    if total > 0:
        pixel_accuracy = float(true_positive.sum() / total)
        frequency_weighted = float(np.nansum(per_truth * np.nan_to_num(iou)) / total)
    else:
        pixel_accuracy = frequency_weighted = None
    return {
        "pixel_accuracy": pixel_accuracy,
        "mean_accuracy": mean_or_none(accuracy),
        "mean_iou": mean_or_none(iou),
        "frequency_weighted_iou": frequency_weighted,
        "per_class_iou": as_dict(iou),
        "per_class_accuracy": as_dict(accuracy),
        "num_pixels": int(total),
    }


class ConfusionMatrix:
    """A streaming ``(C, C)`` confusion matrix in numpy; rows are the truth, columns the prediction.

    >>> cm = ConfusionMatrix(3)
    >>> cm.update(labels, predictions)   # any matching shapes; label 255 is skipped
    >>> cm.results(labels=["bg", "a", "b"])["mean_iou"]
    """

    def __init__(self, num_classes: int, *, ignore_label: int = IGNORE_LABEL):
        if not isinstance(num_classes, (int, np.integer)) or num_classes < 1:
            raise ValueError(f"num_classes: expected a positive int, got {num_classes!r}")
        if 0 <= ignore_label < num_classes:
            raise ValueError(f"ignore_label: {ignore_label} collides with a class id (0..{num_classes - 1})")
        self.num_classes = int(num_classes)
        self.ignore_label = int(ignore_label)
        self.matrix = np.zeros((self.num_classes, self.num_classes), dtype=np.int64)

    def reset(self) -> None:
        self.matrix[:] = 0

    def update(self, labels, predictions) -> "ConfusionMatrix":
        """Count one batch. ``labels`` and ``predictions`` are integer class maps of the same shape."""
        labels = np.asarray(labels)
        predictions = np.asarray(predictions)
        if labels.shape != predictions.shape:
            raise ValueError(
                f"labels and predictions must have the same shape, got {labels.shape} and {predictions.shape}")
        labels = labels.reshape(-1).astype(np.int64)
        predictions = predictions.reshape(-1).astype(np.int64)
        keep = labels != self.ignore_label
        labels, predictions = labels[keep], predictions[keep]
        for name, values in (("labels", labels), ("predictions", predictions)):
            bad = values[(values < 0) | (values >= self.num_classes)]
            if bad.size:
                raise ValueError(f"{name}: values must be in 0..{self.num_classes - 1} "
                                 f"(or {self.ignore_label} for labels), got {sorted(set(bad.tolist()))[:10]}")
        counts = np.bincount(labels * self.num_classes + predictions, minlength=self.num_classes ** 2)
        self.matrix += counts.reshape(self.num_classes, self.num_classes)
        return self

    def results(self, labels: Sequence[str] | None = None) -> dict:
        """The four FCN metrics plus per-class IoU and accuracy keyed by class name (see module doc)."""
        return scores_from_confusion(self.matrix, labels=labels)


def format_results(results: dict, *, title: str | None = None) -> str:
    """A short human-readable table of ``ConfusionMatrix.results`` output."""

    def fmt(value):
        return "  n/a" if value is None else f"{value:.4f}"

    lines = [title] if title else []
    for name in METRIC_NAMES:
        lines.append(f"  {name:<24} {fmt(results[name])}")
    lines.append("  per-class IoU:")
    width = max((len(n) for n in results["per_class_iou"]), default=0)
    for name, value in results["per_class_iou"].items():
        lines.append(f"    {name:<{width}}  {fmt(value)}")
    return "\n".join(lines)


def confusion_batch(y_true, y_pred, *, num_classes: int, ignore_label: int = IGNORE_LABEL):
    """A (C, C) float64 confusion matrix of one batch in TensorFlow; pixels labelled ``ignore_label`` are skipped.

    ``y_pred`` is logits (B, H, W, C) or a class map with the shape of ``y_true``.
    """
    y_true = tf.cast(y_true, tf.int32)
    y_pred = tf.convert_to_tensor(y_pred)
    if y_pred.shape.rank == y_true.shape.rank + 1:
        y_pred = tf.argmax(y_pred, axis=-1, output_type=tf.int32)
    y_pred = tf.cast(y_pred, tf.int32)
    y_true = tf.reshape(y_true, [-1])
    y_pred = tf.reshape(y_pred, [-1])
    keep = tf.not_equal(y_true, ignore_label)
    return tf.math.confusion_matrix(tf.boolean_mask(y_true, keep), tf.boolean_mask(y_pred, keep),
                                    num_classes=num_classes, dtype=tf.float64)


@keras.saving.register_keras_serializable(package="kerasseg")
class ConfusionMatrixMetric(keras.metrics.Metric):
    """Streaming confusion matrix as a Keras metric; ``result()`` is the mean IoU over present classes.

    ``y_true`` is an int class map (B, H, W) with ``ignore_label`` for unlabelled pixels;
    ``y_pred`` is logits (B, H, W, C) or an int class map (B, H, W). ``confusion()`` gives the matrix,
    which ``scores_from_confusion`` turns into the four FCN metrics.
    """

    def __init__(self, num_classes, *, ignore_label=IGNORE_LABEL, name="mean_iou", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.num_classes = int(num_classes)
        self.ignore_label = int(ignore_label)
        self.total = self.add_weight(name="confusion", shape=(self.num_classes, self.num_classes),
                                     initializer="zeros", dtype=tf.float64)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            raise ValueError("ConfusionMatrixMetric: sample_weight is not supported; mark pixels with the ignore label")
        self.total.assign_add(confusion_batch(y_true, y_pred, num_classes=self.num_classes,
                                              ignore_label=self.ignore_label))

    def result(self):
        # scores_from_confusion is the one definition of the means; a host op, so not for TPU graphs.
        return tf.py_function(_mean_iou_or_zero, [self.total], tf.float32)

    def reset_state(self):
        self.total.assign(tf.zeros_like(self.total))

    def confusion(self) -> np.ndarray:
        """The accumulated matrix as numpy int64."""
        return np.asarray(self.total.numpy()).round().astype(np.int64)

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes, "ignore_label": self.ignore_label}


def _mean_iou_or_zero(matrix) -> float:
    return scores_from_confusion(matrix.numpy())["mean_iou"] or 0.0
