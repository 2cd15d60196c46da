"""Labelled data as tools export it (issue 12): VOC-style exports without split lists, CVAT colour masks,
COCO JSON (one file and the dataset-hub layout) and ADE20K. The masks each source yields, through its loader
and through the tf.data pipeline, equal the masks the fixtures drew, pixel for pixel."""
import json
import os

import numpy as np
import pytest
import yaml
from PIL import Image

from data_helpers import (CVAT_COLORS, make_ade20k, make_coco_file, make_coco_hub, make_coco_layout, make_cvat,
                          make_labelme_voc, write_mask)
from edge.artifact import Spec, default_colors
from kerasseg.data import DatasetError, build_pipeline, check_dataset, open_dataset, with_options
from kerasseg.data.__main__ import main as check_main
from kerasseg.data.colormap import clean_names
from kerasseg.data.tfds_sources import ADE20K_LABELS

SIZE = (32, 40)


def stem(path):
    return os.path.splitext(os.path.basename(path))[0]


def layout(kind, root):
    """(uri, labels, colours or None, {image path or stem: expected mask}) for a fixture of ``kind``."""
    if kind == "labelme":
        return f"voc:{root}", ("background", "cat", "dog"), None, make_labelme_voc(root, size=SIZE)
    if kind == "cvat":
        return f"voc:{root}", tuple(CVAT_COLORS), tuple(CVAT_COLORS.values()), make_cvat(root, size=SIZE)
    if kind == "coco":
        path, expected = make_coco_file(root, size=SIZE)
        return f"coco:{path}", ("background", "cat", "dog"), None, expected
    if kind == "coco_hub":
        return f"coco:{root}", ("background", "cat", "dog"), None, make_coco_hub(root, size=SIZE)
    if kind == "coco2017":
        return f"coco:{root}", ("background", "cat", "dog"), None, make_coco_layout(root, size=SIZE)
    return f"ade20k:{root}", ADE20K_LABELS, None, make_ade20k(root, size=SIZE)


def expected_mask(expected, image_path):
    return expected[image_path] if image_path in expected else expected[stem(image_path)]


LAYOUTS = ("labelme", "cvat", "coco", "coco_hub", "coco2017", "ade20k")


@pytest.mark.parametrize("kind", LAYOUTS)
def test_loader_masks_equal_the_drawn_masks(tmp_path, kind):
    uri, labels, colors, expected = layout(kind, str(tmp_path / "data"))
    source = open_dataset(uri)
    assert source.labels == labels
    assert source.colors == colors
    seen = 0
    for split in ("train", "val"):
        for example in source.iter_examples(split):
            np.testing.assert_array_equal(example.mask, expected_mask(expected, example.name), err_msg=example.name)
            seen += 1
    assert seen == source.num_examples("train") + source.num_examples("val") >= 8


@pytest.mark.parametrize("kind", LAYOUTS)
def test_pipeline_masks_equal_the_drawn_masks(tmp_path, kind):
    """The tf.data path (decoding threads), evaluated at the fixture's own size with nearest resizing."""
    uri, _, _, expected = layout(kind, str(tmp_path / "data"))
    source = open_dataset(uri)
    batches = build_pipeline(source, split="val", image_size=SIZE, batch_size=1, training=False)
    masks = [m[0] for _, m in batches.as_numpy_iterator()]
    wanted = [expected_mask(expected, image) for image, _ in source.pairs("val")]
    assert len(masks) == len(wanted) >= 1
    for got, want in zip(masks, wanted):
        np.testing.assert_array_equal(np.asarray(got).reshape(SIZE), want)


def test_export_without_split_lists_is_split_by_seed_and_val_fraction(tmp_path, capsys):
    root = str(tmp_path / "voc")
    make_labelme_voc(root, size=SIZE, stems=tuple(f"s{i}" for i in range(10)))
    a = open_dataset(f"voc:{root}", seed=1)
    note = capsys.readouterr().err.strip()
    assert "no ImageSets/Segmentation train/val lists" in note and "into 8 train and 2 val" in note
    assert len(note.splitlines()) == 1
    assert (a.num_examples("train"), a.num_examples("val")) == (8, 2)
    assert a.pairs("val") == open_dataset(f"voc:{root}", seed=1).pairs("val")
    assert {p for s in (1, 2, 3, 4) for p in open_dataset(f"voc:{root}", seed=s).pairs("val")} != set(a.pairs("val"))
    b = open_dataset(with_options(f"voc:{root}", val_fraction=0.5), seed=1)
    assert (b.num_examples("train"), b.num_examples("val")) == (5, 5)


def test_class_names_rules():
    labels, table = clean_names(["__ignore__", "_background_", "cat", "dog"], where="x")
    assert labels == ("background", "cat", "dog") and table[:3].tolist() == [0, 1, 2] and table[255] == 255
    labels, table = clean_names(["background", "__ignore__", "cat"], where="x")
    assert labels == ("background", "cat") and table[:3].tolist() == [0, 255, 1] and table[3] == -1


def test_rgb_masks_in_the_voc_palette_need_no_colour_map(tmp_path):
    root = str(tmp_path / "voc")
    expected = make_labelme_voc(root, size=SIZE)
    palette = np.array(default_colors(256), np.uint8)
    for name, mask in expected.items():  # re-save as RGB in the VOC colours
        Image.fromarray(palette[mask]).save(os.path.join(root, "SegmentationClass", name + ".png"))
    source = open_dataset(f"voc:{root}")
    for example in source.iter_examples("train"):
        np.testing.assert_array_equal(example.mask, expected[stem(example.name)])


def test_colormap_option_decodes_a_folder_dataset(tmp_path):
    root = tmp_path / "folder"
    colours = {"sky": (10, 20, 30), "road": (200, 100, 0), "car": (0, 0, 255)}
    colormap = tmp_path / "map.txt"
    colormap.write_text("".join(f"{k}:{r},{g},{b}\n" for k, (r, g, b) in colours.items()))
    rng = np.random.default_rng(0)
    expected = {}
    for i in range(4):
        mask = rng.integers(0, 3, SIZE).astype(np.uint8)
        (root / "images").mkdir(parents=True, exist_ok=True)
        (root / "masks").mkdir(exist_ok=True)
        Image.fromarray(rng.integers(0, 256, SIZE + (3,), dtype=np.uint8)).save(root / "images" / f"{i}.png")
        Image.fromarray(np.array(list(colours.values()), np.uint8)[mask]).save(root / "masks" / f"{i}.png")
        expected[f"{i}"] = mask
    source = open_dataset(with_options(f"folder:{root}", colormap=str(colormap)))
    assert source.labels == tuple(colours) and source.colors == tuple(colours.values())
    for example in source.iter_examples("train"):
        np.testing.assert_array_equal(example.mask, expected[stem(example.name)])


def test_coco_category_ids_map_to_contiguous_classes(tmp_path):
    make_coco_hub(str(tmp_path), size=SIZE)
    source = open_dataset(f"coco:{tmp_path}")
    assert source.label_ids == (0, 3, 7)  # the hub's unused parent category (id 0, "animals") is left out
    assert source.num_examples("train") == 6 and source.num_examples("val") == 2
    spec = Spec(labels=source.labels, colors=source.colors or (), input_size=SIZE, label_ids=source.label_ids)
    assert Spec.from_json(spec.to_json()) == spec and spec.to_dict()["label_ids"] == [0, 3, 7]
    old = Spec(labels=source.labels, input_size=SIZE).to_dict()
    assert "label_ids" not in old and Spec.from_dict(old).label_ids is None


@pytest.mark.parametrize("kind", LAYOUTS)
def test_check_prints_layout_sizes_and_histogram(tmp_path, kind, capsys):
    uri, labels, _, _ = layout(kind, str(tmp_path / "data"))
    assert check_main(["check", uri, "--json", str(tmp_path / "report.json")]) == 0
    out = capsys.readouterr().out
    source = open_dataset(uri)
    assert f"layout: {source.layout_name}" in out
    assert f"split sizes: train {source.num_examples('train')}, val {source.num_examples('val')}" in out
    assert f"  {1:>4}  {labels[1][:24]:<24}" in out
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["splits"]["train"]["num_examples"] == source.num_examples("train")


# --- Bad input: a named error, and nothing written.

def test_unknown_colour_names_file_colour_count_and_nearest(tmp_path, capsys):
    root = str(tmp_path / "cvat")
    make_cvat(root, size=SIZE)
    bad = os.path.join(root, "SegmentationClass", "frame_000003.png")
    rgb = np.array(Image.open(bad).convert("RGB"))
    rgb[5:8, 5:9] = (245, 55, 80)  # 12 pixels near cat's (250, 50, 83)
    Image.fromarray(rgb).save(bad)
    source = open_dataset(f"voc:{root}")
    with pytest.raises(DatasetError) as err:
        check_dataset(source)
    message = str(err.value)
    for part in (bad, "(245, 55, 80)", "12 pixels", "nearest known colour (250, 50, 83) (cat)"):
        assert part in message
    assert check_main(["check", f"voc:{root}"]) == 1
    out = capsys.readouterr().out
    assert "colours or ids that matched no class: 1 file(s)" in out and "(245, 55, 80)" in out


def train_main(tmp_path, uri, *extra):
    from training_helpers import load_script
    run_dir = tmp_path / "run"
    code = load_script("train.py").main(["--dataset", uri, "--output-dir", str(run_dir), "--epochs", "1",
                                         "--image-size", "32", "--batch-size", "2", "--quiet", *extra])
    return code, run_dir


def test_unknown_colour_stops_train_check_data_before_anything_is_written(tmp_path, capsys):
    root = str(tmp_path / "cvat")
    make_cvat(root, size=SIZE)
    bad = os.path.join(root, "SegmentationClass", "frame_000001.png")
    rgb = np.array(Image.open(bad).convert("RGB"))
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(bad)
    code, run_dir = train_main(tmp_path, f"voc:{root}", "--check-data")
    assert code == 2 and not run_dir.exists()
    assert bad in capsys.readouterr().err


def coco_with(tmp_path, change):
    path, _ = make_coco_file(str(tmp_path / "coco"), size=SIZE)
    with open(path) as f:
        data = json.load(f)
    change(data)
    with open(path, "w") as f:
        json.dump(data, f)
    return path


@pytest.mark.parametrize("case", ["category without a name", "missing image", "labelmap line", "split file"])
def test_bad_input_is_named_and_nothing_is_written(tmp_path, capsys, case):
    if case == "category without a name":
        path = coco_with(tmp_path, lambda d: d["categories"][1].pop("name"))
        uri, named = f"coco:{path}", [path, "'id': 7", "has no name"]
    elif case == "missing image":
        path = coco_with(tmp_path, lambda d: d["images"][2].update(file_name="gone.jpg"))
        uri, named = f"coco:{path}", [path, "gone.jpg", "not there"]
    elif case == "labelmap line":
        root = str(tmp_path / "cvat")
        make_cvat(root, size=SIZE)
        with open(os.path.join(root, "labelmap.txt"), "a") as f:
            f.write("tree:12,300::\n")
        uri, named = f"voc:{root}", [os.path.join(root, "labelmap.txt"), "line 5", "tree:12,300::"]
    else:
        root = str(tmp_path / "cvat")
        make_cvat(root, size=SIZE)
        listed = os.path.join(root, "ImageSets", "Segmentation", "default.txt")
        with open(listed, "a") as f:
            f.write("frame_999999\n")
        uri, named = f"voc:{root}", [listed, "frame_999999"]
    with pytest.raises(DatasetError) as err:
        open_dataset(uri)
    for part in named:
        assert part in str(err.value)
    before = sorted(os.listdir(tmp_path))
    code, run_dir = train_main(tmp_path, uri)
    assert code == 2 and not run_dir.exists() and sorted(os.listdir(tmp_path)) == before
    assert named[0] in capsys.readouterr().err


def test_mask_value_with_no_class_is_named(tmp_path):
    root = str(tmp_path / "ade")
    make_ade20k(root, size=SIZE)
    bad = os.path.join(root, "ADEChallengeData2016", "annotations", "training", "ADE_training_00000002.png")
    write_mask(bad, np.full(SIZE, 151, np.uint8), palette=False)
    with pytest.raises(DatasetError, match=r"ADE_training_00000002.png: values \[151\] name no class"):
        check_dataset(open_dataset(f"ade20k:{root}"))


def test_tfds_without_data_says_where_and_writes_nothing(tmp_path, capsys):
    data_dir = tmp_path / "empty"
    code, run_dir = train_main(tmp_path, f"tfds:oxford_iiit_pet?download=0&data_dir={data_dir}",
                               "--steps-per-epoch", "2")
    err = capsys.readouterr().err
    assert code == 2 and not run_dir.exists() and not data_dir.exists()
    assert f"the prepared data is not in {data_dir}" in err and "download=1" in err and "manual" in err


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["labelme", "cvat", "coco_hub", "coco2017", "ade20k"])
def test_each_layout_trains_through_train_py_and_its_spec_carries_names_and_colours(tmp_path, kind):
    """The README's one command per export (tests/test_readme_commands.py points here), a few steps each. Slow:
    train.py trains each layout two steps (the DeepLab head without ASPP and decoder traces fastest)."""
    from training_helpers import load_script
    uri, labels, colors, _ = layout(kind, str(tmp_path / "data"))
    extra = {"labelme": ["--val-fraction", "0.25"],
             "cvat": ["--colormap", str(tmp_path / "data" / "labelmap.txt")]}.get(kind, [])
    run_dir = tmp_path / "run"
    code = load_script("train.py").main(["--dataset", uri, *extra, "--image-size", "32", "--epochs", "1",
                                         "--steps-per-epoch", "2", "--batch-size", "2", "--no-aspp", "--no-decoder",
                                         "--output-dir", str(run_dir), "--quiet", "--check-data"])
    assert code == 0
    spec = json.loads((run_dir / "spec.json").read_text())
    assert tuple(spec["labels"]) == labels
    assert [tuple(c) for c in spec["colors"]] == list(colors or default_colors(len(labels)))
    ids = open_dataset(uri).label_ids  # COCO category ids travel in the spec; other layouts have none
    assert (ids is not None) == kind.startswith("coco") and spec.get("label_ids") == (list(ids) if ids else None)
    dataset = yaml.safe_load((run_dir / "config.yaml").read_text())["train"]["dataset"]
    assert dataset == with_options(uri, val_fraction=0.25 if kind == "labelme" else None,
                                   colormap=extra[1] if extra and kind == "cvat" else None)
