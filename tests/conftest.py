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


@pytest.fixture(scope="session")
def mnv3_run(tmp_path_factory):
    """LR-ASPP MobileNetV3-Small trained through train.py and exported int8/QAT/Edge TPU once (see mnv3_helpers)."""
    from mnv3_helpers import train_and_export
    return train_and_export(tmp_path_factory.mktemp("mnv3_run"))
