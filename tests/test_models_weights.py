import numpy as np
import pytest

from kerasseg.backend import keras
from kerasseg.models import build_model
from kerasseg.models import weights as weights_module
from models_helpers import random_images


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


def test_mobilenetv2_backbone_loads_a_keras_applications_file_and_computes_what_keras_applications_does(tmp_path):
    app = keras.applications.MobileNetV2(weights=None, include_top=False, alpha=0.35, input_shape=(64, 64, 3))
    _randomise_batch_norm_statistics(app)
    path = str(tmp_path / "mobilenetv2_035.h5")
    app.save_weights(path)
    model = build_model(arch="deeplabv3plus", num_classes=3, alpha=0.35, output_stride=32, backbone_weights=path)
    app_features = keras.Model(app.input, app.get_layer("block_16_project_BN").output)  # all but Conv_1
    _assert_same_weights_by_name(app_features, model, expect_at_least=100)
    assert model.get_layer("classifier").get_weights()[0].std() < 1.0  # the head kept its own initialisation
    # Same weights, same features: raw pixels into kerasseg, keras.applications' preprocessing into the app.
    # (At even sizes TF's "same" padding equals keras.applications' explicit padding.)
    images = random_images(2, 64, 64)
    ours = keras.Model(model.input, model.get_layer("block_16_project_BN").output)(images, training=False)
    theirs = app_features(keras.applications.mobilenet_v2.preprocess_input(images.copy()), training=False)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.slow
def test_a_file_for_another_width_is_refused_with_the_file_named(tmp_path):
    """Slow: builds and saves a keras.applications MobileNetV2 to refuse."""
    app = keras.applications.MobileNetV2(weights=None, include_top=False, alpha=0.5, input_shape=(96, 96, 3))
    path = str(tmp_path / "mobilenetv2_050.h5")
    app.save_weights(path)
    with pytest.raises(ValueError, match="mobilenetv2_050.h5"):
        build_model(arch="deeplabv3plus", num_classes=3, alpha=0.35, backbone_weights=path)


@pytest.mark.slow
def test_a_file_missing_backbone_layers_is_refused_with_the_layers_named(tmp_path):
    """Slow: builds the DeepLab that refuses the file."""
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


def test_imagenet_is_refused_for_slim_channel_rounding():
    with pytest.raises(ValueError, match="channel_rounding='slim'"):
        build_model(arch="deeplabv3plus", num_classes=3, alpha=0.5, channel_rounding="slim",
                    backbone_weights="imagenet")


def test_imagenet_is_refused_for_a_backbone_keras_applications_lacks():
    with pytest.raises(ValueError, match="xception65"):
        weights_module.imagenet_weights_url("xception65")


@pytest.mark.slow
def test_resnet50_backbone_loads_a_keras_applications_weights_file_by_name(tmp_path):
    """Slow: builds, saves and loads ResNet-50 twice (keras.applications and ours)."""
    app = keras.applications.ResNet50(weights=None, include_top=False, input_shape=(None, None, 3))
    _randomise_batch_norm_statistics(app)
    path = str(tmp_path / "resnet50.h5")
    app.save_weights(path)
    model = build_model(arch="deeplabv3plus", backbone="resnet50", num_classes=3, output_stride=32,
                        backbone_weights=path)
    _assert_same_weights_by_name(app, model, expect_at_least=100)
    # Up to conv4 (before multi-grid dilates conv5) the features equal keras.applications', odd size included.
    images = random_images(1, 67, 93)
    ours = keras.Model(model.input, model.get_layer("conv4_block6_out").output)(images, training=False)
    app_conv4 = keras.Model(app.input, app.get_layer("conv4_block6_out").output)
    reference = keras.applications.resnet50.preprocess_input(images.copy())
    theirs = keras.Model(app_conv4.input, app_conv4.output)(reference, training=False)
    np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-3, atol=1e-3)


@pytest.mark.slow
def test_fcn_loads_the_full_vgg16_file_with_fc1_fc2_as_fc6_fc7(tmp_path):
    """Slow: builds, saves and loads VGG16 with its 138M-parameter top, then FCN-32s from it."""
    app = keras.applications.VGG16(weights=None, include_top=True)
    path = str(tmp_path / "vgg16.h5")
    app.save_weights(path)
    model = build_model(arch="fcn32s", num_classes=3, backbone_weights=path)
    convs = keras.Model(app.input, app.get_layer("block5_pool").output)
    _assert_same_weights_by_name(convs, model, expect_at_least=13)
    fc1_kernel, fc1_bias = app.get_layer("fc1").get_weights()
    fc6_kernel, fc6_bias = model.get_layer("fc6").get_weights()
    np.testing.assert_array_equal(fc6_kernel.reshape(fc1_kernel.shape), fc1_kernel)
    np.testing.assert_array_equal(fc6_bias, fc1_bias)
    np.testing.assert_array_equal(model.get_layer("fc7").get_weights()[0][0, 0], app.get_layer("fc2").get_weights()[0])


def test_fully_connected_weights_become_an_equivalent_convolution():
    rng = np.random.default_rng(0)
    features = rng.normal(size=(1, 7, 7, 3)).astype(np.float32)
    kernel, bias = rng.normal(size=(7 * 7 * 3, 5)).astype(np.float32), rng.normal(size=5).astype(np.float32)
    dense_out = features.reshape(1, -1) @ kernel + bias  # what keras Flatten + Dense computes
    conv = keras.layers.Conv2D(5, 7)
    conv.build((None, 7, 7, 3))
    conv.set_weights(weights_module.fully_connected_as_convolution(kernel, bias, kernel_size=7, channels=3))
    np.testing.assert_allclose(conv(features).numpy().reshape(1, 5), dense_out, rtol=1e-4, atol=1e-4)
    with pytest.raises(ValueError, match="7x7x4"):
        weights_module.fully_connected_as_convolution(kernel, bias, kernel_size=7, channels=4)
