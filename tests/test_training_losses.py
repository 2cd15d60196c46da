"""Losses against values computed by hand."""
import math

import numpy as np
import pytest

from kerasseg.training.losses import (MaskedSparseCrossentropy, cross_entropy_sums, label_weight_sum,
                                     masked_cross_entropy)

# 3 classes; label 255 must be skipped.
LABELS = np.array([[0, 0, 1, 1],
                   [2, 2, 255, 0]])


def _hand_ce(labels, logits, weights=None):
    total = weight_sum = 0.0
    for label, row in zip(labels.reshape(-1), logits.reshape(-1, logits.shape[-1])):
        if label == 255:
            continue
        ce = -(row[label] - math.log(np.exp(row).sum()))
        w = 1.0 if weights is None else weights[label]
        total += w * ce
        weight_sum += w
    return total, weight_sum


def test_cross_entropy_ignores_255_and_weights_classes():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(2, 4, 3)).astype(np.float32)
    total, weight = cross_entropy_sums(LABELS, logits)
    hand_total, hand_weight = _hand_ce(LABELS, logits)
    assert float(total) == pytest.approx(hand_total, rel=1e-5)
    assert float(weight) == hand_weight == 7
    weights = [0.5, 2.0, 1.0]
    total, weight = cross_entropy_sums(LABELS, logits, class_weights=weights)
    hand_total, hand_weight = _hand_ce(LABELS, logits, weights)
    assert float(total) == pytest.approx(hand_total, rel=1e-5)
    assert float(weight) == pytest.approx(hand_weight)
    mean = masked_cross_entropy(LABELS, logits, class_weights=weights)
    assert float(mean) == pytest.approx(hand_total / hand_weight, rel=1e-5)
    # Changing an ignored pixel's logits changes nothing.
    changed = logits.copy()
    changed[1, 2] = [100.0, -100.0, 3.0]
    assert float(masked_cross_entropy(LABELS, changed)) == pytest.approx(float(masked_cross_entropy(LABELS, logits)))
    assert float(MaskedSparseCrossentropy(class_weights=weights)(LABELS, logits)) == pytest.approx(
        hand_total / hand_weight, rel=1e-5)
    with pytest.raises(ValueError, match="class_weights: expected 3"):
        cross_entropy_sums(LABELS, logits, class_weights=[1.0, 2.0])
    assert float(masked_cross_entropy(np.full((2, 4), 255), logits)) == 0.0


def test_label_weight_sum_matches_cross_entropy_sums():
    logits = np.zeros((2, 4, 3), np.float32)
    for weights in (None, [0.5, 2.0, 1.0]):
        _, expected = cross_entropy_sums(LABELS, logits, class_weights=weights)
        assert float(label_weight_sum(LABELS, class_weights=weights)) == pytest.approx(float(expected))
