import json

import numpy as np
import pytest

from kerasseg.models import (BACKBONES, MODELS, build_model, custom_objects, list_models, model_config,
                             preprocessing_for)
from models_helpers import FAST_CONFIGS, NUM_CLASSES, SLOW_CONFIGS, SMALL, cached_model, random_images


def _check_logits(model, num_classes, sizes=((64, 64), (67, 93))):
    assert model.input_names == ["image"] and model.output_names == ["logits"]
    for height, width in sizes:
        logits = model(random_images(2, height, width), training=False)
        assert logits.shape == (2, height, width, num_classes)
        assert logits.dtype == "float32"
        assert np.all(np.isfinite(logits.numpy()))


@pytest.mark.parametrize("config", FAST_CONFIGS, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_fast_configurations_give_logits_of_the_input_size(config):
    _check_logits(cached_model(**config), NUM_CLASSES)


@pytest.mark.slow
@pytest.mark.parametrize("config", SLOW_CONFIGS, ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_heavy_configurations_give_logits_of_the_input_size(config):
    """Slow: builds the large backbones (VGG16, Xception-65, ResNet-50/101), one per case; nothing to share."""
    _check_logits(build_model(num_classes=4, **config), 4)


def test_every_registered_arch_and_backbone_is_covered_by_the_build_tests():
    covered = {(c["arch"], c.get("backbone", MODELS[c["arch"]].backbones[0])) for c in FAST_CONFIGS + SLOW_CONFIGS}
    registered = {(arch, backbone) for arch in list_models() for backbone in MODELS[arch].backbones}
    assert registered == covered


def test_fixed_input_shape_and_dynamic_shape_share_the_weight_layout():
    kwargs = model_config(num_classes=NUM_CLASSES, **SMALL)
    json.dumps(kwargs)  # a run config can store it
    dynamic = cached_model(**SMALL)
    fixed = build_model(**kwargs, input_shape=(67, 93, 3))
    fixed.set_weights(dynamic.get_weights())
    images = random_images(1, 67, 93)
    np.testing.assert_allclose(fixed(images, training=False), dynamic(images, training=False), rtol=1e-5, atol=1e-4)


def test_uint8_input_is_accepted_and_equals_float_input():
    model = cached_model(**SMALL)
    images = random_images(1, 40, 48).round()
    np.testing.assert_allclose(model(images.astype(np.uint8), training=False), model(images, training=False),
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("arch,backbone,expected", [
    ("deeplabv3plus", "mobilenetv2", dict(mean=(127.5,) * 3, std=(127.5,) * 3, channel_order="rgb")),
    ("deeplabv3plus", "xception65", dict(mean=(127.5,) * 3, std=(127.5,) * 3, channel_order="rgb")),
    ("lraspp", "mobilenetv3_small", dict(mean=(127.5,) * 3, std=(127.5,) * 3, channel_order="rgb")),
    ("deeplabv3plus", "resnet50", dict(mean=(123.68, 116.779, 103.939), std=(1.0,) * 3, channel_order="bgr")),
    ("fcn8s", None, dict(mean=(123.68, 116.779, 103.939), std=(1.0,) * 3, channel_order="bgr")),
])
def test_preprocessing_for_matches_keras_applications(arch, backbone, expected):
    assert preprocessing_for(arch=arch, backbone=backbone) == expected


def test_model_normalisation_matches_keras_applications_mobilenetv2():
    from kerasseg.backend import keras
    model = cached_model(**SMALL)
    images = random_images(1, 32, 32)
    np.testing.assert_allclose(model.get_layer("normalize")(images),
                               keras.applications.mobilenet_v2.preprocess_input(images.copy()), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("backbone,app", [("mobilenetv2", "mobilenet_v2"), ("xception65", "xception"),
                                          ("resnet50", "resnet50")])
def test_normalize_built_from_preprocessing_for_matches_keras_applications(backbone, app):
    from kerasseg.backend import keras
    from kerasseg.models.layers import Normalize
    pre = preprocessing_for(arch="deeplabv3plus", backbone=backbone)
    images = random_images(1, 8, 8)
    normalised = Normalize(**pre)(images).numpy()
    reference = getattr(keras.applications, app).preprocess_input(images.copy())
    np.testing.assert_allclose(normalised, reference, rtol=1e-5, atol=1e-4)
    manual = (images - np.array(pre["mean"])) / np.array(pre["std"])  # what the spec promises
    if pre["channel_order"] == "bgr":
        manual = manual[..., ::-1]
    np.testing.assert_allclose(normalised, manual, rtol=1e-5, atol=1e-4)


def test_custom_objects_lists_the_custom_layers():
    assert set(custom_objects()) == {"Normalize", "ResizeToReference", "CropToReference", "BilinearUpsampling",
                                     "HardSwish", "HardSigmoid"}
    assert set(BACKBONES) == {"vgg16", "mobilenetv2", "xception65", "resnet50", "resnet101", "mobilenetv3_large",
                              "mobilenetv3_small", "mobilenet_edgetpu"}


@pytest.mark.parametrize("config", [SMALL, pytest.param(dict(arch="fcn8s"), marks=pytest.mark.slow)],
                         ids=["deeplabv3plus", "fcn8s"])
def test_static_voc_sized_input_gives_static_logits_of_exactly_that_size(config):
    """Slow for FCN-8s: builds the 134M-parameter model at 500x375."""
    model = build_model(num_classes=21, input_shape=(500, 375, 3), **config)
    assert model.output_shape == (None, 500, 375, 21)


@pytest.mark.slow
def test_mixed_precision_keeps_float32_logits():
    """Slow: builds a DeepLab under the mixed_float16 policy, which the cached models cannot share."""
    from kerasseg.backend import keras
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = build_model(num_classes=3, **SMALL)
        logits = model(random_images(1, 67, 93), training=False)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert model.get_layer("classifier").compute_dtype == "float16"
    assert logits.dtype == "float32" and logits.shape == (1, 67, 93, 3)
    assert np.all(np.isfinite(logits.numpy()))
