"""Metrics against values computed by hand."""
import numpy as np
import pytest

from kerasseg.backend import tf
from kerasseg.training.metrics import ConfusionMatrix, ConfusionMatrixMetric, format_results, scores_from_confusion

# 3 classes; label 255 must be skipped.
LABELS = np.array([[0, 0, 1, 1],
                   [2, 2, 255, 0]])
PREDICTIONS = np.array([[0, 1, 1, 1],
                        [2, 0, 2, 0]])
# Counted by hand (rows truth, columns prediction); the 255 pixel is not counted:
# truth 0 at (0,0)->0, (0,1)->1, (1,3)->0; truth 1 at (0,2)->1, (0,3)->1; truth 2 at (1,0)->2, (1,1)->0.
HAND_MATRIX = np.array([[2, 1, 0],
                        [0, 2, 0],
                        [1, 0, 1]])


def test_confusion_matrix_counts_match_hand_count():
    cm = ConfusionMatrix(3).update(LABELS, PREDICTIONS)
    np.testing.assert_array_equal(cm.matrix, HAND_MATRIX)
    # Streaming: a second update adds.
    cm.update(LABELS, PREDICTIONS)
    np.testing.assert_array_equal(cm.matrix, 2 * HAND_MATRIX)


def test_fcn_metrics_match_hand_computation():
    r = ConfusionMatrix(3).update(LABELS, PREDICTIONS).results(labels=["bg", "a", "b"])
    # pixel acc = (2+2+1)/7; class acc = 2/3, 2/2, 1/2
    assert r["pixel_accuracy"] == pytest.approx(5 / 7)
    assert r["mean_accuracy"] == pytest.approx((2 / 3 + 1 + 1 / 2) / 3)
    # IoU: bg 2/(3+3-2)=0.5, a 2/(2+3-2)=2/3, b 1/(2+1-1)=0.5
    ious = [0.5, 2 / 3, 0.5]
    assert r["mean_iou"] == pytest.approx(sum(ious) / 3)
    assert r["frequency_weighted_iou"] == pytest.approx((3 * 0.5 + 2 * 2 / 3 + 2 * 0.5) / 7)
    assert r["per_class_iou"] == pytest.approx({"bg": 0.5, "a": 2 / 3, "b": 0.5})
    assert r["num_pixels"] == 7
    assert "mean_iou" in format_results(r) and "bg" in format_results(r)


def test_absent_class_is_left_out_of_means():
    # Class 2 appears in neither labels nor predictions: no IoU, not averaged.
    r = ConfusionMatrix(3).update(np.array([0, 1, 1]), np.array([0, 1, 0])).results()
    assert r["per_class_iou"]["2"] is None
    assert r["mean_iou"] == pytest.approx((1 / 2 + 1 / 2) / 2)
    assert r["mean_accuracy"] == pytest.approx((1 + 1 / 2) / 2)


def test_empty_matrix_has_no_scores():
    r = ConfusionMatrix(2).update(np.array([255, 255]), np.array([0, 1])).results()
    assert r["pixel_accuracy"] is None and r["mean_iou"] is None and r["num_pixels"] == 0


def test_bad_values_are_named():
    cm = ConfusionMatrix(3)
    with pytest.raises(ValueError, match=r"labels: values must be in 0..2.*\[7\]"):
        cm.update(np.array([7]), np.array([0]))
    with pytest.raises(ValueError, match="predictions"):
        cm.update(np.array([0]), np.array([3]))
    with pytest.raises(ValueError, match="same shape"):
        cm.update(np.zeros((2, 2)), np.zeros((4,)))
    with pytest.raises(ValueError, match="ignore_label"):
        ConfusionMatrix(3, ignore_label=1)
    with pytest.raises(ValueError, match="class names"):
        scores_from_confusion(HAND_MATRIX, labels=["only", "two"])


def test_keras_metric_matches_numpy_matrix():
    metric = ConfusionMatrixMetric(3)
    logits = tf.one_hot(PREDICTIONS, 3) * 5.0  # argmax gives PREDICTIONS
    metric.update_state(LABELS, logits)
    np.testing.assert_array_equal(metric.confusion(), HAND_MATRIX)
    assert float(metric.result()) == pytest.approx((0.5 + 2 / 3 + 0.5) / 3, abs=1e-6)
    metric.update_state(LABELS, PREDICTIONS)  # class maps work too
    np.testing.assert_array_equal(metric.confusion(), 2 * HAND_MATRIX)
    # result() is scores_from_confusion's mean IoU, inside a tf.function too; 0 while nothing is counted.
    assert float(tf.function(metric.result)()) == pytest.approx(scores_from_confusion(2 * HAND_MATRIX)["mean_iou"])
    metric.reset_state()
    assert metric.confusion().sum() == 0 and float(metric.result()) == 0.0
    clone = ConfusionMatrixMetric.from_config(metric.get_config())
    assert clone.num_classes == 3 and clone.ignore_label == 255
