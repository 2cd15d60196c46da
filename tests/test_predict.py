"""predict.py through main(): every image is checked before anything is written."""
import os

import cv2
import numpy as np
import pytest
from export_helpers import make_tiny_run
from training_helpers import load_script

from edge.artifact import Spec

predict = load_script("predict.py")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("predict") / "run")


@pytest.fixture
def photos(tmp_path):
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(folder / "a.png"), rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    cv2.imwrite(str(folder / "c.jpg"), rng.integers(0, 255, (30, 30, 3), dtype=np.uint8))
    (folder / "notes.txt").write_text("not an image, not listed")
    return folder


def test_an_unreadable_image_stops_it_before_anything_is_written(tiny_run, photos, tmp_path, capsys):
    (photos / "b.jpg").write_bytes(b"\xff\xd8\xff this is not a JPEG")
    (photos / "d.png").write_bytes(b"")
    out = tmp_path / "predictions"
    assert predict.main(["--run", tiny_run, "--input", str(photos), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert "2 of 4 images cannot be read" in err and "nothing was written" in err, err
    assert str(photos / "b.jpg") in err and str(photos / "d.png") in err
    assert str(photos / "a.png") not in err
    assert not out.exists()


def test_readable_images_give_three_files_each_in_the_spec_colours(tiny_run, photos, tmp_path, capsys):
    out = tmp_path / "predictions"
    assert predict.main(["--run", tiny_run, "--input", str(photos), "--output", str(out)]) == 0
    assert "Wrote 6 files for 2 images" in capsys.readouterr().out
    assert sorted(os.listdir(out)) == sorted(f"{stem}_{kind}.png" for stem in "ac"
                                             for kind in ("mask", "overlay", "labels"))
    labels = cv2.imread(str(out / "a_labels.png"), cv2.IMREAD_UNCHANGED)
    assert labels.shape == (40, 50) and labels.dtype == np.uint8 and labels.max() < 5
    spec = Spec.load(tiny_run)
    mask = cv2.imread(str(out / "a_mask.png"))
    expected = np.asarray(spec.colors, np.uint8)[labels][..., ::-1]  # BGR on disk
    np.testing.assert_array_equal(mask, expected)
    overlay = cv2.imread(str(out / "c_overlay.png"))  # too small to hold its legend: the legend sits beside it
    assert overlay.shape[0] >= 30 and overlay.shape[1] > 30
    # The background class is left untinted: there the overlay is the photo itself; elsewhere, blended.
    image, drawn = cv2.imread(str(photos / "a.png")), cv2.imread(str(out / "a_overlay.png"))[:40, :50]
    background = labels == 0
    assert background.any() and (~background).any(), np.unique(labels)
    np.testing.assert_array_equal(drawn[background], image[background])
    assert (drawn[~background] != image[~background]).any(axis=-1).mean() > 0.5
    # The model file with its spec gives the same class map as its run directory.
    other = tmp_path / "from_model"
    argv = ["--model", os.path.join(tiny_run, "best.keras"), "--spec", os.path.join(tiny_run, "spec.json"),
            "--input", str(photos), "--output", str(other)]
    assert predict.main(argv) == 0
    np.testing.assert_array_equal(cv2.imread(str(other / "a_labels.png"), cv2.IMREAD_UNCHANGED), labels)


def test_bad_flags_exit_2(tiny_run, photos, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["--run", tiny_run, "--spec", "x.json", "--input", str(photos), "--output", str(tmp_path)])
    assert exit_info.value.code == 2 and "--spec goes with --model" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        predict.main(["--run", tiny_run, "--alpha", "1.5", "--input", str(photos), "--output", str(tmp_path)])
    assert exit_info.value.code == 2 and "--alpha" in capsys.readouterr().err
    assert predict.main(["--run", tiny_run, "--input", str(tmp_path / "none"), "--output", str(tmp_path / "o")]) == 2
    assert "--input: no such folder" in capsys.readouterr().err and not (tmp_path / "o").exists()
    assert predict.main(["--run", tiny_run, "--input", str(tmp_path / "no.png"), "--output", str(tmp_path / "o")]) == 2
    assert "predict.py: error: --input: no such image file" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert predict.main(["--run", tiny_run, "--input", str(photos), "--output", str(tmp_path / "file")]) == 2
    assert "--output" in capsys.readouterr().err and not (tmp_path / "o").exists()


def test_one_image_file_as_input(tiny_run, photos, tmp_path, capsys):
    assert predict.main(["--run", tiny_run, "--input", str(photos / "a.png"), "--output", str(tmp_path / "o")]) == 0
    assert sorted(os.listdir(tmp_path / "o")) == ["a_labels.png", "a_mask.png", "a_overlay.png"]
    assert predict.main(["--run", tiny_run, "--input", str(photos / "notes.txt"), "--output", str(tmp_path / "p")]) == 2
    assert "not an image OpenCV can read" in capsys.readouterr().err and not (tmp_path / "p").exists()


@pytest.mark.parametrize("content,what", [(b"my notes\n", "a text file"), (b"", "empty"),
                                          (b"PK\x03\x04 not an archive", "a damaged zip archive"),
                                          (b"\x1c\x00\x00\x00TFL3\x00\x00", "a TFLite model")])
def test_a_file_that_is_not_a_keras_model_says_what_it_is(tiny_run, photos, tmp_path, capsys, content, what):
    model = tmp_path / "notes.keras"
    model.write_bytes(content)
    argv = ["--model", str(model), "--spec", os.path.join(tiny_run, "spec.json"), "--input", str(photos),
            "--output", str(tmp_path / "o")]
    assert predict.main(argv) == 2
    err = capsys.readouterr().err
    assert f"{model} is not a Keras model file" in err and f"it is {what}" in err and "h5py" not in err, err
    assert len(err.splitlines()) == 1 and not (tmp_path / "o").exists()


def test_without_a_run_it_uses_the_newest_and_says_which(tiny_run, photos, tmp_path, capsys, monkeypatch):
    import shutil

    for name, age in (("20260101-000000-old", 100), ("20260102-000000-new", 0)):
        shutil.copytree(tiny_run, tmp_path / "runs" / name)
        stamp = os.path.getmtime(tiny_run) - age
        os.utime(tmp_path / "runs" / name / "config.yaml", (stamp, stamp))
    monkeypatch.chdir(tmp_path)
    assert predict.main(["--input", str(photos), "--output", "predictions"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"Using the newest run under runs/: {os.path.join('runs', '20260102-000000-new')}"
    assert sorted(os.listdir("predictions"))[0] == "a_labels.png"
