import numpy as np
import pytest

from kerasseg.backend import tf
from kerasseg.data import build_pipeline
from kerasseg.data.pipeline import augment, resize_mask
from kerasseg.data.synthetic import SyntheticSource

MEAN = (120.0, 110.0, 100.0)


@pytest.fixture(scope="module")
def source():
    return SyntheticSource(num_train=16, num_val=6, size=(48, 64), seed=0)


def first_batches(ds, count):
    return [(x.numpy(), y.numpy()) for x, y in ds.take(count)]


def test_training_batches_have_the_promised_types(source):
    ds = build_pipeline(source, split="train", image_size=(40, 56), batch_size=4, training=True)
    assert ds.element_spec[0].shape.as_list() == [4, 40, 56, 3]
    assert ds.element_spec[1].shape.as_list() == [4, 40, 56]
    (x, y), = first_batches(ds, 1)
    assert x.dtype == np.float32 and y.dtype == np.int32
    assert x.min() >= 0 and x.max() <= 255


def test_training_stream_repeats_past_one_epoch(source):
    ds = build_pipeline(source, split="train", image_size=(32, 32), batch_size=4, training=True)
    assert len(first_batches(ds, 10)) == 10  # 16 images = 4 batches per epoch


def test_augmentation_never_invents_label_values(source):
    ds = build_pipeline(source, split="train", image_size=(40, 56), batch_size=8, training=True, seed=5,
                        scale_range=(0.5, 2.0))
    found = set()
    for _, y in first_batches(ds, 8):
        found |= set(np.unique(y).tolist())
    assert found <= set(range(source.num_classes)) | {255}
    assert 255 in found  # scales below 1 pad the mask with ignore


def test_scale_range_one_keeps_every_pixel_and_label(source):
    images, masks = source.arrays("train")
    originals = {m.tobytes() for m in masks} | {m[:, ::-1].tobytes() for m in masks}
    ds = build_pipeline(source, split="train", image_size=source.size, batch_size=8, training=True, seed=3,
                        scale_range=(1.0, 1.0))
    for _, y in first_batches(ds, 4):
        assert 255 not in y  # no scale below 1, so nothing is padded
        assert all(m.astype(np.uint8).tobytes() in originals for m in y)  # the whole mask, maybe flipped


def test_scale_range_defaults_to_the_sources(source):
    narrow = SyntheticSource(num_train=16, num_val=6, size=(48, 64), seed=0)
    narrow.scale_range = (1.0, 1.0)
    ds = build_pipeline(narrow, split="train", image_size=(48, 64), batch_size=8, training=True, seed=3)
    assert all(255 not in y for _, y in first_batches(ds, 4))
    wide = build_pipeline(narrow, split="train", image_size=(48, 64), batch_size=8, training=True, seed=3,
                          scale_range=(0.5, 0.6))
    assert all(255 in y for _, y in first_batches(wide, 2))  # every image shrunk, so every mask is padded


@pytest.mark.parametrize("value", [(2.0, 0.5), (0.0, 1.0), (1.0,), "wide"])
def test_bad_scale_range_is_named(source, value):
    with pytest.raises(ValueError, match="scale_range"):
        build_pipeline(source, split="train", image_size=(32, 32), batch_size=2, training=True, scale_range=value)


def test_same_seed_same_batches_other_seed_others(source):
    def run(seed):
        return first_batches(build_pipeline(source, split="train", image_size=(32, 40), batch_size=4,
                                            training=True, seed=seed), 3)
    a, b, c = run(1), run(1), run(2)
    for (xa, ya), (xb, yb) in zip(a, b):
        np.testing.assert_array_equal(xa, xb)
        np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(a[0][0], c[0][0])


def test_eval_is_a_deterministic_stretch_with_nearest_masks(source):
    ds = build_pipeline(source, split="val", image_size=(24, 32), batch_size=4, training=False)
    batches = first_batches(ds, 10)
    assert [len(y) for _, y in batches] == [4, 2]  # no repeat, remainder kept
    images, masks = source.arrays("val")
    expected = resize_mask(tf.constant(masks[0], tf.int32), (24, 32)).numpy()
    np.testing.assert_array_equal(batches[0][1][0], expected)
    # Halving 48x64 with nearest picks every other pixel: labels are copied, not blended.
    assert set(np.unique(batches[0][1]).tolist()) <= set(np.unique(masks[:4]).tolist())
    again = first_batches(ds, 10)
    np.testing.assert_array_equal(batches[1][0], again[1][0])


def test_pad_uses_mean_pixel_and_ignore_label():
    image = tf.fill([8, 8, 3], tf.constant(200, tf.uint8))
    mask = tf.ones([8, 8], tf.uint8)
    # Scale <= 2 keeps an 8x8 image at most 16x16, so a 32x32 crop is mostly padding.
    out_image, out_mask = augment(image, mask, size=(32, 32), mean_pixel=tf.constant(MEAN),
                                  seed=tf.constant([3, 4], tf.int64))
    out_image, out_mask = out_image.numpy(), out_mask.numpy()
    padded = out_mask == 255
    assert padded.mean() > 0.7
    np.testing.assert_allclose(out_image[padded], np.broadcast_to(MEAN, out_image[padded].shape), atol=1e-3)
    assert set(np.unique(out_mask).tolist()) == {1, 255}


def test_image_and_mask_stay_aligned_through_scale_crop_and_flip():
    # Left half label 1 and bright, right half label 2 and dark; jitter keeps grey order.
    image = np.zeros((40, 40, 3), np.uint8)
    image[:, :20] = 210
    image[:, 20:] = 40
    mask = np.full((40, 40), 2, np.uint8)
    mask[:, :20] = 1
    flips_seen = set()
    for i in range(12):
        out_image, out_mask = augment(tf.constant(image), tf.constant(mask), size=(32, 32),
                                      mean_pixel=tf.constant(MEAN), seed=tf.constant([0, i], tf.int64))
        grey, labels = out_image.numpy().mean(axis=-1), out_mask.numpy()
        if (labels == 1).any() and (labels == 2).any():
            assert grey[labels == 1].mean() > grey[labels == 2].mean() + 50
            columns = np.where((labels == 1).any(axis=0))[0]
            flips_seen.add(bool(columns.min() > np.where((labels == 2).any(axis=0))[0].min()))
    assert flips_seen == {True, False}  # both orientations happened


@pytest.mark.parametrize("kwargs, word", [
    (dict(split="test"), "split"),
    (dict(image_size=(0, 10)), "image_size"),
    (dict(image_size=64), "image_size"),
    (dict(batch_size=0), "batch_size"),
    (dict(mean_pixel=(1, 2)), "mean_pixel"),
])
def test_bad_arguments_name_the_parameter(source, kwargs, word):
    args = dict(split="train", image_size=(32, 32), batch_size=2, training=True)
    args.update(kwargs)
    with pytest.raises(ValueError, match=word):
        build_pipeline(source, **args)
