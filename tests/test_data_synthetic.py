import cv2
import numpy as np
import pytest

from kerasseg.data import open_dataset
from kerasseg.data.synthetic import HUE_HALF_WIDTH, SHAPE_COLORS, SHAPE_HUES, SHAPE_LABELS, SyntheticSource


def small(seed=0, **kw):
    return SyntheticSource(num_train=kw.pop("num_train", 24), num_val=kw.pop("num_val", 8),
                           size=kw.pop("size", (48, 64)), seed=seed)


def test_default_uri_gives_the_shapes_dataset():
    source = open_dataset("synthetic")
    assert source.name == "synthetic"
    assert source.labels == SHAPE_LABELS and len(source.labels) == 5
    assert source.ignore_label == 255
    assert source.num_examples("train") == 1000 and source.num_examples("val") == 200


def test_uri_options_set_counts_size_and_seed():
    source = open_dataset("synthetic:30?val=7&size=40x56&seed=3")
    assert (source.num_examples("train"), source.num_examples("val")) == (30, 7)
    assert source.size == (40, 56) and source.seed == 3
    assert open_dataset("synthetic", seed=9).seed == 9


def test_examples_are_uint8_with_matching_sizes_and_valid_labels():
    source = small()
    examples = list(source.iter_examples("train"))
    assert len(examples) == 24
    for ex in examples:
        assert ex.image.dtype == np.uint8 and ex.image.shape == (48, 64, 3)
        assert ex.mask.dtype == np.uint8 and ex.mask.shape == (48, 64)
    labels = np.unique(np.stack([ex.mask for ex in examples]))
    assert set(labels.tolist()) == set(range(len(SHAPE_LABELS)))  # every class appears, nothing else


def test_same_seed_same_images_other_seed_other_images():
    a, b, c = small(seed=1), small(seed=1), small(seed=2)
    np.testing.assert_array_equal(a.arrays("train")[0], b.arrays("train")[0])
    np.testing.assert_array_equal(a.arrays("val")[1], b.arrays("val")[1])
    assert not np.array_equal(a.arrays("train")[0], c.arrays("train")[0])


def test_train_and_val_are_disjoint_and_val_is_fixed():
    a = small(num_train=24)
    b = small(num_train=5)  # the val split does not depend on how many train images there are
    np.testing.assert_array_equal(a.arrays("val")[0], b.arrays("val")[0])
    train = {im.tobytes() for im in a.arrays("train")[0]}
    assert not any(im.tobytes() in train for im in a.arrays("val")[0])


def test_each_class_keeps_to_its_hue_band_and_the_background_spans_all_hues():
    images, masks = small(num_train=60).arrays("train")
    hue = np.stack([cv2.cvtColor(im, cv2.COLOR_RGB2HSV)[..., 0] for im in images]).astype(int)
    for label in range(1, len(SHAPE_LABELS)):
        offset = (hue[masks == label] - SHAPE_HUES[label] + 90) % 180 - 90  # circular distance to the centre
        assert abs(np.median(offset)) <= HUE_HALF_WIDTH, SHAPE_LABELS[label]
        # the other classes' centres are far outside this class's band
        others = [abs((SHAPE_HUES[k] - SHAPE_HUES[label] + 90) % 180 - 90) for k in range(1, 5) if k != label]
        assert min(others) > 2 * HUE_HALF_WIDTH
    counts = np.bincount(hue[masks == 0] // 10, minlength=18)
    assert (counts > 0.01 * counts.sum()).sum() >= 15  # background colour alone cannot tell shapes apart


def test_mask_colours_differ_clearly_from_every_shape_hue():
    """Overlays must not look like the pictures: each class's mask colour (the spec's palette) lies well outside
    every shape's hue band, furthest from its own shape's, and is saturated and bright enough to show."""
    assert open_dataset("synthetic").colors == SHAPE_COLORS and SHAPE_COLORS[0] == (0, 0, 0)
    hsv = cv2.cvtColor(np.array([SHAPE_COLORS[1:]], np.uint8), cv2.COLOR_RGB2HSV)[0].astype(int)
    for label, (hue, saturation, value) in enumerate(hsv, 1):
        distance = [abs((hue - SHAPE_HUES[k] + 90) % 180 - 90) for k in range(1, len(SHAPE_LABELS))]
        assert min(distance) >= 2 * HUE_HALF_WIDTH, (SHAPE_LABELS[label], distance)  # 40 degrees, half-degree units
        assert distance[label - 1] >= max(max(distance) - 1, 60), (SHAPE_LABELS[label], distance)  # 120+ degrees
        assert saturation > 180 and value > 200
    assert len(set(SHAPE_COLORS)) == len(SHAPE_LABELS)


def test_examples_dataset_matches_iter_examples():
    source = small()
    first = next(iter(source.examples("val")))
    ex = next(source.iter_examples("val"))
    np.testing.assert_array_equal(first["image"].numpy(), ex.image)
    np.testing.assert_array_equal(first["mask"].numpy(), ex.mask)
    assert first["name"].numpy().decode() == ex.name


@pytest.mark.parametrize("uri, words", [
    ("nope:x", ["'nope'", "synthetic", "voc", "folder", "tfds"]),
    ("synthetic?colour=3", ["'colour'", "size", "train"]),
    ("synthetic:abc", ["'abc'"]),
    ("synthetic?size=big", ["'big'"]),
    ("voc", ["'voc:'", "directory"]),
])
def test_bad_uris_say_what_is_valid(uri, words):
    with pytest.raises(ValueError) as info:
        open_dataset(uri)
    for word in words:
        assert word in str(info.value)


def test_unknown_split_is_rejected():
    with pytest.raises(ValueError, match="'test'.*train.*val|train.*val.*'test'"):
        small().num_examples("test")
