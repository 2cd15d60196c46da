"""Fixtures shared by several test files; plain helper functions stay in the ``*_helpers.py`` modules."""
import pytest
from edge_helpers import Models, NativeModels, make_models, make_native_models


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> Models:
    """The edge tests' colour-scoring .tflite models (see edge_helpers), converted once per session."""
    return make_models(str(tmp_path_factory.mktemp("edge_models")))


@pytest.fixture(scope="session")
def native_models(tmp_path_factory) -> NativeModels:
    """The native-head models (see edge_helpers), converted once per session."""
    return make_native_models(str(tmp_path_factory.mktemp("edge_native_models")))


# Google's released DeepLab files imported and converted once (tests/released_helpers.py, issue 20).
from released_helpers import imported_int8_export, imported_runs  # noqa: E402,F401
