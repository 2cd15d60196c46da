"""Pixel-wise cross-entropy that skips the ignore label, with optional class weights."""
from __future__ import annotations

from typing import Sequence

from kerasseg.backend import keras, tf

from edge.artifact import IGNORE_LABEL  # noqa: E402  (one definition, in the artifact contract)


def cross_entropy_sums(labels, logits, *, class_weights: Sequence[float] | None = None,
                       ignore_label: int = IGNORE_LABEL):
    """``(sum of weighted pixel losses, sum of pixel weights)`` over one batch.

    ``labels`` is an int class map (B, H, W); ``logits`` is (B, H, W, C) at the same resolution.
    Pixels labelled ``ignore_label`` weigh 0; the others weigh ``class_weights[label]`` (1 without weights).
    Returning both sums lets a distributed step divide by the global weight total, so that the loss is
    the same whatever the number of replicas.
    """
    logits = tf.cast(logits, tf.float32)
    labels = tf.cast(labels, tf.int32)
    num_classes = logits.shape[-1]
    valid = tf.not_equal(labels, ignore_label)
    safe_labels = tf.where(valid, labels, tf.zeros_like(labels))
    if class_weights is not None:
        if num_classes is not None and len(class_weights) != num_classes:
            raise ValueError(f"class_weights: expected {num_classes} values (one per class), got {len(class_weights)}")
        weights = tf.gather(tf.constant(class_weights, tf.float32), safe_labels)
    else:
        weights = tf.ones_like(safe_labels, tf.float32)
    weights = weights * tf.cast(valid, tf.float32)
    pixel_loss = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=safe_labels, logits=logits)
    return tf.reduce_sum(pixel_loss * weights), tf.reduce_sum(weights)


def label_weight_sum(labels, *, class_weights: Sequence[float] | None = None, ignore_label: int = IGNORE_LABEL):
    """The sum of pixel weights of ``labels`` (the second value of ``cross_entropy_sums``), without logits."""
    labels = tf.cast(labels, tf.int32)
    valid = tf.not_equal(labels, ignore_label)
    if class_weights is None:
        return tf.reduce_sum(tf.cast(valid, tf.float32))
    safe_labels = tf.where(valid, labels, tf.zeros_like(labels))
    weights = tf.gather(tf.constant(class_weights, tf.float32), safe_labels)
    return tf.reduce_sum(weights * tf.cast(valid, tf.float32))


def masked_cross_entropy(labels, logits, *, class_weights: Sequence[float] | None = None,
                         ignore_label: int = IGNORE_LABEL):
    """Weighted mean cross-entropy over the labelled pixels of a batch (0 when none is labelled)."""
    total, weight = cross_entropy_sums(labels, logits, class_weights=class_weights, ignore_label=ignore_label)
    return tf.math.divide_no_nan(total, weight)


@keras.saving.register_keras_serializable(package="kerasseg")
class MaskedSparseCrossentropy(keras.losses.Loss):
    """``masked_cross_entropy`` as a Keras loss, for ``model.compile``; reduces over the whole batch."""

    def __init__(self, *, class_weights: Sequence[float] | None = None, ignore_label: int = IGNORE_LABEL,
                 name: str = "masked_sparse_crossentropy"):
        super().__init__(name=name, reduction=keras.losses.Reduction.NONE)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.ignore_label = int(ignore_label)

    def call(self, y_true, y_pred):
        return masked_cross_entropy(y_true, y_pred, class_weights=self.class_weights, ignore_label=self.ignore_label)

    def get_config(self):
        return {"class_weights": self.class_weights, "ignore_label": self.ignore_label, "name": self.name}
