import re

import pytest

from kerasseg.backend import keras
from kerasseg.models import build_model, count_params_and_macs, list_models
from kerasseg.models.__main__ import main
from models_helpers import SMALL, cached_model


def test_counter_matches_hand_counted_layers():
    image = keras.Input((10, 10, 3))
    x = keras.layers.Conv2D(8, 3, padding="same")(image)                  # 10*10*8 * 3*3*3
    x = keras.layers.DepthwiseConv2D(3, padding="same")(x)                # 10*10*8 * 3*3
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", groups=2)(x)  # 5*5*8 * 3*3*4
    x = keras.layers.Conv2DTranspose(2, 4, strides=2, padding="same")(x)  # 5*5*8 * 4*4*2
    x = keras.layers.BatchNormalization()(x)                              # not counted
    x = keras.layers.Dense(5)(x)                                          # 10*10 * 2*5
    model = keras.Model(image, x)
    params, macs = count_params_and_macs(model, input_shape=(10, 10, 3))
    assert params == model.count_params()
    assert macs == 10 * 10 * 8 * 27 + 10 * 10 * 8 * 9 + 5 * 5 * 8 * 36 + 5 * 5 * 8 * 32 + 10 * 10 * 10


@pytest.mark.slow
def test_counter_reads_a_dynamic_model_at_the_requested_size():
    """Slow: counts a DeepLab at two sizes (each count clones the model at that size)."""
    model = build_model(arch="deeplabv3plus", num_classes=3, alpha=0.35, output_stride=32)
    small = count_params_and_macs(model, input_shape=(64, 64, 3))
    large = count_params_and_macs(model, input_shape=(128, 128, 3))
    assert small[0] == large[0] == model.count_params()
    assert 3.5 < large[1] / small[1] < 4.5  # roughly proportional to the pixel count


def test_deeplab_mobilenetv2_matches_the_reference_within_3_percent():
    # DeepLab model zoo: MobileNetV2, 1x1 + image pooling, no decoder, OS 16, 513x513: 2.11M params, 2.75G MACs.
    model = build_model(arch="deeplabv3plus", num_classes=21, aspp=False, decoder=False, output_stride=16,
                        input_shape=(513, 513, 3))
    params, macs = count_params_and_macs(model, input_shape=(513, 513, 3))
    assert params == pytest.approx(2.11e6, rel=0.03)
    assert macs == pytest.approx(2.75e9, rel=0.03)


@pytest.mark.slow
def test_deeplabv3plus_xception65_matches_the_reference_within_3_percent():
    """Slow: builds and counts Xception-65 (41M parameters) at 513x513."""
    model = build_model(arch="deeplabv3plus", backbone="xception65", num_classes=21, output_stride=16,
                        input_shape=(513, 513, 3))
    params, macs = count_params_and_macs(model, input_shape=(513, 513, 3))
    assert macs == pytest.approx(54.17e9, rel=0.03)
    assert params == pytest.approx(41e6, rel=0.03)


@pytest.mark.slow
def test_fcn8s_has_the_papers_134_5m_parameters():
    """Slow: builds FCN-8s (134M parameters)."""
    model = build_model(arch="fcn8s", num_classes=21, input_shape=(64, 64, 3))
    assert model.count_params() == pytest.approx(134.5e6, rel=0.01)
    trainable = {layer.name for layer in model.layers if layer.weights and layer.trainable}
    assert "upscore8" not in trainable and {"upscore_stride16", "upscore_stride8"} <= trainable
    for name in ("score_pool4", "score_pool3"):
        assert not any(w.any() for w in model.get_layer(name).get_weights())


def test_cli_prints_the_counter_numbers(capsys):
    assert main(["--arch", "deeplabv3plus", "--alpha", "0.35", "--image-size", "64", "96", "--num-classes", "3",
                 "--no-edgetpu-friendly"]) == 0
    out = capsys.readouterr().out
    params, macs = count_params_and_macs(cached_model(**SMALL), input_shape=(64, 96, 3))  # the clone path
    match = re.search(r"input 64x96: ([\d.]+)M parameters, ([\d.]+)G multiply-adds", out)
    assert match and float(match[1]) == pytest.approx(params / 1e6, abs=1e-3)
    assert float(match[2]) == pytest.approx(macs / 1e9, abs=1e-3)
    assert "aspp=True" in out and "alpha=0.35" in out and "edgetpu_friendly=False" in out


def test_cli_lists_the_registry_and_reports_bad_options(capsys):
    assert main([]) == 0
    out = capsys.readouterr().out
    for arch in list_models():
        assert arch in out
    assert main(["--arch", "fcn8s", "--alpha", "0.5"]) == 2
    assert "option 'alpha' does not apply to arch 'fcn8s'" in capsys.readouterr().err
