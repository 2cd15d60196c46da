import json
import os

import numpy as np
import pytest

from data_helpers import make_folder, make_voc, write_mask
from kerasseg.backend import tf
from kerasseg.data import DatasetCheckError, DatasetError, build_pipeline, check_dataset, class_weights, open_dataset
from kerasseg.data.__main__ import main
from kerasseg.data.synthetic import SyntheticSource


def folder_source(tmp_path, **kw):
    pairs = make_folder(tmp_path, **kw)
    (tmp_path / "labels.txt").write_text("a\nb\nc\n")
    (tmp_path / "train.txt").write_text("s0\ns1\ns2\n")
    (tmp_path / "val.txt").write_text("s3\ns4\n")
    return pairs


# ---- the report ------------------------------------------------------------------------------------------------

def test_report_histogram_matches_the_masks(tmp_path):
    pairs = folder_source(tmp_path)
    report = check_dataset(open_dataset(f"folder:{tmp_path}"))
    train = np.stack([pairs[s][1] for s in ("s0", "s1", "s2")])
    stats = report.splits["train"]
    assert stats.num_examples == 3
    np.testing.assert_array_equal(stats.pixels[:3], [(train == c).sum() for c in range(3)])
    assert stats.label_values == [0, 1, 2, 255]
    assert report.ignore_share("train") == pytest.approx((train == 255).mean())
    assert stats.min_size == stats.max_size == (24, 32)
    text = report.format()
    assert "label values found: 0 1 2 255" in text and "size mismatches: 0" in text
    assert f"{int((train == 1).sum())}" in text
    assert report.to_dict()["splits"]["val"]["num_examples"] == 2


def test_median_frequency_class_weights_by_hand(tmp_path):
    # Two 4x4 masks: class 0 fills one, classes 0/1/2 split the other; 255 counts nowhere.
    (tmp_path / "labels.txt").write_text("a\nb\nc\nd\n")
    masks = [np.zeros((4, 4), np.uint8), np.array([[0] * 4, [1] * 4, [1] * 4, [2, 2, 255, 255]], np.uint8)]
    for i, mask in enumerate(masks):
        make_folder(tmp_path / "tmp", stems=[f"s{i}"], size=(4, 4))
        os.makedirs(tmp_path / "images", exist_ok=True)
        os.replace(tmp_path / "tmp" / "images" / f"s{i}.png", tmp_path / "images" / f"s{i}.png")
        write_mask(str(tmp_path / "masks" / f"s{i}.png"), mask)
    (tmp_path / "train.txt").write_text("s0\ns1\n")
    (tmp_path / "val.txt").write_text("s0\n")
    weights = class_weights(open_dataset(f"folder:{tmp_path}"))
    freq = np.array([20 / 30, 8 / 14, 2 / 14])  # pixels / labelled pixels of images holding the class
    expected = np.median(freq) / freq
    np.testing.assert_allclose(weights, [*expected, 1.0], rtol=1e-6)  # class d never appears: weight 1


def test_class_weights_raise_rare_classes_on_synthetic():
    weights = class_weights(SyntheticSource(num_train=20, num_val=2, size=(32, 32)))
    assert weights.shape == (5,) and weights.dtype == np.float32
    assert weights[0] < 0.5 < weights[1:].min()  # background is common, shapes are rare


# ---- bad input: every problem names its file -------------------------------------------------------------------

def test_corrupt_image_is_named_by_the_check_and_the_pipeline(tmp_path):
    folder_source(tmp_path)
    bad = tmp_path / "images" / "s1.png"
    bad.write_bytes(b"not an image at all")
    source = open_dataset(f"folder:{tmp_path}")
    with pytest.raises(DatasetCheckError) as info:
        check_dataset(source)
    assert str(bad) in str(info.value) and "cannot decode" in str(info.value)
    assert info.value.kind == "decode"
    assert info.value.report.splits["train"].num_examples == 2  # it read past the bad file
    with pytest.raises(tf.errors.OpError, match="s1.png"):
        for _ in build_pipeline(source, split="train", image_size=(16, 16), batch_size=1, training=False):
            pass


def test_skip_bad_files_drops_and_counts(tmp_path):
    folder_source(tmp_path)
    (tmp_path / "images" / "s1.png").write_bytes(b"\x89PNG broken")
    source = open_dataset(f"folder:{tmp_path}", skip_bad_files=True)
    batches = list(build_pipeline(source, split="train", image_size=(16, 16), batch_size=1, training=False))
    assert len(batches) == 2
    assert len(source.bad_files) == 1 and "s1.png" in source.bad_files[0]


def test_mask_of_the_wrong_size(tmp_path):
    folder_source(tmp_path)
    write_mask(str(tmp_path / "masks" / "s3.png"), np.zeros((10, 12), np.uint8))
    with pytest.raises(DatasetCheckError) as info:
        check_dataset(open_dataset(f"folder:{tmp_path}"))
    message = str(info.value)
    assert "s3.png" in message and "12x10" in message and "32x24" in message
    assert len(info.value.report.splits["val"].problems_of("size")) == 1
    assert "size mismatches: 1" in info.value.report.format()


def test_labels_out_of_range_name_the_file_and_values(tmp_path):
    folder_source(tmp_path)
    mask = np.zeros((24, 32), np.uint8)
    mask[3, 3], mask[4, 4] = 7, 200
    write_mask(str(tmp_path / "masks" / "s0.png"), mask)
    with pytest.raises(DatasetCheckError, match=r"s0\.png.*\[7, 200\]") as info:
        check_dataset(open_dataset(f"folder:{tmp_path}"), splits=("train",))
    assert info.value.kind == "labels"


def test_missing_files_are_named_when_opening(tmp_path):
    make_voc(tmp_path)
    os.remove(tmp_path / "SegmentationClass" / "b.png")
    with pytest.raises(DatasetError, match=r"mask .*b\.png: file not found"):
        open_dataset(f"voc:{tmp_path}")
    source = open_dataset(f"voc:{tmp_path}", skip_bad_files=True)
    assert source.num_examples("train") == 2 and "b.png" in source.bad_files[0]
    os.remove(tmp_path / "JPEGImages" / "c.jpg")
    with pytest.raises(DatasetError, match=r"b\.png: file not found.*and 1 more missing"):
        open_dataset(f"voc:{tmp_path}")
    make_voc(tmp_path)
    with open(tmp_path / "ImageSets" / "Segmentation" / "val.txt", "a") as f:
        f.write("zz\n")
    with pytest.raises(DatasetError, match=r"image .*zz\.jpg: file not found"):
        open_dataset(f"voc:{tmp_path}")


def test_empty_split_is_an_error(tmp_path):
    make_voc(tmp_path)
    (tmp_path / "ImageSets" / "Segmentation" / "val.txt").write_text("")
    with pytest.raises(DatasetError, match="split 'val' is empty"):
        open_dataset(f"voc:{tmp_path}")


def test_image_without_a_mask(tmp_path):
    folder_source(tmp_path)
    os.remove(tmp_path / "masks" / "s2.png")
    with pytest.raises(DatasetError, match=r"s2\.png: file not found"):
        open_dataset(f"folder:{tmp_path}")


# ---- the command -----------------------------------------------------------------------------------------------

def test_check_command_prints_the_report(tmp_path, capsys):
    folder_source(tmp_path)
    assert main(["check", f"folder:{tmp_path}", "--json", str(tmp_path / "report.json")]) == 0
    out = capsys.readouterr().out
    assert "split train: 3 examples" in out and "split val: 2 examples" in out
    assert json.loads((tmp_path / "report.json").read_text())["labels"] == ["a", "b", "c"]


def test_check_command_fails_naming_the_file(tmp_path, capsys):
    folder_source(tmp_path)
    (tmp_path / "images" / "s4.png").write_bytes(b"")
    assert main(["check", f"folder:{tmp_path}"]) == 1
    captured = capsys.readouterr()
    assert "s4.png" in captured.err and "problems: 1" in captured.out


def test_check_command_unknown_dataset(capsys):
    assert main(["check", "imagenet:/x"]) == 2
    assert "valid schemes" in capsys.readouterr().err
