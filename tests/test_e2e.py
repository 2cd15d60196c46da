"""The whole path as a user walks it, through the real command lines in subprocesses.

train.py (tiny DeepLabv3+ MobileNetV2 on the built-in synthetic data) -> convert.py --int8 --float32
-> python -m edge on a generated video, headless. The first two steps are the shared ``trained_run`` and
``artifacts`` fixtures (tests/conftest.py), which run them as subprocesses once per session; the tests here check
what they wrote before the next step reads it. Then FCN-8s through train.py and convert.py --float32 at 64x64.
"""
import json
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from shared_helpers import TRAINED_RUN_DATASET as DATASET, TRAINED_RUN_SIZE as SIZE, TRAINED_RUN_STEPS as STEPS

from kerasseg.export.export import DEFAULT_MAX_DROP

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN_FILES = ("config.yaml", "spec.json", "best.keras", "last.keras", "metrics.json", "checkpoints", "logs",
             "val_overlays.png", "confusion_matrix.png")
FRAMES = 12

pytestmark = pytest.mark.slow


def run_cli(*args, timeout=600):
    """Run ``python ARGS...`` at the repository root; fail with the output's tail on a non-zero exit."""
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    assert done.returncode == 0, (f"{' '.join(args)} exited {done.returncode}\n--- stdout\n{done.stdout[-3000:]}"
                                  f"\n--- stderr\n{done.stderr[-3000:]}")
    return done


def check_run_files(run_dir):
    for name in RUN_FILES:
        assert os.path.exists(run_dir / name), f"train.py wrote no {name} in {run_dir}"


def export_files(run_dir, mode, name):
    base = run_dir / "export" / f"{name}_{mode}"
    paths = {kind: base.with_name(base.name + suffix)
             for kind, suffix in (("tflite", ".tflite"), ("spec", ".spec.json"), ("parity", ".parity.json"))}
    for kind, path in paths.items():
        assert path.is_file() and path.stat().st_size > 0, f"convert.py wrote no {kind} file {path}"
    return paths


def write_video(path, frames):
    """A 96x80 MJPG clip: a red disc moving over grey, at a size other than the model's (SIZE x SIZE)."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (96, 80))
    assert writer.isOpened(), "OpenCV cannot write MJPG here"
    for i in range(frames):
        frame = np.full((80, 96, 3), 90, np.uint8)
        cv2.circle(frame, (20 + 4 * i, 40), 15, (30, 30, 220), thickness=-1)
        writer.write(frame)
    writer.release()


def test_train_writes_a_run_directory(trained_run):
    """Every file of the run, read back: the settings, the spec, a loadable model, the history and the pictures.
    Slow: train.py trains the shared run (tests/conftest.py), in about 20 s; other files read it too."""
    from kerasseg.data import open_dataset
    from kerasseg.training import load_run

    check_run_files(trained_run)
    run = load_run(trained_run)
    assert (run.dataset, run.seed, run.image_size) == (DATASET, 0, (SIZE, SIZE))
    assert run.model_kwargs["arch"] == "deeplabv3plus" and run.model_kwargs["alpha"] == 0.35
    labels = open_dataset(DATASET).labels
    assert list(run.spec.labels) == list(labels) and tuple(run.spec.input_size) == (SIZE, SIZE)
    assert json.loads((trained_run / "spec.json").read_text())["labels"] == list(labels)

    model = run.load_model()
    scores = model.predict(np.full((2, SIZE, SIZE, 3), 128, np.float32), verbose=0)
    assert scores.shape == (2, SIZE, SIZE, len(labels)) and np.isfinite(scores).all()

    metrics = json.loads((trained_run / "metrics.json").read_text())
    [epoch] = metrics["history"]  # one epoch of STEPS steps
    assert (epoch["epoch"], epoch["step"]) == (1, STEPS) and metrics["steps"] == metrics["total_steps"] == STEPS
    assert np.isfinite(epoch["train_loss"]) and epoch["seconds"] > 0
    assert metrics["best_epoch"] == 1 and metrics["best"] == metrics["last"] == epoch["val"]
    assert set(epoch["val"]["per_class_iou"]) == set(labels)
    assert 0.0 <= epoch["val"]["mean_iou"] <= 1.0 and 0.0 <= epoch["val"]["pixel_accuracy"] <= 1.0

    # The pictures: PNG files, the overlays one row of three panels per val image (8 here), the matrix square-ish.
    pictures = {}
    for name in ("val_overlays.png", "confusion_matrix.png"):
        assert (trained_run / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
        pictures[name] = cv2.imread(str(trained_run / name))
        assert pictures[name] is not None and pictures[name].std() > 0, f"{name} is blank"
    height, width = pictures["val_overlays.png"].shape[:2]
    assert width >= 400 and height >= 8 * 150, (height, width)
    height, width = pictures["confusion_matrix.png"].shape[:2]
    assert min(height, width) >= 200 and 0.5 <= height / width <= 2, (height, width)


def test_convert_writes_artifacts_within_their_parity_bounds(trained_run, artifacts):
    """Slow: convert.py --int8 and --float32 on the shared run (the ``artifacts`` fixture, once per session)."""
    name = "deeplabv3plus_mobilenetv2"
    artifacts("int8"), artifacts("float32")
    int8 = export_files(trained_run, "int8", name)
    float32 = export_files(trained_run, "float32", name)

    report = json.loads(int8["parity"].read_text())
    assert report["mode"] == "int8" and report["num_images"] == 8
    assert report["passed"] is True
    # Converted with a --max-drop no artifact exceeds (other tests read every head); the bound is convert.py's default.
    assert report["miou_drop_points"] <= DEFAULT_MAX_DROP
    report = json.loads(float32["parity"].read_text())
    assert report["passed"] is True
    assert report["pixel_agreement"] >= 0.999

    spec = json.loads(int8["spec"].read_text())
    assert spec["input_size"] == [SIZE, SIZE] and len(spec["labels"]) == 5
    # The default head ends at the decoder's stride 4; the int8 model is uint8 in and out.
    assert spec["output_kind"] == "logits" and spec["output_stride"] == 4
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=str(int8["tflite"]))
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8
    output = interpreter.get_output_details()[0]
    assert output["dtype"] == np.uint8 and list(output["shape"]) == [1, SIZE // 4, SIZE // 4, 5]
    assert float32["tflite"].stat().st_size > 2 * int8["tflite"].stat().st_size


def test_edge_loop_runs_the_int8_model_headless_for_n_frames(artifacts, tmp_path):
    """Slow: python -m edge in a subprocess on the shared run's int8 artifact (the ``artifacts`` fixture)."""
    video, stats, record = tmp_path / "clip.avi", tmp_path / "stats.jsonl", tmp_path / "out.mp4"
    write_video(video, FRAMES + 5)
    model = artifacts("int8").tflite
    run_cli("-m", "edge", "--model", str(model), "--source", str(video), "--no-display",
            "--max-frames", str(FRAMES), "--stats-json", str(stats), "--record", str(record))

    lines = [json.loads(line) for line in stats.read_text().splitlines() if line.strip()]
    final = lines[-1]
    assert final["final"] is True and final["reason"] == "max_frames"
    assert final["frames"] == FRAMES and final["fps"] > 0
    recorded = cv2.VideoCapture(str(record))
    count = 0
    while recorded.read()[0]:
        count += 1
    recorded.release()
    assert count == FRAMES


def test_fcn8s_trains_and_converts_to_float32(fcn8s_run):
    """FCN-8s (VGG16, ~134M parameters) at 64x64: one step of batch 1, then a float32 TFLite with its parity.
    Slow: the shared ``fcn8s_run`` fixture runs train.py and convert.py once per session (0.5 GB files)."""
    check_run_files(fcn8s_run)
    paths = export_files(fcn8s_run, "float32", "fcn8s_vgg16")
    report = json.loads(paths["parity"].read_text())
    assert report["passed"] is True and report["num_images"] == 2
    assert report["pixel_agreement"] >= 0.999
    # 134M float32 weights: the file alone shows the whole network was exported.
    assert paths["tflite"].stat().st_size > 500e6
