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
- ``fcn8s_run``: an FCN-8s run directory trained one step by ``train.py`` and converted by ``convert.py --float32``
  (shared_helpers.FCN8S_RUN_FLAGS), with ``export/fcn8s_vgg16_float32.tflite``. Read-only.
- ``tiny_models`` / ``native_models``: the edge tests' colour-scoring ``.tflite`` models (see edge_helpers).
- ``mediapipe_python``: the Python of MediaPipe's own venv, made once per machine under ~/.cache/kerasseg; when a
  selected test asks for it, its making starts in the background as the session starts. It skips the test, with
  the reason, when MediaPipe cannot be installed.

The suite runs in WORKERS processes (pytest-xdist, set by ``pytest_cmdline_main`` below; ``-n 0`` or
``-p no:xdist`` runs it in one), each with its own session fixtures. Each test file runs whole in one worker, so
its module fixtures are made once; the files that use the shared runs above (SHARED_FIXTURES) run together in one
worker, first, so that each shared run is made once and neither worker waits for the other
(``pytest_collection_modifyitems`` and ``pytest_xdist_make_scheduler`` below). Should they land in two workers
anyway (another ``--dist``), the first worker that needs a shared run makes it under a file lock in the folder the
workers share (shared_helpers.made_once), and the other waits and reuses it.

A new expensive session fixture that more than one file uses does the same: it makes its folder with
``made_once_in`` (as ``trained_run`` does), and its name joins SHARED_FIXTURES. Without that, each worker would make
its own.
"""
import os
import time

import mediapipe_client
import pytest
from edge_helpers import Models, NativeModels, make_models, make_native_models
from released_helpers import (cityscapes_run, imported_int8_export,  # noqa: F401 (fixtures: Google's files imported)
                              imported_runs)
from shared_helpers import Artifacts, copy_run, made_once_in, shared_root, train_and_convert_fcn8s, train_shared_run

SESSION_STARTED = time.time()
WORKERS = 2  # CI's cores
SHARED_FIXTURES = {"trained_run", "artifacts", "run_copy", "fcn8s_run"}
SHARED_GROUP = "shared_runs"  # the xdist_group of the files that use them


@pytest.hookimpl(tryfirst=True)  # before pytest-xdist's own, which reads the options set here
def pytest_cmdline_main(config):
    """Run in WORKERS processes unless the command line chooses: ``-n N`` (``-n 0``: in this process), ``--pdb``,
    ``-p no:xdist`` or no pytest-xdist installed. The tests are sent out by ``--dist loadgroup``, as below."""
    if not config.pluginmanager.hasplugin("xdist"):
        return
    if hasattr(config, "workerinput"):  # xdist reads --dist from the command line; see pytest_configure_node
        config.option.loadgroup = config.workerinput.get("loadgroup", config.option.loadgroup)
        return
    if config.option.numprocesses is None and not config.getoption("usepdb"):
        config.option.numprocesses = WORKERS
    if config.option.numprocesses and config.option.dist == "no":
        config.option.dist = "loadgroup"


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist, called for each worker before it starts
def pytest_configure_node(node):
    """Tell the worker that tests go out by xdist group, so that it names each test's group to the scheduler."""
    node.workerinput["loadgroup"] = node.config.getvalue("dist") == "loadgroup"


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """The files that use SHARED_FIXTURES join one xdist group and run first (see the module doc)."""
    shared = {item.path for item in items if SHARED_FIXTURES & set(getattr(item, "fixturenames", ()))}
    for item in items:
        if item.path in shared and not item.get_closest_marker("xdist_group"):
            item.add_marker(pytest.mark.xdist_group(SHARED_GROUP))
    items.sort(key=lambda item: item.path not in shared)  # stable: the order within each part stays


@pytest.hookimpl(optionalhook=True)  # a hook of pytest-xdist
def pytest_xdist_make_scheduler(config, log):
    """``--dist loadgroup``, with each test outside an xdist group grouped with its file (not sent on its own), and
    the groups sent to the workers in collection order (the shared-run group first)."""
    if config.getvalue("dist") != "loadgroup":
        return None
    from xdist.scheduler import LoadGroupScheduling

    config.option.loadscopereorder = False  # xdist would send the groups with the most tests first

    class FileOrGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid):
            scope = super()._split_scope(nodeid)
            return nodeid.split("::", 1)[0] if scope == nodeid else scope

    return FileOrGroupScheduling(config, log)


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
    return made_once_in(tmp_path_factory, "trained_run", train_shared_run)


@pytest.fixture(scope="session")
def artifacts(trained_run, tmp_path_factory) -> Artifacts:
    """``artifacts(mode, head=None)``: the shared run's convert.py artifact, converted once per mode and head."""
    return Artifacts(trained_run, shared_root(tmp_path_factory))


@pytest.fixture(scope="session")
def fcn8s_run(tmp_path_factory):
    """The shared FCN-8s run directory (a pathlib.Path), trained and converted to float32 once per session."""
    return made_once_in(tmp_path_factory, "fcn8s_run", train_and_convert_fcn8s)


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


@pytest.fixture(scope="session")
def mnv3_run(tmp_path_factory):
    """LR-ASPP MobileNetV3-Small trained through train.py and exported int8/QAT/Edge TPU once (see mnv3_helpers)."""
    from mnv3_helpers import train_and_export
    return train_and_export(tmp_path_factory.mktemp("mnv3_run"))
