"""The parity verdict finds where a failed artifact lost its points, by measurement, and names that stage only.

A hand-set colour classifier stands in for a trained model: each 4x4 block's mean colour gives the class scores
(stride 4), and a bilinear resize named ``logits`` brings them to the input, as DeepLab ends, so it takes every
head. On the built-in dataset's pictures its class map follows the coloured shapes, so placing its 16x16 argmax
ids by nearest neighbour costs points that its scores, upsampled exactly, do not. ``outlier`` adds a class whose
scores lie a thousand times further out: one int8 scale then covers them all, and the real classes' scores, a
few units apart, round to the same integer (quantization loses them; float32 keeps them).
"""
import json
import os

import cv2
import numpy as np
import pytest

from edge.artifact import Spec
from kerasseg.backend import keras, layers
from kerasseg.data.synthetic import SHAPE_LABELS, SyntheticSource
from kerasseg.export.export import export
from kerasseg.export.parity import ParityReport, diagnose, failure_hint
from kerasseg.models.layers import ResizeToReference
from kerasseg.rundir import Trained

SIZE = 64
IMAGES = 6


def colour_classifier(*, outlier: bool):
    """Scores of background, circle, square, triangle, cross from each 4x4 block's colour; see the module doc."""
    image = keras.Input((None, None, 3), name="image")
    blocks = layers.AveragePooling2D(4, padding="same", name="blocks")(image)
    scores = layers.Conv2D(len(SHAPE_LABELS), 1, name="classifier")(blocks)
    logits = ResizeToReference(name="logits")([scores, image])
    model = keras.Model(image, logits, name="colours")
    kernel = np.zeros((1, 1, 3, len(SHAPE_LABELS)), np.float32)
    kernel[0, 0, 0, 1] = kernel[0, 0, 1, 2] = kernel[0, 0, 2, 3] = 2 / 255  # red, green, blue: classes 1, 2, 3
    bias = np.array([0.3, -1.0, -1.0, -1.0, -5.0], np.float32)
    if outlier:  # the cross never wins, but its scores span [-2000, -1000]
        kernel[0, 0, 0, 4], bias[4] = -1000 / 255, -1000.0
    model.get_layer("classifier").set_weights([kernel, bias])
    return model


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    """The built-in dataset's pictures as a folder of images without masks (``images:``: Keras is the truth)."""
    folder = tmp_path_factory.mktemp("verdict") / "photos"
    folder.mkdir()
    images, _ = SyntheticSource(num_train=1, num_val=IMAGES, size=(SIZE, SIZE)).arrays("val")
    for index, image in enumerate(images):
        cv2.imwrite(str(folder / f"{index}.png"), image[..., ::-1])
    return str(folder)


def _export(tmp_path, photos, *, outlier: bool, mode: str, head: str):
    model_path = str(tmp_path / "colours.keras")
    trained = Trained(model=colour_classifier(outlier=outlier), model_path=model_path,
                      spec=Spec(labels=SHAPE_LABELS, input_size=(SIZE, SIZE)))
    lines = []
    [result] = export(trained, [mode], heads=[head], dataset=f"images:{photos}", calibration_steps=IMAGES,
                      log=lines.append)
    parity = json.load(open(result.path.replace(".tflite", ".parity.json")))
    return result, parity, "\n".join(lines)


@pytest.mark.slow
def test_an_argmax_head_failure_names_the_head_with_the_float32_figure(tmp_path, photos):
    """Slow: converts the small model twice (int8, and float32 to compare with), about 6 s."""
    result, parity, log = _export(tmp_path, photos, outlier=False, mode="int8", head="argmax")
    assert not result.parity.passed and result.path.endswith("_int8_argmax.FAILED.tflite")
    assert "[float32/argmax] converting (not written)" in log
    found = parity["diagnosis"]
    assert found["cause"] == "head" and found["losses_points"]["head"] > 2.0, found
    assert found["losses_points"]["quantization"] < found["losses_points"]["head"] / 4, found  # int8 keeps most ids
    hint = parity["failure_hint"]
    float32_drop = found["points"]["keras"] - found["points"]["float32"]
    assert float32_drop > 2.0 and f"float32 export with the same head drops {float32_drop:+.2f}" in hint, hint
    assert "argmax head's placement" in hint and "16x16 class ids" in hint and "--head native" in hint, hint
    assert "quantiz" not in hint.lower() and "--qat" not in hint and "--calibration-steps" not in hint, hint
    assert hint in result.parity.verdict()  # the terminal's line says the same
    assert "keras with the argmax head's placement" in log  # and the table shows Keras placed as the device does


@pytest.mark.slow
def test_a_quantization_failure_names_the_quantization_not_the_head(tmp_path, photos):
    """Slow: converts the small model with an outlier class twice (int8, and float32 to compare with), about 6 s."""
    result, parity, _ = _export(tmp_path, photos, outlier=True, mode="int8", head="native")
    assert not result.parity.passed
    found = parity["diagnosis"]
    assert found["cause"] == "quantization" and found["losses_points"]["quantization"] > 2.0, found
    assert abs(found["losses_points"]["head"]) < 0.5 and abs(found["losses_points"]["converter"]) < 0.5, found
    hint = parity["failure_hint"]
    assert hint.startswith("Cause: post-training int8 quantization") and "--qat" in hint, hint
    assert f"{found['points']['float32']:.2f}" in hint, hint  # the float32 export's figure
    assert "placement" not in hint and "--head" not in hint and "head" not in hint, hint


def _report(mode, head, *, keras, keras_head, device):
    return ParityReport(mode=mode, head=head, labels=["a", "b"], num_images=1, keras_miou=keras, device_miou=device,
                        keras_pixel_accuracy=1.0, device_pixel_accuracy=1.0, keras_iou=[], device_iou=[],
                        miou_vs_keras=1.0, pixel_agreement=1.0, max_drop=2.0, keras_head_miou=keras_head)


def test_each_stage_and_mode_gets_its_own_cause_and_fix():
    spec = Spec(labels=("a", "b"), input_size=(64, 64), output_stride=16)
    float32 = _report("float32", "full", keras=0.9, keras_head=0.9, device=0.9)

    def hint(mode, head="native", *, keras_head=0.9, device=0.8, reference=float32, realigned=False, steps=0):
        report = _report(mode, head, keras=0.9, keras_head=keras_head, device=device)
        report.diagnosis = diagnose(report, spec, float32=None if mode == "float32" else reference)
        return failure_hint(report, realigned=realigned, finetune_steps=steps)

    assert "--qat" in hint("int8") and "--qat-steps" in hint("qat") and "--float32" in hint("float16")
    assert "--int8" in hint("dynamic-range") and "--qat" in hint("edgetpu")
    edgetpu = hint("edgetpu", realigned=True)
    assert "half-pixel" in edgetpu and "--edgetpu-finetune-steps" in edgetpu and "--edgetpu-friendly" in edgetpu
    assert "200 steps" in hint("edgetpu", realigned=True, steps=200)
    # A float32 export that loses what Keras placed as the device keeps: the converter or the runtime.
    converter = hint("float32", "full")
    assert "converter or the runtime" in converter and "report a bug" in converter
    assert "converter or the runtime" in hint("int8", reference=_report("float32", "full", keras=0.9,
                                                                          keras_head=0.9, device=0.8), device=0.79)
    # Keras itself loses it to the head's placement: at stride 16, a smaller output stride helps too.
    placement = hint("int8", "argmax", keras_head=0.8, device=0.8, reference=_report(
        "float32", "argmax", keras=0.9, keras_head=0.8, device=0.8))
    assert "argmax head's placement" in placement and "4x4 class ids (stride 16)" in placement, placement
    assert "smaller output stride" in placement and "quantiz" not in placement.lower()
    # Nothing lost beyond noise (a --max-drop below zero): the artifact's own conversion is named.
    assert hint("int8", device=0.8995).startswith("Cause: post-training int8 quantization")
    assert "converter or the runtime" in hint("float32", "full", device=0.8995)
    # No float32 export to compare with: the converter and the quantization count as one.
    assert "below Keras (90.00)" in hint("int8", reference=None)


def test_a_passing_report_has_neither_diagnosis_nor_hint(tmp_path):
    report = _report("int8", "native", keras=0.9, keras_head=0.9, device=0.9)
    assert report.passed
    data = json.load(open(report.save(os.path.join(tmp_path, "p.json"))))
    assert "diagnosis" not in data and "failure_hint" not in data and data["keras_head_miou"] == 0.9
