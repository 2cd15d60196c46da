"""A real third-party client: MediaPipe's ImageSegmenter runs the artifacts convert.py writes.

MediaPipe reads only the standard TFLite Model Metadata (input normalisation, label file, output
description), never our private spec, so this checks that the metadata we write says what the graph does.
Its category mask must agree with ``python -m edge``'s class map, and it must report our label names.
MediaPipe runs in its own virtual environment (see tests/mediapipe_client.py), made once under
~/.cache/kerasseg; the first run installs it from PyPI (a few minutes).
"""
import os
import subprocess

import cv2
import numpy as np
import pytest
from export_helpers import make_run_dir
from mediapipe_client import mediapipe_python

import convert
from edge.segmenter import Segmenter

pytestmark = pytest.mark.slow
SIZE = 96
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mediapipe_client.py")
MIN_AGREEMENT = 0.99


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """A briefly trained DeepLabv3+ run, exported float32 and int8 with every head MediaPipe can read."""
    run_dir = make_run_dir(str(tmp_path_factory.mktemp("runs") / "run"), size=SIZE, train_images=32,
                           val_images=8, fit_steps=40)
    status = convert.main(["--run", run_dir, "--float32", "--int8", "--head", "full", "native",
                           "--calibration-steps", "8", "--parity-images", "4", "--max-drop", "100"])
    assert status == 0
    folder = os.path.join(run_dir, "export")
    return run_dir, sorted(os.path.join(folder, f) for f in os.listdir(folder) if f.endswith(".tflite"))


@pytest.fixture(scope="module")
def images(exported):
    from kerasseg.data import build_pipeline, open_dataset
    run_dir, _ = exported
    source = open_dataset(f"synthetic:32?val=8&size={SIZE}", seed=0)
    batches = build_pipeline(source, split="val", image_size=(SIZE, SIZE), batch_size=8, training=False)
    return np.clip(np.rint(next(iter(batches))[0].numpy()), 0, 255).astype(np.uint8)


def run_mediapipe(model_path, images, tmp_path):
    images_path, out_path = tmp_path / "images.npz", tmp_path / "out.npz"
    np.savez(images_path, images=images)
    done = subprocess.run([mediapipe_python(), CLIENT, model_path, str(images_path), str(out_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"MediaPipe failed on {model_path}:\n{done.stderr[-3000:]}"
    result = np.load(out_path)
    return result["category_masks"], [str(x) for x in result["labels"]]


def test_every_artifact_runs_in_mediapipe_with_our_labels_and_class_maps(exported, images, tmp_path):
    _, models = exported
    assert len(models) == 4, models  # float32 and int8, each with the full and the native head
    for model_path in models:
        segmenter = Segmenter.from_file(model_path)
        masks, labels = run_mediapipe(model_path, images, tmp_path)
        assert labels == list(segmenter.labels), f"{model_path}: MediaPipe read labels {labels}"
        ours = np.stack([segmenter.segment(cv2.cvtColor(image, cv2.COLOR_RGB2BGR)) for image in images])
        assert masks.shape == ours.shape
        assert masks.max() < len(labels), f"{model_path}: MediaPipe returned class ids up to {masks.max()}"
        agreement = float(np.mean(masks == ours))
        assert agreement >= MIN_AGREEMENT, f"{os.path.basename(model_path)}: MediaPipe agrees on {agreement:.4f}"
