"""Quantization-aware training on the real architectures: FCN-8s and DeepLabv3+ MobileNetV2."""
import numpy as np
import pytest

from kerasseg.backend import keras
from kerasseg.data import build_pipeline, open_dataset
from kerasseg.export import edgetpu, qat, tflite
from kerasseg.export.modes import Mode
from kerasseg.export.parity import device_segmenter
from kerasseg.models import build_model

SIZE = 64


def _deeplab(**options):
    return build_model(arch="deeplabv3plus", backbone="mobilenetv2", num_classes=5, alpha=0.35, **options)


@pytest.mark.slow
def test_every_deeplab_layer_is_covered_by_a_quantize_config():
    """Slow: builds DeepLabv3+ MobileNetV2 with ASPP and decoder (no conversion)."""
    groups = qat.coverage(_deeplab())
    assert groups["unsupported"] == []
    # Our configs: the normalisation and the three resizes (ASPP image pooling, decoder, logits).
    assert sorted(groups["output"]) == ["decoder_upsample", "image_pooling_resize", "logits", "normalize"]


@pytest.mark.slow
def test_fcn_crops_pass_through_and_transposed_convs_use_tfmot():
    """Slow: builds FCN-8s (134M parameters; no conversion)."""
    model = build_model(arch="fcn8s", num_classes=3)
    groups = qat.coverage(model)
    assert groups["unsupported"] == []
    assert sorted(groups["pass_through"]) == ["logits", "upscore_stride16_crop", "upscore_stride8_crop"]
    assert {"upscore_stride16", "upscore_stride8", "upscore8"} <= set(groups["tfmot"])


def _qat_convert_and_run(model, *, steps=2):
    data = open_dataset(f"synthetic:8?val=2&size={SIZE}")
    train = build_pipeline(data, split="train", image_size=(SIZE, SIZE), batch_size=2, training=True)
    quantized = qat.quantize_aware(model)
    assert np.isfinite(qat.fine_tune(quantized, train, steps=steps))
    calibration = build_pipeline(data, split="train", image_size=(SIZE, SIZE), batch_size=1, training=True)
    content = tflite.convert(quantized, mode=Mode.QAT, input_size=(SIZE, SIZE),
                             calibration=lambda: tflite.calibration_images(calibration.as_numpy_iterator(), steps=2))
    assert tflite.float_ops(content) == []
    with device_segmenter(content) as segmenter:
        assert segmenter.input_quantization == (1.0, 0)
        prediction = segmenter.segment(np.full((SIZE, SIZE, 3), 128, np.uint8))
    assert prediction.shape == (SIZE, SIZE)
    return content


@pytest.mark.slow
def test_qat_deeplabv3plus_mobilenetv2_edgetpu_friendly_maps_every_op():
    """Slow (about 30 s): quantize_apply, two fine-tuning steps and the QAT conversion of the Edge-TPU-friendly
    DeepLab; no shared run is Edge-TPU-friendly, and no other test converts one with QAT."""
    keras.utils.set_random_seed(0)
    content = _qat_convert_and_run(_deeplab(edgetpu_friendly=True))
    report = edgetpu.analyze(content)
    assert report.first_unsupported is None, report.format()
    assert {"MEAN", "RESIZE_BILINEAR", "CONCATENATION", "DEPTHWISE_CONV_2D"} <= {op.op for op in report.ops}


@pytest.mark.slow
def test_qat_fcn8s():
    """Slow (about 40 s): quantize_apply, one fine-tuning step and the QAT conversion of FCN-8s, whose fc6 kernel
    is what this checks (per-tensor ranges above PER_TENSOR_ABOVE). The shared ``fcn8s_run`` is float32 only."""
    keras.utils.set_random_seed(0)
    model = build_model(arch="fcn8s", num_classes=5)
    content = _qat_convert_and_run(model, steps=1)
    ops = {op.op for op in edgetpu.analyze(content).ops}
    assert {"TRANSPOSE_CONV", "ADD", "CONV_2D"} <= ops
