"""convert.py on a run directory: the artifacts it writes, and clear errors on bad input."""
import json
import os

import cv2
import numpy as np
import pytest
from shared_helpers import TRAINED_RUN_SIZE as SIZE

import convert
from kerasseg.export import edgetpu, tflite
from kerasseg.export.parity import device_segmenter
from edge.artifact import Spec, load_spec



@pytest.fixture
def run_dir(run_copy, tmp_path):
    """A copy of the shared trained run (tests/conftest.py) at runs/run1, to export into."""
    return str(run_copy(tmp_path / "runs" / "run1"))


@pytest.fixture
def light_run(tmp_path):
    """config.yaml and spec.json of a run, without its model: enough for the errors raised before loading it."""
    import yaml
    folder = tmp_path / "light"
    folder.mkdir()
    Spec(labels=("background", "thing"), input_size=(SIZE, SIZE)).save(folder / "spec.json")
    config = {"train": {"dataset": "synthetic", "image_size": [SIZE, SIZE]},
              "model": {"arch": "deeplabv3plus", "num_classes": 2}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return str(folder)


def _export_files(run_dir):
    folder = os.path.join(run_dir, "export")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


@pytest.mark.slow
def test_edgetpu_from_the_newest_run(run_dir, capsys):
    """Slow: one Edge TPU conversion (rebuild, 2 fine-tuning steps, int8) of a copy of the shared trained run."""
    runs = os.path.dirname(run_dir)
    status = convert.main(["--runs", runs, "--edgetpu", "--calibration-steps", "4", "--edgetpu-finetune-steps", "2"])
    assert status == 0
    out = capsys.readouterr().out
    assert "parity [edgetpu, head native, after 2 fine-tuning steps]" in out
    assert f"Using the newest run under {runs}/: {run_dir}" in out
    # A summary, not the op table (that is in the report file): ops mapped of the total, what stays on the CPU.
    report = json.load(open(os.path.join(run_dir, "export", "deeplabv3plus_mobilenetv2_edgetpu.report.json")))
    assert f"Edge TPU: {report['mapped_ops']} of {report['num_ops']} ops would map" in out
    assert "edgetpu_compiler is not on PATH" in out and "on the CPU: nothing" in out and "CONV_2D" not in out
    assert "deeplabv3plus_mobilenetv2_edgetpu.report.json" in out and "bytes, " in out
    assert "failure_hint" not in json.load(open(os.path.join(run_dir, "export",
                                                             "deeplabv3plus_mobilenetv2_edgetpu.parity.json")))
    stem = os.path.join(run_dir, "export", "deeplabv3plus_mobilenetv2_")
    spec = load_spec(stem + "edgetpu.tflite")[0]
    # The Edge TPU's default head ends at the decoder's stride 4; fine-tuned after the rebuild, it keeps the
    # rebuild's legacy (Edge-TPU-friendly) alignment.
    assert spec == Spec.load(stem + "edgetpu.spec.json") == Spec.load(run_dir).replace(
        input_size=(SIZE, SIZE), output_stride=4, output_alignment="legacy")
    assert spec.output_kind == "logits"
    content = open(stem + "edgetpu.tflite", "rb").read()
    assert tflite.float_ops(content) == []
    with device_segmenter(content) as segmenter:
        assert segmenter.input_dtype == np.uint8 and segmenter.input_size == (SIZE, SIZE)
        output = segmenter.interpreter.get_output_details()[0]
        assert output["dtype"] == np.uint8 and list(output["shape"]) == [1, SIZE // 4, SIZE // 4, 5]
    parity = json.load(open(stem + "edgetpu.parity.json"))
    assert parity["num_images"] == 8 and parity["passed"] and len(parity["device_iou"]) == 5
    report = json.load(open(stem + "edgetpu.report.json"))
    assert report["compiler"]["available"] is False
    # Goal: with the Edge-TPU-friendly rebuild every op of DeepLabv3+ MobileNetV2 is on Coral's list.
    assert report["first_unsupported"] is None and report["mapped_mac_share"] == 1.0
    assert edgetpu.analyze(content).to_dict()["mapped_op_share"] == 1.0
    # A second run refuses to overwrite, and writes nothing.
    before = {name: os.path.getmtime(os.path.join(run_dir, "export", name)) for name in _export_files(run_dir)}
    assert convert.main(["--run", run_dir, "--edgetpu"]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert before == {name: os.path.getmtime(os.path.join(run_dir, "export", name)) for name in _export_files(run_dir)}


def _fails(argv, capsys, *, match):
    assert convert.main(argv) == 2
    err = capsys.readouterr().err
    assert match in err, err
    return err


def test_missing_run_directory(tmp_path, capsys):
    _fails(["--run", str(tmp_path / "nope"), "--int8"], capsys, match="nope")


def test_run_without_spec(light_run, capsys):
    os.remove(os.path.join(light_run, "spec.json"))
    _fails(["--run", light_run, "--float32"], capsys, match="spec.json")
    assert _export_files(light_run) == []


def test_missing_and_corrupt_model(light_run, capsys):
    spec = os.path.join(light_run, "spec.json")
    _fails(["--model", os.path.join(light_run, "none.keras"), "--spec", spec, "--float32"], capsys, match="none.keras")
    _fails(["--run", light_run, "--float32"], capsys, match="best.keras")
    corrupt = os.path.join(light_run, "best.keras")
    with open(corrupt, "wb") as f:
        f.write(b"PK\x03\x04 this is not a keras archive")
    _fails(["--model", corrupt, "--float32"], capsys, match="is not a Keras model file (a .keras zip archive")
    _fails(["--run", light_run, "--float32"], capsys, match="best.keras")
    assert _export_files(light_run) == []


def test_zero_calibration_or_qat_steps(light_run, capsys):
    _fails(["--run", light_run, "--int8", "--calibration-steps", "0"], capsys, match="calibration_steps")
    _fails(["--run", light_run, "--qat", "--qat-steps", "0"], capsys, match="qat_steps")
    assert _export_files(light_run) == []


@pytest.mark.slow
def test_dataset_with_other_classes(run_dir, tmp_path, capsys):
    """Slow: opens the trained model (a copy of the shared run) before it reads the dataset."""
    root = tmp_path / "voc"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (root / sub).mkdir(parents=True)
    for split in ("train", "val"):
        (root / "ImageSets/Segmentation" / f"{split}.txt").write_text("a\n")
    cv2.imwrite(str(root / "JPEGImages/a.jpg"), np.zeros((SIZE, SIZE, 3), np.uint8))
    cv2.imwrite(str(root / "SegmentationClass/a.png"), np.zeros((SIZE, SIZE), np.uint8))
    _fails(["--run", run_dir, "--float32", "--dataset", f"voc:{root}", "--overwrite"], capsys,
           match="differ from the model's")


@pytest.mark.slow
def test_qat_without_training_data(run_dir, tmp_path, capsys):
    """Slow: opens the trained model (a copy of the shared run) before it finds no dataset."""
    model = tmp_path / "alone.keras"
    os.symlink(os.path.join(run_dir, "best.keras"), model)
    _fails(["--model", str(model), "--spec", os.path.join(run_dir, "spec.json"), "--qat"], capsys,
           match="--dataset")
    assert not (tmp_path / "export").exists()


@pytest.mark.slow
def test_input_size_the_architecture_cannot_take(run_dir, capsys):
    """Slow: opens the trained model (a copy of the shared run) and rebuilds it at the size asked for."""
    _fails(["--run", run_dir, "--float32", "--input-size", "8", "8", "--overwrite"], capsys, match="input_size")


@pytest.mark.slow
def test_a_failed_artifact_is_named_so_with_its_cause_and_fix(run_dir, capsys):
    """Slow: two Edge TPU conversions of a copy of the shared trained run, one failing and one passing."""
    run = run_dir
    stem = "deeplabv3plus_mobilenetv2_edgetpu"
    argv = ["--run", run, "--edgetpu", "--calibration-steps", "2", "--edgetpu-finetune-steps", "0"]
    # A --max-drop below any real drop makes the mode fail.
    assert convert.main(argv + ["--max-drop", "-50"]) == 1
    err = capsys.readouterr().err
    assert "[edgetpu/native]" in err and "Cause:" in err and "half-pixel" in err and "Fix:" in err
    assert f"{stem}.FAILED.tflite" in err
    failed = {f"{stem}.FAILED.{ext}" for ext in ("tflite", "parity.json", "spec.json", "report.json")}
    assert set(_export_files(run)) == failed  # nothing under the good name, and nothing compiled
    folder = os.path.join(run, "export")
    parity = json.load(open(os.path.join(folder, f"{stem}.FAILED.parity.json")))
    assert parity["passed"] is False and parity["finetune_steps"] == 0 and parity["failure_hint"].startswith("Cause:")
    # Not fine-tuned: the device upsamples the native map with the alignment the weights were trained with.
    assert Spec.load(os.path.join(folder, f"{stem}.FAILED.spec.json")).output_alignment == "half_pixel"
    # Without --overwrite a new export refuses the FAILED files too; with it, a passing export replaces them.
    assert convert.main(argv) == 2
    assert "FAILED" in capsys.readouterr().err
    assert convert.main(argv + ["--overwrite"]) == 0
    assert set(_export_files(run)) == {name.replace(".FAILED", "") for name in failed}
