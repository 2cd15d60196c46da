"""val_overlays.png: solid class colours for truth and prediction, an error panel, a legend with no gap above."""
import cv2
import numpy as np
import pytest

from edge.artifact import default_colors
from kerasseg.training import report

LABELS = ("background", "circle", "square", "triangle", "cross")
COLORS = default_colors(len(LABELS))


def example(seed):
    """An image with a square of class 1 and one of class 3, an ignored border, and a prediction that misses
    part of the second square and calls it class 2."""
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 255, (64, 80, 3), dtype=np.uint8)
    truth = np.zeros((64, 80), np.uint8)
    truth[8:30, 8:30] = 1
    truth[34:60, 40:76] = 3
    truth[0, :] = 255
    prediction = truth.copy()
    prediction[0, :] = 0
    prediction[34:60, 40:56] = 2
    return image, truth, prediction


def test_mask_panels_hold_exactly_the_class_colours():
    _, truth, prediction = example(0)
    for mask in (truth, prediction, prediction.astype(np.int64)):
        rgb = report.mask_rgb(mask, COLORS, ignore_label=255)
        for value in np.unique(mask):
            expected = report.IGNORE_RGB if value == 255 else COLORS[value]
            assert (rgb[mask == value] == expected).all(), value


def test_error_panel_marks_wrong_and_ignored_pixels():
    image, truth, prediction = example(0)
    panel, share = report.error_rgb(image, truth, prediction, ignore_label=255)
    wrong = (truth != prediction) & (truth != 255)
    assert (panel[wrong] == report.ERROR_RGB).all() and (panel[truth == 255] == report.IGNORE_RGB).all()
    right = ~wrong & (truth != 255)
    assert not (panel[right] == report.ERROR_RGB).all(axis=-1).any()
    assert share == pytest.approx(26 * 16 / (64 * 80 - 80))


def test_the_picture_shows_each_class_colour_and_no_gap_above_the_legend(tmp_path):
    examples = [example(seed) for seed in range(3)]
    images, truths, predictions = (np.stack(parts) for parts in zip(*examples))
    path = report.save_overlays(tmp_path / "val_overlays.png", images=images, truths=truths,
                                predictions=predictions, labels=LABELS, colors=COLORS, ignore_label=255)
    picture = cv2.imread(path)[..., ::-1]
    pixels = {tuple(p): n for p, n in zip(*np.unique(picture.reshape(-1, 3), axis=0, return_counts=True))}
    # Each class in a mask, the ignored border and the errors cover many pixels in their exact colour.
    for color in (COLORS[1], COLORS[2], COLORS[3], report.IGNORE_RGB, report.ERROR_RGB):
        assert pixels.get(tuple(color), 0) > 300, color
    assert pixels.get(tuple(COLORS[4]), 0) < 20  # "cross" is in no mask (at most a few antialiased pixels)
    white = (picture >= 250).all(axis=(1, 2))
    longest = max(len(run) for run in "".join("w" if w else "." for w in white).split("."))
    assert longest < 40, f"{longest} blank rows in a row"
