"""TFDS sources, offline: ``tfds.testing.mock_data`` replaces the stored records.

The default random mock draws image and mask shapes independently and mask
values from 0..255, so most tests pass ``as_dataset_fn`` with examples shaped
like each dataset's real ones; the real builders, splits and ``as_dataset``
path still run. Cityscapes goes through the same mock (its manual-dir
requirement is checked before TFDS is asked to prepare anything).
"""
import numpy as np
import pytest
import tensorflow_datasets as tfds

from kerasseg.backend import tf
from kerasseg.data import DatasetError, build_pipeline, open_dataset
from kerasseg.data.tfds_sources import (ADE20K_INSTANCE_CATEGORIES, ADE20K_LABELS, ADE20K_TABLE, CITYSCAPES_LABELS,
                                        CITYSCAPES_TABLE, PET_TABLE, map_mask)

SIZES = [(20, 30), (26, 18), (16, 16)]


def fake_records(builder, split, decoders=None, read_config=None, shuffle_files=False):
    """Examples with each dataset's real keys and value ranges, at small sizes."""
    name = builder.name
    def generate():
        rng = np.random.default_rng(len(split))
        for i, (h, w) in enumerate(SIZES):
            image = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
            ex = {"tfds_id": f"{name}-{split}__{i}"}
            if name == "oxford_iiit_pet":
                ex.update(image=image, segmentation_mask=rng.integers(1, 4, (h, w, 1)).astype(np.uint8))
            elif name == "scene_parse150":
                annotation = np.zeros((h, w, 3), np.uint8)
                annotation[..., 0] = rng.integers(0, 101, (h, w))  # instance category, 0 = unlabelled
                annotation[..., 1] = rng.integers(0, 5, (h, w))  # instance id
                ex.update(image=image, annotation=annotation)
            else:
                ex.update(image_left=image, segmentation_label=rng.integers(0, 34, (h, w, 1)).astype(np.uint8))
            yield ex
    first = next(generate())
    signature = {k: tf.TensorSpec([None] * np.ndim(v) if np.ndim(v) else [], tf.as_dtype(np.asarray(v).dtype)
                                  if not isinstance(v, str) else tf.string) for k, v in first.items()}
    return tf.data.Dataset.from_generator(generate, output_signature=signature)


@pytest.fixture
def mocked():
    with tfds.testing.mock_data(num_examples=len(SIZES), as_dataset_fn=fake_records):
        yield


def test_pet_trimap_becomes_background_pet_and_ignore(mocked):
    source = open_dataset("tfds:oxford_iiit_pet")
    assert source.labels == ("background", "pet") and source.name == "tfds:oxford_iiit_pet"
    examples = list(source.iter_examples("val"))
    assert [ex.image.shape[:2] for ex in examples] == SIZES
    for ex in examples:
        assert ex.image.dtype == np.uint8 and ex.mask.dtype == np.uint8 and ex.mask.shape == ex.image.shape[:2]
        assert "oxford_iiit_pet-test" in ex.name  # val reads TFDS's test split
    assert set(np.unique(np.concatenate([ex.mask.ravel() for ex in examples])).tolist()) == {0, 1, 255}


def test_ade20k_instance_categories_map_to_the_150_classes(mocked):
    source = open_dataset("tfds:scene_parse150")
    assert len(source.labels) == 150 and source.labels[0] == "wall" and source.labels[-1] == "flag"
    values = set()
    for ex in source.iter_examples("train"):
        assert ex.mask.shape == ex.image.shape[:2]
        values |= set(np.unique(ex.mask).tolist())
    thing_ids = {ADE20K_LABELS.index(n) for n in ADE20K_INSTANCE_CATEGORIES}
    assert values <= thing_ids | {255} and 255 in values and len(values) > 50


def test_cityscapes_needs_a_manual_dir_and_maps_to_train_ids(mocked):
    with pytest.raises(DatasetError, match="manual_dir"):
        open_dataset("tfds:cityscapes")
    source = open_dataset("tfds:cityscapes?manual_dir=/tmp/cityscapes-zips")
    assert source.labels == CITYSCAPES_LABELS and len(source.colors) == 19
    values = set()
    for ex in source.iter_examples("val"):
        assert "cityscapes-validation" in ex.name
        values |= set(np.unique(ex.mask).tolist())
    assert values == set(range(19)) | {255}


def test_tfds_source_feeds_the_training_pipeline(mocked):
    source = open_dataset("tfds:oxford_iiit_pet")
    x, y = next(iter(build_pipeline(source, split="train", image_size=(24, 24), batch_size=2, training=True)))
    assert x.shape == (2, 24, 24, 3) and y.dtype == tf.int32
    assert set(np.unique(y.numpy()).tolist()) <= {0, 1, 255}


def test_raw_values_outside_the_dataset_name_the_example():
    # The default random mock fills the trimap with 0..254: not a pet trimap.
    with tfds.testing.mock_data(num_examples=2):
        source = open_dataset("tfds:oxford_iiit_pet")
        with pytest.raises(DatasetError, match="oxford_iiit_pet-test.*__0"):
            list(source.iter_examples("val"))


def test_unknown_tfds_name_lists_the_valid_ones():
    with pytest.raises(ValueError, match="'voc2012'.*cityscapes.*oxford_iiit_pet.*scene_parse150"):
        open_dataset("tfds:voc2012")


@pytest.mark.parametrize("table, raw, expected", [
    (PET_TABLE, [1, 2, 3], [1, 0, 255]),
    (CITYSCAPES_TABLE, [0, 6, 7, 8, 11, 24, 26, 31, 33, 34, 255], [255, 255, 0, 1, 2, 11, 13, 16, 18, 255, 255]),
    (ADE20K_TABLE, [0, 1, 4, 9, 100], [255, 7, 12, 20, 149]),  # bed, person, car, flag
])
def test_mapping_tables(table, raw, expected):
    mask = map_mask(tf.constant([raw], tf.uint8), table, dataset="test", example_id="x")
    assert mask.numpy()[0].tolist() == expected


def test_cityscapes_table_keeps_exactly_19_ids():
    assert sorted(v for v in CITYSCAPES_TABLE.tolist() if v != 255) == list(range(19))
