import os

import numpy as np
import pytest
from PIL import Image

from data_helpers import make_folder, make_voc, write_mask
from kerasseg.data import build_pipeline, open_dataset
from kerasseg.data.base import DatasetError
from kerasseg.data.files import VOC_LABELS


# ---- VOC -------------------------------------------------------------------------------------------------------

def test_voc_reads_palette_indices_with_the_standard_names(tmp_path):
    masks = make_voc(tmp_path)
    source = open_dataset(f"voc:{tmp_path}")
    assert source.labels == VOC_LABELS and len(source.labels) == 21
    assert source.colors is None and source.ignore_label == 255
    assert source.num_examples("train") == 3 and source.num_examples("val") == 2
    examples = list(source.iter_examples("train"))
    assert [os.path.basename(ex.name) for ex in examples] == ["a.jpg", "b.jpg", "c.jpg"]
    for ex in examples:
        assert ex.image.dtype == np.uint8 and ex.image.shape == (24, 32, 3)
        assert ex.mask.dtype == np.uint8 and ex.mask.shape == (24, 32)
        stem = os.path.splitext(os.path.basename(ex.name))[0]
        np.testing.assert_array_equal(ex.mask, masks[stem])  # indices, not palette colours


def test_voc_accepts_the_devkit_folder_and_a_labels_file(tmp_path):
    make_voc(tmp_path / "VOC2012", num_classes=3)
    (tmp_path / "VOC2012" / "labels.txt").write_text("background\nroad\n# a comment\ncar\n")
    source = open_dataset(f"voc:{tmp_path}")
    assert source.labels == ("background", "road", "car")
    assert len(list(source.iter_examples("val"))) == 2


def test_voc_uses_segmentation_class_aug_when_present(tmp_path):
    make_voc(tmp_path, train=("a",), val=("d",))
    aug = tmp_path / "SegmentationClassAug"
    extra = np.full((24, 32), 7, np.uint8)
    write_mask(str(aug / "x.png"), extra, palette=False)  # SBD masks are plain index PNGs
    write_mask(str(aug / "d.png"), extra, palette=False)  # a val image: stays out of train
    (tmp_path / "JPEGImages" / "x.jpg").write_bytes((tmp_path / "JPEGImages" / "a.jpg").read_bytes())
    source = open_dataset(f"voc:{tmp_path}")
    assert [os.path.basename(p[0]) for p in source.pairs("train")] == ["x.jpg"]
    assert source.pairs("val")[0][1] == str(aug / "d.png")
    (tmp_path / "ImageSets" / "Segmentation" / "train_aug.txt").write_text("a\nx\n")
    source = open_dataset(f"voc:{tmp_path}")
    assert [os.path.basename(p[0]) for p in source.pairs("train")] == ["a.jpg", "x.jpg"]
    assert source.pairs("train")[0][1].endswith(os.path.join("SegmentationClass", "a.png"))


def test_voc_pipeline_yields_batches(tmp_path):
    make_voc(tmp_path)
    source = open_dataset(f"voc:{tmp_path}")
    x, y = next(iter(build_pipeline(source, split="train", image_size=(16, 16), batch_size=2, training=True)))
    assert x.shape == (2, 16, 16, 3) and y.shape == (2, 16, 16)
    values = set(np.unique(y.numpy()).tolist())
    assert values <= set(range(21)) | {255}


def test_voc_missing_folder_lists_the_layout(tmp_path):
    with pytest.raises(DatasetError, match="JPEGImages"):
        open_dataset(f"voc:{tmp_path / 'nowhere'}")


# ---- folder ----------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("palette", [False, True])
def test_folder_pairs_by_stem_with_index_or_palette_masks(tmp_path, palette):
    pairs = make_folder(tmp_path, palette=palette)
    source = open_dataset(f"folder:{tmp_path}", seed=0)
    assert source.num_examples("train") + source.num_examples("val") == 5
    assert source.num_examples("val") == 1  # val_fraction 0.2 of 5
    for split in ("train", "val"):
        for ex in source.iter_examples(split):
            image, mask = pairs[os.path.splitext(os.path.basename(ex.name))[0]]
            np.testing.assert_array_equal(ex.image, image)  # PNG images: lossless
            np.testing.assert_array_equal(ex.mask, mask)
    assert source.labels == ("class_0", "class_1", "class_2")  # no labels.txt: from the largest id
    assert (source.colors == ((0, 0, 0), (128, 0, 0), (0, 128, 0))) is palette


def test_folder_split_is_made_by_seed(tmp_path):
    make_folder(tmp_path, stems=[f"s{i}" for i in range(10)])
    def split(seed):
        source = open_dataset(f"folder:{tmp_path}?val_fraction=0.3", seed=seed)
        return [sorted(os.path.basename(p[0]) for p in source.pairs(s)) for s in ("train", "val")]
    train, val = split(1)
    assert len(val) == 3 and not set(train) & set(val) and len(train) + len(val) == 10
    assert split(1) == [train, val]
    assert any(split(seed)[1] != val for seed in range(2, 6))


def test_folder_split_files_and_labels_file(tmp_path):
    make_folder(tmp_path)
    (tmp_path / "train.txt").write_text("s0\ns1\n")
    (tmp_path / "val.txt").write_text("s4\n")
    (tmp_path / "labels.txt").write_text("sky\nland\nsea\n")
    source = open_dataset(f"folder:{tmp_path}")
    assert [os.path.basename(p[0]) for p in source.pairs("train")] == ["s0.png", "s1.png"]
    assert [os.path.basename(p[0]) for p in source.pairs("val")] == ["s4.png"]
    assert source.labels == ("sky", "land", "sea")


def test_folder_rejects_unknown_options_and_bad_fraction(tmp_path):
    make_folder(tmp_path)
    with pytest.raises(ValueError, match="val_fraction"):
        open_dataset(f"folder:{tmp_path}?val_fraction=1.5")
    with pytest.raises(ValueError, match="'colour'"):
        open_dataset(f"folder:{tmp_path}?colour=1")


def test_folder_rejects_colour_masks(tmp_path):
    make_folder(tmp_path)
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (24, 32, 3), dtype=np.uint8)).save(
        tmp_path / "masks" / "s0.png")
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    source = open_dataset(f"folder:{tmp_path}")
    split = "train" if any("s0" in p[0] for p in source.pairs("train")) else "val"
    with pytest.raises(DatasetError, match=r"s0\.png.*colour"):
        list(source.iter_examples(split))


def test_folder_missing_masks_folder(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DatasetError, match="masks"):
        open_dataset(f"folder:{tmp_path}")
