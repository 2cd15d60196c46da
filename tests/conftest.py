"""Fixtures shared by several test files; plain helper functions stay in the ``*_helpers.py`` modules.

Training and converting are the expensive steps of this suite. A test that needs a trained run or a converted
model uses these session fixtures instead of making its own, so that each is made once per test session, and
only when a selected test asks for it (``pytest tests/test_x.py::test_y`` pays for what that test uses):

- ``trained_run``: a DeepLabv3+ MobileNetV2 run directory trained by ``train.py`` (shared_helpers.TRAINED_RUN_FLAGS:
  96x96, 40 steps, ``synthetic?train=32&val=8``). Read it; to export into a run or to damage one, copy it with
  ``run_copy``.
- ``artifacts``: ``artifacts(mode, head=None)`` -> ``Artifact(mode, head, tflite, spec, parity)``, what
  ``python convert.py --run TRAINED_RUN --MODE --head ...`` wrote, converted once per mode and head
  (shared_helpers.ARTIFACT_HEADS: int8 with every head, float32 with native and full).
- ``run_copy``: ``run_copy(folder)`` -> a copy of ``trained_run`` (without its exports) at ``folder``.
- ``tiny_models`` / ``native_models``: the edge tests' colour-scoring ``.tflite`` models (see edge_helpers).
- ``mediapipe_python``: the Python of MediaPipe's own venv, made once per machine under ~/.cache/kerasseg; when a
  selected test asks for it, its making starts in the background as the session starts. It skips the test, with
  the reason, when MediaPipe cannot be installed.

The suite runs in two processes (pytest-xdist, ``-n 2`` in pyproject.toml), each with its own session fixtures.
``trained_run`` and ``artifacts`` are made once for both: the first worker that needs one makes it under a file
lock in the folder the workers share (shared_helpers.made_once), and the other waits and reuses it.
"""
import os
import time

import mediapipe_client
import pytest
from edge_helpers import Models, NativeModels, make_models, make_native_models
from shared_helpers import Artifacts, copy_run, made_once, shared_root, train_shared_run

SESSION_STARTED = time.time()


def pytest_collection_finish(session):
    """Start making MediaPipe's venv in the background when a selected test needs it (one worker starts it)."""
    if os.environ.get("PYTEST_XDIST_WORKER", "gw0") != "gw0":
        return
    if any("mediapipe_python" in getattr(item, "fixturenames", ()) for item in session.items):
        mediapipe_client.install_in_background()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Models:
    """The edge tests' colour-scoring .tflite models (see edge_helpers), converted once per session."""
    return make_models(str(tmp_path_factory.mktemp("edge_models")))


@pytest.fixture(scope="session")
def native_models(tmp_path_factory) -> NativeModels:
    """The native-head models (see edge_helpers), converted once per session."""
    return make_native_models(str(tmp_path_factory.mktemp("edge_native_models")))


@pytest.fixture(scope="session")
def trained_run(tmp_path_factory):
    """The shared DeepLabv3+ MobileNetV2 run directory (a pathlib.Path), trained once per session by train.py."""
    root = shared_root(tmp_path_factory)
    run_dir = root / "trained_run"
    made_once(root, "trained_run", lambda: train_shared_run(run_dir))
    return run_dir


@pytest.fixture(scope="session")
def artifacts(trained_run, tmp_path_factory) -> Artifacts:
    """``artifacts(mode, head=None)``: the shared run's convert.py artifact, converted once per mode and head."""
    return Artifacts(trained_run, shared_root(tmp_path_factory))


@pytest.fixture
def run_copy(trained_run):
    """``run_copy(folder)``: a copy of the shared run at ``folder`` (without its exports), yours to write into."""
    return lambda folder: copy_run(trained_run, folder)


@pytest.fixture(scope="session")
def mediapipe_python():
    """The Python of MediaPipe's venv (see tests/mediapipe_client.py); skips when MediaPipe cannot be installed."""
    try:
        return mediapipe_client.mediapipe_python(failed_since=SESSION_STARTED)
    except mediapipe_client.MediaPipeUnavailable as err:
        pytest.skip(f"MediaPipe {mediapipe_client.MEDIAPIPE_VERSION} cannot be installed here: {err}")
