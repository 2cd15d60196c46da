import numpy as np
import pytest

from kerasseg.backend import keras
from kerasseg.models import build_model
from kerasseg.models import weights as weights_module


def _assert_same_weights_by_name(source, target, *, expect_at_least):
    matched = 0
    for layer in source.layers:
        if not layer.weights:
            continue
        mine = target.get_layer(layer.name)
        for a, b in zip(layer.get_weights(), mine.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)
        matched += 1
    assert matched >= expect_at_least


def _randomise_batch_norm_statistics(model, seed=0):
    """Fresh BN layers hold 0/1; make every saved weight distinctive so equality means something."""
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(0.5, 1.5, w.shape).astype(w.dtype) for w in model.get_weights()])


def test_mobilenetv2_backbone_loads_a_keras_applications_weights_file_by_name(tmp_path):
    app = keras.applications.MobileNetV2(weights=None, include_top=False, alpha=0.35, input_shape=(96, 96, 3))
    _randomise_batch_norm_statistics(app)
    path = str(tmp_path / "mobilenetv2_035.h5")
    app.save_weights(path)
    model = build_model(arch="deeplabv3plus", num_classes=3, alpha=0.35, backbone_weights=path)
    app_layers = keras.Model(app.input, app.get_layer("block_16_project_BN").output)  # all but Conv_1
    _assert_same_weights_by_name(app_layers, model, expect_at_least=100)
    assert model.get_layer("classifier").get_weights()[0].std() < 1.0  # the head kept its own initialisation


@pytest.mark.slow
def test_a_file_for_another_width_is_refused_with_the_file_named(tmp_path):
    app = keras.applications.MobileNetV2(weights=None, include_top=False, alpha=0.5, input_shape=(96, 96, 3))
    path = str(tmp_path / "mobilenetv2_050.h5")
    app.save_weights(path)
    with pytest.raises(ValueError, match="mobilenetv2_050.h5"):
        build_model(arch="deeplabv3plus", num_classes=3, alpha=0.35, backbone_weights=path)


def test_a_file_missing_backbone_layers_is_refused_with_the_layers_named(tmp_path):
    image = keras.Input((32, 32, 3))
    other = keras.Model(image, keras.layers.Conv2D(4, 3, name="Conv1")(image))
    path = str(tmp_path / "partial.h5")
    other.save_weights(path)
    with pytest.raises(ValueError, match=r"lacks .* e\.g\. \['bn_Conv1'"):
        build_model(arch="deeplabv3plus", num_classes=3, alpha=0.35, backbone_weights=path)


def test_missing_or_non_hdf5_files_are_refused(tmp_path):
    with pytest.raises(ValueError, match="no file at"):
        build_model(arch="deeplabv3plus", num_classes=3, alpha=0.35, backbone_weights=str(tmp_path / "nope.h5"))
    text = tmp_path / "weights.txt"
    text.write_text("not weights")
    with pytest.raises(ValueError, match="not an HDF5 weights file"):
        build_model(arch="deeplabv3plus", num_classes=3, alpha=0.35, backbone_weights=str(text))


def test_imagenet_download_failure_is_reported_clearly(monkeypatch):
    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network")
    monkeypatch.setattr(weights_module.keras.utils, "get_file", offline)
    with pytest.raises(RuntimeError, match=r"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_0.35_224_no_top\.h5"):
        build_model(arch="deeplabv3plus", num_classes=3, alpha=0.35, backbone_weights="imagenet")


def test_imagenet_is_refused_for_a_backbone_keras_applications_lacks():
    with pytest.raises(ValueError, match="xception65"):
        weights_module.imagenet_weights_url("xception65")


@pytest.mark.slow
def test_resnet50_backbone_loads_a_keras_applications_weights_file_by_name(tmp_path):
    app = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(64, 64, 3))
    _randomise_batch_norm_statistics(app)
    path = str(tmp_path / "resnet50.h5")
    app.save_weights(path)
    model = build_model(arch="deeplabv3plus", backbone="resnet50", num_classes=3, backbone_weights=path)
    _assert_same_weights_by_name(app, model, expect_at_least=100)


@pytest.mark.slow
def test_vgg16_backbone_of_fcn_loads_a_keras_applications_weights_file_by_name(tmp_path):
    app = keras.applications.VGG16(weights=None, include_top=False, input_shape=(64, 64, 3))
    path = str(tmp_path / "vgg16.h5")
    app.save_weights(path)
    model = build_model(arch="fcn32s", num_classes=3, backbone_weights=path)
    _assert_same_weights_by_name(app, model, expect_at_least=13)
