import numpy as np
import pytest

from kerasseg.backend import keras, tf
from kerasseg.models import build_model, load_model, model_config
from kerasseg.models.layers import (BilinearUpsampling, CropToReference, Normalize, ResizeToReference,
                                    bilinear_kernel)
from models_helpers import SMALL, cached_model, random_images


@pytest.mark.parametrize("kwargs,needles", [
    (dict(arch="unet", num_classes=3), ["arch", "'unet'", "deeplabv3plus", "fcn8s"]),
    (dict(arch="deeplabv3plus", num_classes=3, backbone="vgg16"), ["backbone", "'vgg16'", "mobilenetv2"]),
    (dict(arch="fcn8s", num_classes=3, backbone="mobilenetv2"), ["backbone", "'mobilenetv2'", "vgg16"]),
    (dict(arch="deeplabv3plus", num_classes=3, output_stride=4), ["output_stride", "4", "8, 16, 32"]),
    (dict(arch="fcn8s", num_classes=3, output_stride=16), ["output_stride", "16", "32"]),
    (dict(arch="deeplabv3plus", num_classes=1), ["num_classes", "1", ">= 2"]),
    (dict(arch="deeplabv3plus", num_classes=2.5), ["num_classes", "2.5"]),
    (dict(arch="fcn8s", num_classes=3, alpha=0.5), ["alpha", "fcn8s", "dropout"]),
    (dict(arch="deeplabv3plus", backbone="xception65", num_classes=3, alpha=0.5), ["alpha", "xception65"]),
    (dict(arch="fcn8s", num_classes=3, aspp=False), ["aspp", "fcn8s"]),
    (dict(arch="deeplabv3plus", num_classes=3, alpha=0.6), ["alpha", "0.6", "0.35", "1.4"]),
    (dict(arch="deeplabv3plus", num_classes=3, dropout=1.0), ["dropout", "1.0"]),
    (dict(arch="deeplabv3plus", num_classes=3, decoder="yes"), ["decoder", "'yes'"]),
])
def test_bad_arguments_raise_value_errors_naming_parameter_value_and_choices(kwargs, needles):
    with pytest.raises(ValueError) as info:
        model_config(**kwargs)
    for needle in needles:
        assert needle in str(info.value)


@pytest.mark.parametrize("kwargs,input_shape,needles", [
    (dict(arch="deeplabv3plus", alpha=0.35), (15, 64, 3), ["input_shape", "height", "15", "16"]),
    (dict(arch="deeplabv3plus", alpha=0.35, output_stride=8), (64, 7, 3), ["width", "7", "8"]),
    (dict(arch="fcn8s"), (31, 64, 3), ["height", "31", "32"]),
    (dict(arch="deeplabv3plus", alpha=0.35), (64, 64, 1), ["input_shape", "(height, width, 3)"]),
])
def test_too_small_or_wrong_input_shapes_are_refused(kwargs, input_shape, needles):
    with pytest.raises(ValueError) as info:
        build_model(num_classes=3, input_shape=input_shape, **kwargs)
    for needle in needles:
        assert needle in str(info.value)


def test_model_config_is_resolved_and_rebuilds_the_same_model():
    config = model_config(arch="deeplabv3plus", num_classes=4, alpha=0.35)
    assert config == dict(arch="deeplabv3plus", num_classes=4, backbone="mobilenetv2", output_stride=16,
                          aspp=True, decoder=True, dropout=0.1, edgetpu_friendly=False, align_corners=False,
                          head_filters=256, alpha=0.35, channel_rounding="keras")
    assert model_config(**config) == config
    fcn = model_config(arch="fcn8s", num_classes=21)
    assert fcn == dict(arch="fcn8s", num_classes=21, backbone="vgg16", output_stride=32, dropout=0.5,
                       edgetpu_friendly=False)


def _custom_layer_model():
    image = keras.Input((None, None, 3), name="image")
    x = Normalize(mean=(1, 2, 3), std=(4, 5, 6), channel_order="bgr")(image)
    small = keras.layers.Conv2D(3, 3, strides=4, padding="same")(x)
    up = keras.layers.Conv2DTranspose(3, 8, strides=4, padding="same", use_bias=False,
                                      kernel_initializer=BilinearUpsampling())(small)
    cropped = CropToReference()([up, image])
    resized = ResizeToReference(half_pixel_centers=False)([small, image])
    nearest = ResizeToReference(interpolation="nearest")([small, image])
    out = keras.layers.Concatenate(name="logits")([cropped, resized, nearest])
    return keras.Model(image, out)


def test_custom_layers_get_config_is_their_constructor_arguments():
    layer = Normalize(mean=(1, 2, 3), std=(4, 5, 6), channel_order="bgr", name="n")
    assert {k: layer.get_config()[k] for k in ("mean", "std", "channel_order")} == dict(
        mean=[1.0, 2.0, 3.0], std=[4.0, 5.0, 6.0], channel_order="bgr")
    assert Normalize.from_config(layer.get_config()).get_config() == layer.get_config()
    resize = ResizeToReference(interpolation="nearest", half_pixel_centers=False)
    assert ResizeToReference.from_config(resize.get_config()).get_config() == resize.get_config()
    assert BilinearUpsampling().get_config() == {}


def test_custom_layers_survive_a_keras_round_trip(tmp_path):
    model = _custom_layer_model()
    path = str(tmp_path / "custom.keras")
    model.save(path)
    loaded = load_model(path)
    images = random_images(2, 37, 53)
    np.testing.assert_array_equal(model(images), loaded(images))
    assert model(images).shape == (2, 37, 53, 9)


def test_deeplab_keras_round_trip_gives_identical_outputs(tmp_path):
    model = cached_model(**SMALL, edgetpu_friendly=True)
    path = str(tmp_path / "deeplab.keras")
    model.save(path)
    loaded = load_model(path)
    images = random_images(1, 67, 93)
    np.testing.assert_array_equal(model(images, training=False), loaded(images, training=False))
    assert loaded.get_layer("logits").half_pixel_centers is False


def test_edgetpu_friendly_changes_only_the_resize_alignment():
    plain, friendly = cached_model(**SMALL), cached_model(**SMALL, edgetpu_friendly=True)
    resizes = [layer for layer in friendly.layers if isinstance(layer, ResizeToReference)]
    assert len(resizes) == 3 and not any(layer.half_pixel_centers for layer in resizes)
    assert all(layer.half_pixel_centers for layer in plain.layers if isinstance(layer, ResizeToReference))
    assert [w.shape for w in plain.weights] == [w.shape for w in friendly.weights]
    for layer in friendly.layers:
        rate = getattr(layer, "dilation_rate", (1, 1))
        assert rate[0] == rate[1], layer.name


def test_bilinear_transposed_convolution_matches_half_pixel_bilinear_resize():
    factor, channels = 4, 2
    layer = keras.layers.Conv2DTranspose(channels, 2 * factor, strides=factor, padding="same", use_bias=False,
                                         kernel_initializer=BilinearUpsampling())
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1, 6, 5, channels)).astype(np.float32)
    up = layer(x).numpy()
    reference = tf.image.resize(x, (6 * factor, 5 * factor), method="bilinear").numpy()
    inner = slice(factor, -factor)  # the borders differ: zero padding versus edge clamping
    np.testing.assert_allclose(up[:, inner, inner], reference[:, inner, inner], atol=1e-5)
    assert bilinear_kernel(4, 1)[:, :, 0, 0].sum() == pytest.approx(4.0)


def test_resize_to_reference_alignment_flag_selects_the_tf_op_variant():
    x = np.arange(2 * 3, dtype=np.float32).reshape(1, 2, 3, 1)
    ref = np.zeros((1, 5, 7, 1), np.float32)
    half = ResizeToReference()([x, ref]).numpy()
    legacy = ResizeToReference(half_pixel_centers=False)([x, ref]).numpy()
    np.testing.assert_allclose(half, tf.image.resize(x, (5, 7)).numpy(), atol=1e-6)
    np.testing.assert_allclose(legacy, tf.compat.v1.image.resize_bilinear(x, (5, 7)).numpy(), atol=1e-6)
    assert not np.allclose(half, legacy)
