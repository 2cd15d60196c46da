"""A real third-party client: MediaPipe's ImageSegmenter runs the artifacts convert.py writes.

MediaPipe reads only the standard TFLite Model Metadata (input normalisation, label file, output
description), never our private spec, so this checks that the metadata we write says what the graph does.
Its category mask must agree with ``python -m edge``'s class map, and it must report our label names.
MediaPipe runs in its own virtual environment (see tests/mediapipe_client.py), made once per machine under
~/.cache/kerasseg: the first session that selects this test installs it from PyPI in the background while other
tests run (conftest.py), and the test skips, with the reason, when it cannot be installed.
"""
import os
import subprocess

import cv2
import numpy as np
import pytest
from shared_helpers import TRAINED_RUN_DATASET, TRAINED_RUN_SIZE as SIZE

from edge.segmenter import Segmenter

pytestmark = pytest.mark.slow
CLIENT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "mediapipe_client.py")
MIN_AGREEMENT = 0.99


@pytest.fixture(scope="module")
def exported(artifacts):
    """The shared trained run's float32 and int8 artifacts with every head MediaPipe can read (conftest.py)."""
    return [str(artifacts(mode, head).tflite) for mode in ("float32", "int8") for head in ("full", "native")]


@pytest.fixture(scope="module")
def images():
    from kerasseg.data import build_pipeline, open_dataset
    source = open_dataset(TRAINED_RUN_DATASET, seed=0)
    batches = build_pipeline(source, split="val", image_size=(SIZE, SIZE), batch_size=8, training=False)
    return np.clip(np.rint(next(iter(batches))[0].numpy()), 0, 255).astype(np.uint8)


def run_mediapipe(python, model_path, images, tmp_path):
    images_path, out_path = tmp_path / "images.npz", tmp_path / "out.npz"
    np.savez(images_path, images=images)
    done = subprocess.run([python, CLIENT, model_path, str(images_path), str(out_path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"MediaPipe failed on {model_path}:\n{done.stderr[-3000:]}"
    result = np.load(out_path)
    return result["category_masks"], [str(x) for x in result["labels"]]


def test_every_artifact_runs_in_mediapipe_with_our_labels_and_class_maps(mediapipe_python, exported, images,
                                                                          tmp_path):
    """Slow: MediaPipe's venv (made once per machine) and the shared run's artifacts (converted once per session)."""
    models = exported
    assert len(set(models)) == 4 and all(os.path.isfile(m) for m in models), models  # float32, int8; full, native
    for model_path in models:
        segmenter = Segmenter.from_file(model_path)
        masks, labels = run_mediapipe(mediapipe_python, model_path, images, tmp_path)
        assert labels == list(segmenter.labels), f"{model_path}: MediaPipe read labels {labels}"
        ours = np.stack([segmenter.segment(cv2.cvtColor(image, cv2.COLOR_RGB2BGR)) for image in images])
        assert masks.shape == ours.shape
        assert masks.max() < len(labels), f"{model_path}: MediaPipe returned class ids up to {masks.max()}"
        agreement = float(np.mean(masks == ours))
        assert agreement >= MIN_AGREEMENT, f"{os.path.basename(model_path)}: MediaPipe agrees on {agreement:.4f}"
