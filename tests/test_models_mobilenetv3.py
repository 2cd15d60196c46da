"""MobileNetV3 backbones and the LR-ASPP head: structure, counts against the references, weights, options."""
import re

import numpy as np
import pytest

from kerasseg.backend import keras
from kerasseg.models import build_model, count_params_and_macs, load_model, model_config
from kerasseg.models import weights as weights_module
from kerasseg.models.__main__ import main
from kerasseg.models.blocks import HardSigmoid, HardSwish
from models_helpers import NUM_CLASSES, cached_model, random_images

SMALL_LRASPP = dict(arch="lraspp", backbone="mobilenetv3_small")
# torchvision's lraspp_mobilenet_v3_large (21 classes): "num_params" 3,221,538 and "_ops" 2.086 at 520x520 in its
# weights' meta. torchvision counts parameters without buffers (so without batch norm's moving statistics), and
# its "GFLOPS" are multiply-adds of convolutions and matrix products only (its FLOP counter, vision PR #6936), as
# count_params_and_macs counts them.
TORCHVISION_LRASPP_PARAMS, TORCHVISION_LRASPP_MACS = 3_221_538, 2.086e9


def _trainable(model) -> int:
    return int(sum(np.prod(w.shape) for w in model.trainable_weights))


def _backbone(model, minimalistic):
    """Our backbone alone: the model up to Conv_1's activation."""
    name = "Conv_1/relu" if minimalistic else "Conv_1/hard_swish"
    return keras.Model(model.input, model.get_layer(name).output)


def test_lraspp_large_matches_torchvision_within_2_percent():
    model = build_model(arch="lraspp", backbone="mobilenetv3_large", num_classes=21, input_shape=(520, 520, 3))
    params, macs = count_params_and_macs(model, input_shape=(520, 520, 3))
    assert _trainable(model) == pytest.approx(TORCHVISION_LRASPP_PARAMS, rel=0.02)
    assert macs == pytest.approx(TORCHVISION_LRASPP_MACS, rel=0.02)
    assert params > _trainable(model)  # Keras also counts batch norm's moving mean and variance


@pytest.mark.parametrize("size", ["large", "small"])
@pytest.mark.parametrize("minimalistic", [False, True], ids=["full", "minimalistic"])
def test_backbone_counts_equal_keras_applications_without_the_top(size, minimalistic):
    app_builder = {"large": keras.applications.MobileNetV3Large, "small": keras.applications.MobileNetV3Small}[size]
    app = app_builder(weights=None, include_top=False, input_shape=(224, 224, 3), minimalistic=minimalistic)
    model = build_model(arch="lraspp", backbone=f"mobilenetv3_{size}", num_classes=21, output_stride=32,
                        minimalistic=minimalistic, input_shape=(224, 224, 3))
    ours = _backbone(model, minimalistic)
    app_params, app_macs = count_params_and_macs(app, input_shape=(224, 224, 3))
    params, macs = count_params_and_macs(ours, input_shape=(224, 224, 3))
    assert params == pytest.approx(app_params, rel=0.02) and macs == pytest.approx(app_macs, rel=0.02)
    assert (params, macs, _trainable(ours)) == (app_params, app_macs, _trainable(app))  # in fact the same network


def _features(backbone, output_stride, *, image=None, **options):
    from kerasseg.models import BACKBONES
    image = keras.Input((67, 93, 3)) if image is None else image
    return BACKBONES[backbone].build(image, output_stride=output_stride, **options)


@pytest.mark.parametrize("backbone,output_stride", [("mobilenetv3_small", 8), ("mobilenetv3_small", 16),
                                                    ("mobilenetv3_small", 32), ("mobilenetv3_large", 16)])
def test_features_sit_at_their_strides_for_every_output_stride(backbone, output_stride):
    features = _features(backbone, output_stride)
    for key, stride in (("stride4", 4), ("stride8", 8), ("out", output_stride)):
        assert tuple(features[key].shape[1:3]) == (-(-67 // stride), -(-93 // stride)), key
    channels = {"mobilenetv3_small": (16, 24, 576), "mobilenetv3_large": (24, 40, 960)}[backbone]
    assert tuple(features[key].shape[-1] for key in ("stride4", "stride8", "out")) == channels


def _backbone_model(backbone, output_stride, **options):
    image = keras.Input((64, 64, 3))
    return keras.Model(image, _features(backbone, output_stride, image=image, **options)["out"])


def test_last_stage_is_dilated_not_strided_at_output_stride_16():
    model = _backbone_model("mobilenetv3_large", 16)
    rates = {layer.name: (layer.strides[0], layer.dilation_rate[0]) for layer in model.layers
             if isinstance(layer, keras.layers.DepthwiseConv2D)}
    assert rates["expanded_conv_12/depthwise"] == (1, 1)  # the dropped stride runs at the current rate
    assert rates["expanded_conv_13/depthwise"] == rates["expanded_conv_14/depthwise"] == (1, 2)
    assert rates["expanded_conv_6/depthwise"] == (2, 1)  # the stride-16 stage keeps its stride


@pytest.mark.parametrize("minimalistic", [False, True], ids=["full", "minimalistic"])
def test_minimalistic_drops_squeeze_excite_and_h_swish_and_uses_3x3_kernels(minimalistic):
    model = _backbone_model("mobilenetv3_large", 16, minimalistic=minimalistic)
    kinds = [type(layer).__name__ for layer in model.layers]
    kernels = {layer.kernel_size for layer in model.layers if isinstance(layer, keras.layers.DepthwiseConv2D)}
    squeeze_excite = [layer.name for layer in model.layers if layer.name.endswith("squeeze_excite/Mul")]
    if minimalistic:
        assert "HardSwish" not in kinds and "HardSigmoid" not in kinds and not squeeze_excite
        assert kernels == {(3, 3)}
    else:
        # Table 1 of the paper: squeeze-excite in 8 of 15 blocks, h-swish from block 6 on and in the stem.
        assert len(squeeze_excite) == 8 and kernels == {(3, 3), (5, 5)}
        assert kinds.count("HardSwish") == 1 + 2 * 9 + 1 and kinds.count("HardSigmoid") == 8


def test_h_swish_and_h_sigmoid_are_the_papers_formulas():
    x = np.linspace(-5, 5, 41, dtype=np.float32)
    relu6 = np.clip(x + 3, 0, 6)
    np.testing.assert_allclose(HardSwish()(x).numpy(), x * relu6 / 6, atol=1e-6)
    np.testing.assert_allclose(HardSigmoid()(x).numpy(), relu6 / 6, atol=1e-6)
    assert HardSwish.from_config(HardSwish(name="h").get_config()).name == "h"


@pytest.mark.parametrize("config", [
    dict(SMALL_LRASPP, output_stride=8), dict(SMALL_LRASPP, output_stride=32, minimalistic=True),
    dict(SMALL_LRASPP, alpha=0.5, edgetpu_friendly=True), dict(arch="deeplabv3plus", backbone="mobilenetv3_small"),
    dict(arch="deeplabv3plus", backbone="mobilenetv3_small", decoder=False, output_stride=32, minimalistic=True),
], ids=lambda c: "-".join(f"{v}" for v in c.values()))
def test_odd_input_sizes_keep_their_shape(config):
    model = build_model(num_classes=3, **config)
    for height, width in ((67, 93), (64, 64)):
        logits = model(random_images(1, height, width), training=False)
        assert logits.shape == (1, height, width, 3) and logits.dtype == "float32"
        assert np.all(np.isfinite(logits.numpy()))


def test_lraspp_head_structure_and_native_stride():
    from kerasseg.export.heads import Head, cut
    model = cached_model(**SMALL_LRASPP)
    assert model.get_layer("lraspp_gate_sigmoid").activation.__name__ == "sigmoid"
    assert model.get_layer("lraspp_conv").filters == model.get_layer("lraspp_gate_conv").filters == 128
    assert model.get_layer("low_classifier").filters == model.get_layer("classifier").filters == NUM_CLASSES
    native, fields = cut(model, Head.NATIVE)
    assert fields["output_stride"] == 8 and native(random_images(1, 67, 93)).shape == (1, 9, 12, NUM_CLASSES)


def test_keras_round_trip_gives_identical_outputs(tmp_path):
    model = cached_model(**SMALL_LRASPP)
    model.save(tmp_path / "lraspp.keras")
    loaded = load_model(tmp_path / "lraspp.keras")
    images = random_images(1, 67, 93)
    np.testing.assert_array_equal(model(images, training=False), loaded(images, training=False))


def _randomise_batch_norm(model, seed=0):
    """Fresh batch norms hold 0/1 (kernels are random already): make them distinctive, so equality means something."""
    rng = np.random.default_rng(seed)
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization):
            gamma, beta, mean, variance = layer.get_weights()
            layer.set_weights([rng.uniform(0.5, 1.5, gamma.shape), rng.uniform(-0.5, 0.5, beta.shape),
                               rng.uniform(-0.5, 0.5, mean.shape), rng.uniform(0.5, 1.5, variance.shape)])


@pytest.mark.slow
@pytest.mark.parametrize("size,minimalistic", [("small", False), ("large", True)])
def test_keras_applications_weights_load_and_compute_what_keras_applications_does(tmp_path, size, minimalistic):
    """Slow: builds keras.applications' MobileNetV3 and ours, saves, loads and runs both (about 2 s each)."""
    app_builder = {"large": keras.applications.MobileNetV3Large, "small": keras.applications.MobileNetV3Small}[size]
    # A static odd size: keras.applications pads its strided convolutions from the static shape.
    app = app_builder(weights=None, include_top=False, input_shape=(67, 93, 3), minimalistic=minimalistic)
    _randomise_batch_norm(app)
    path = str(tmp_path / f"mobilenetv3_{size}.h5")
    app.save_weights(path)
    model = build_model(arch="lraspp", backbone=f"mobilenetv3_{size}", num_classes=3, output_stride=32,
                        minimalistic=minimalistic, backbone_weights=path)
    loaded = 0
    for layer in app.layers:
        if layer.weights:
            for theirs, ours in zip(layer.get_weights(), model.get_layer(layer.name).get_weights(), strict=True):
                np.testing.assert_array_equal(theirs, ours)
            loaded += 1
    assert loaded >= 50
    assert model.get_layer("classifier").get_weights()[0].std() < 1.0  # the head kept its own initialisation
    # Raw pixels into both: keras.applications rescales inside, ours normalises inside.
    images = random_images(1, 67, 93)
    ours = _backbone(model, minimalistic)(images, training=False).numpy()
    theirs = app(images, training=False).numpy()
    assert np.isfinite(theirs).all() and theirs.std() > 0
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4 * np.abs(theirs).max())


def test_imagenet_weights_name_keras_applications_files_and_refuse_other_widths(monkeypatch):
    name, url, md5 = weights_module.imagenet_weights_url("mobilenetv3_large", alpha=1.0, minimalistic=True)
    assert name == "weights_mobilenet_v3_large_minimalistic_224_1.0_float_no_top_v2.h5"
    assert url.endswith("/mobilenet_v3/" + name) and len(md5) == 32
    with pytest.raises(ValueError, match=r"mobilenetv3_small.*alpha \[0\.75, 1\.0\], not 0\.5"):
        build_model(num_classes=3, alpha=0.5, backbone_weights="imagenet", **SMALL_LRASPP)

    def offline(*args, **kwargs):
        raise Exception("URL fetch failure: no network")
    monkeypatch.setattr(weights_module.keras.utils, "get_file", offline)
    with pytest.raises(RuntimeError, match=r"weights_mobilenet_v3_small_224_0\.75_float_no_top_v2\.h5"):
        build_model(num_classes=3, alpha=0.75, backbone_weights="imagenet", **SMALL_LRASPP)


@pytest.mark.parametrize("kwargs,needles", [
    (dict(SMALL_LRASPP, alpha=1.4), ["alpha", "1.4", "mobilenetv3_small", "1.25"]),
    (dict(arch="deeplabv3plus", alpha=1.25), ["alpha", "1.25", "mobilenetv2", "1.4"]),
    (dict(arch="deeplabv3plus", minimalistic=True), ["minimalistic", "mobilenetv2"]),
    (dict(SMALL_LRASPP, minimalistic="yes"), ["minimalistic", "'yes'"]),
    (dict(SMALL_LRASPP, aspp=False), ["aspp", "lraspp"]),
    (dict(arch="lraspp", backbone="mobilenetv2"), ["backbone", "mobilenetv3_large"]),
])
def test_bad_options_are_refused_naming_them(kwargs, needles):
    with pytest.raises(ValueError) as info:
        model_config(num_classes=3, **kwargs)
    for needle in needles:
        assert needle in str(info.value)


def test_defaults_and_training_config():
    from kerasseg.training.config import resolve_config
    assert model_config(arch="lraspp", num_classes=21) == dict(
        arch="lraspp", num_classes=21, backbone="mobilenetv3_large", output_stride=16, edgetpu_friendly=False,
        alpha=1.0, minimalistic=False)
    # DeepLab's MobileNetV2 training width (0.35) is not forced onto MobileNetV3.
    config = resolve_config(overrides={"arch": "lraspp", "minimalistic": True})
    assert config.model_kwargs(num_classes=5) == dict(arch="lraspp", num_classes=5, backbone=None, output_stride=None,
                                                      minimalistic=True)
    assert resolve_config(overrides={"arch": "deeplabv3plus"}).alpha == 0.35


def test_cli_prints_lraspp_counts(capsys):
    assert main(["--arch", "lraspp", "--backbone", "mobilenetv3_small", "--minimalistic", "--alpha", "0.75",
                 "--image-size", "64", "--num-classes", "3"]) == 0
    out = capsys.readouterr().out
    model = build_model(num_classes=3, alpha=0.75, minimalistic=True, **SMALL_LRASPP)
    params, macs = count_params_and_macs(model, input_shape=(64, 64, 3))
    match = re.search(r"input 64x64: ([\d.]+)M parameters, ([\d.]+)G multiply-adds", out)
    assert match and float(match[1]) == pytest.approx(params / 1e6, abs=1e-3)
    assert float(match[2]) == pytest.approx(macs / 1e9, abs=1e-3)
    assert "minimalistic=True" in out and "alpha=0.75" in out
    assert main([]) == 0
    assert re.search(r"^lraspp\s+mobilenetv3_large, mobilenetv3_small\s+8/16/32", capsys.readouterr().out, re.M)
