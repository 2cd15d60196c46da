"""LR-ASPP MobileNetV3 through the whole path: train.py, QAT, int8 and Edge TPU conversion, parity through the
device's Segmenter, the Edge TPU op report, XNNPACK's partitions, and ``python -m edge``.

Every test here is slow. The first five share the session fixture ``mnv3_run`` (mnv3_helpers: one train.py run
of LR-ASPP MobileNetV3-Small at 64 px and one export in three modes, about 100 s); the others convert or train
their own models because they need other configurations (10 to 40 s each; the random-weight conversions of
``random_int8`` are shared by the Edge TPU report and XNNPACK tests).
"""
import functools
import json

import cv2
import numpy as np
import pytest

from edge.benchmark import delegation
from edge.files import write_bytes
from kerasseg.export import edgetpu, tflite
from kerasseg.export.modes import Mode
from mnv3_helpers import CLASSES, MAX_DROP, PARITY_IMAGES, SIZE, h_swish_gate_ranges, run_python

pytestmark = pytest.mark.slow


def test_train_py_writes_an_lraspp_run_that_learned(mnv3_run):
    config = (mnv3_run.run_dir / "config.yaml").read_text()
    assert "arch: lraspp" in config and "backbone: mobilenetv3_small" in config
    metrics = json.loads((mnv3_run.run_dir / "metrics.json").read_text())
    # Predicting background everywhere scores about 0.15 on this data; 240 steps reach 0.74 to 0.78.
    assert metrics["best"]["mean_iou"] > 0.5


@pytest.mark.parametrize("mode", ["int8", "qat", "edgetpu"])
def test_qat_keeps_parity_within_2_points_and_post_training_int8_within_3_5(mnv3_run, mode):
    result = mnv3_run.results[mode]
    report = result.parity
    assert report.num_images == PARITY_IMAGES and report.miou_drop < MAX_DROP[mode], report.verdict()
    assert report.pixel_agreement > 0.95
    content = open(result.path, "rb").read()
    assert tflite.float_ops(content) == []
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_content=content)
    output = interpreter.get_output_details()[0]
    # The default head ends before the final upsampling, at LR-ASPP's stride 8.
    assert output["dtype"] == np.uint8 and list(output["shape"]) == [1, SIZE // 8, SIZE // 8, CLASSES]
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8


def test_edgetpu_report_maps_every_op_and_notes_the_gates_and_the_h_swish(mnv3_run):
    report = mnv3_run.results["edgetpu"].edgetpu
    ops = report["ops"]
    # h-swish is ADD + RELU6 and MUL ops, not HARD_SWISH (which the compiler leaves on the CPU): every op is on
    # Coral's table, so by the table the whole graph maps.
    assert report["first_unsupported"] is None and all(op["supported"] and op["mapped"] for op in ops)
    assert "HARD_SWISH" not in {op["op"] for op in ops} and report["mapped_mac_share"] == 1.0
    notes = [op["note"] for op in ops]
    assert notes.count(edgetpu.GATE_NOTE) == 9 + 1  # squeeze-excite in 9 of Small's 11 blocks, and LR-ASPP's gate
    assert notes.count(edgetpu.H_SWISH_NOTE) == 18  # stem, expand and depthwise of blocks 3-10, Conv_1
    assert all(op["op"] == "MUL" for op in ops if op["note"] in (edgetpu.GATE_NOTE, edgetpu.H_SWISH_NOTE))


def test_int8_exports_run_as_one_xnnpack_partition(mnv3_run, random_int8):
    """The fixture's int8, QAT and Edge TPU exports of LR-ASPP MobileNetV3-Small, and a random-weight LR-ASPP
    MobileNetV3-Large: XNNPACK takes every op but the uint8 <-> int8 QUANTIZE at the two ends, which it has no
    kernel for and which split nothing. (With one HARD_SWISH per h-swish, Small ran as 19 partitions.)"""
    for mode in ("int8", "qat", "edgetpu"):
        delegated = delegation(mnv3_run.results[mode].path)
        assert delegated.partitions == 1 and delegated.left_out == {"QUANTIZE": 2}, (mode, delegated.describe())
        # Each h-swish gate ReLU6(x + 3) is quantized over [0, 6]: QAT's fixed range, post-training's pinned one.
        assert h_swish_gate_ranges(mnv3_run.results[mode].path) == [(0.0, 6.0)] * 18, mode
    large = delegation(random_int8("mobilenetv3_large", False))
    assert large.partitions == 1 and large.left_out == {"QUANTIZE": 2}, large.describe()


def test_edge_runs_the_int8_artifact_headless(mnv3_run, tmp_path):
    frames = tmp_path / "frames"
    frames.mkdir()
    for i in range(3):
        frame = np.full((80, 96, 3), 90, np.uint8)
        cv2.circle(frame, (20 + 20 * i, 40), 15, (30, 30, 220), thickness=-1)
        cv2.imwrite(str(frames / f"{i}.png"), frame)
    stats = tmp_path / "stats.jsonl"
    run_python("-m", "edge", "--model", mnv3_run.results["int8"].path, "--source", frames, "--no-display",
               "--max-frames", "3", "--stats-json", stats)
    final = [json.loads(line) for line in stats.read_text().splitlines() if line.strip()][-1]
    assert final["final"] is True and final["frames"] == 3


def _random_int8(backbone, minimalistic, folder):
    """The path of a random-weight Edge-TPU-friendly LR-ASPP at SIZE converted to int8 (10-15 s each).

    Its batch norms first take the statistics of random images (one pass in training mode, momentum 0), as
    training would leave them. With the initial ones (mean 0, variance 1), activations shrink layer after layer
    to about 1e-8, and the int8 scales of LR-ASPP's final ADD end too far apart for XNNPACK's ADD, which then
    leaves it out; a trained model's do not.
    """
    from kerasseg.models import build_model
    from kerasseg.training.batchnorm import set_batch_norm_momentum
    model = build_model(arch="lraspp", backbone=backbone, num_classes=CLASSES, minimalistic=minimalistic,
                        edgetpu_friendly=True, input_shape=(SIZE, SIZE, 3))
    rng = np.random.default_rng(0)
    set_batch_norm_momentum(model, 0.0)
    model(rng.uniform(0, 255, (4, SIZE, SIZE, 3)).astype(np.float32), training=True)
    content = tflite.convert(model, mode=Mode.INT8, input_size=(SIZE, SIZE),
                             calibration=lambda: (rng.uniform(0, 255, (1, SIZE, SIZE, 3)).astype(np.float32)
                                                  for _ in range(2)))
    return write_bytes(str(folder / f"{backbone}{'_minimalistic' if minimalistic else ''}.tflite"), content)


@pytest.fixture(scope="module")
def random_int8(tmp_path_factory):
    """``random_int8(backbone, minimalistic)``: the path of ``_random_int8``'s file, converted once per module."""
    folder = tmp_path_factory.mktemp("mnv3_random")
    return functools.lru_cache(maxsize=None)(lambda backbone, minimalistic: _random_int8(backbone, minimalistic,
                                                                                          folder))


@pytest.mark.parametrize("backbone,minimalistic", [("mobilenetv3_large", False), ("mobilenetv3_large", True),
                                                   ("mobilenetv3_small", True)])
def test_edgetpu_report_for_each_new_model(random_int8, backbone, minimalistic):
    """Random-weight Edge-TPU-friendly LR-ASPP of each other variant (Small full is the fixture's), converted to
    int8 (one conversion each, shared with the XNNPACK test)."""
    with open(random_int8(backbone, minimalistic), "rb") as f:
        report = edgetpu.analyze(f.read())
    ops = [op.op for op in report.ops]
    assert "HARD_SWISH" not in ops and report.first_unsupported is None, report.format()
    assert report.mapped_mac_share == 1.0
    # LR-ASPP's head: pooled gate (MEAN, CONV_2D, LOGISTIC, MUL), upsample to stride 8, add.
    assert {"MEAN", "LOGISTIC", "MUL", "RESIZE_BILINEAR", "ADD"} <= set(ops)
    notes = [op.note for op in report.ops]
    if minimalistic:
        assert notes.count(edgetpu.GATE_NOTE) == 1 and notes.count(edgetpu.H_SWISH_NOTE) == 0
    else:
        assert notes.count(edgetpu.GATE_NOTE) == 8 + 1
        assert notes.count(edgetpu.H_SWISH_NOTE) == 20  # stem, expand and depthwise of blocks 6-14, Conv_1


def test_train_py_mixed_precision_and_mirrored_strategy(tmp_path):
    """Two steps through train.py with --mixed-precision (bfloat16 on a CPU) and MirroredStrategy (about 20 s)."""
    run_dir = tmp_path / "mixed"
    run_python("train.py", "--arch", "lraspp", "--backbone", "mobilenetv3_small", "--minimalistic",
               "--dataset", "synthetic:8?val=4&size=32", "--image-size", "32", "--epochs", "1",
               "--steps-per-epoch", "2", "--batch-size", "4", "--mixed-precision", "--strategy", "mirrored",
               "--output-dir", run_dir, "--quiet")
    config = (run_dir / "config.yaml").read_text()
    assert "precision_policy: mixed_bfloat16" in config and "strategy: mirrored" in config
    assert "minimalistic: true" in config
    from kerasseg.models import load_model
    model = load_model(run_dir / "best.keras")
    logits = model(np.full((1, 37, 45, 3), 128, np.float32), training=False)
    assert logits.dtype == "float32" and logits.shape == (1, 37, 45, CLASSES)
    assert np.all(np.isfinite(logits.numpy()))


def test_float_modes_convert_every_other_head():
    """With the fixture's int8, QAT and Edge TPU artifacts (native head), every mode and every head is converted
    once: float32 full, float16 argmax, dynamic-range full-argmax, on a random-weight LR-ASPP MobileNetV3-Small
    (three conversions, about 10 s each)."""
    from ai_edge_litert.interpreter import Interpreter

    from edge.artifact import Spec
    from kerasseg.export.heads import Head, cut
    from kerasseg.models import build_model
    model = build_model(arch="lraspp", backbone="mobilenetv3_small", num_classes=CLASSES, input_shape=(SIZE, SIZE, 3))
    image = np.random.default_rng(0).uniform(0, 255, (1, SIZE, SIZE, 3)).astype(np.float32)
    for mode, head in ((Mode.FLOAT32, Head.FULL), (Mode.FLOAT16, Head.ARGMAX), (Mode.DYNAMIC_RANGE, Head.FULL_ARGMAX)):
        ending, fields = cut(model, head)
        spec = Spec(labels=[str(i) for i in range(CLASSES)], input_size=(SIZE, SIZE), **fields)
        interpreter = Interpreter(model_content=tflite.convert(ending, mode=mode, input_size=(SIZE, SIZE)))
        interpreter.allocate_tensors()
        interpreter.set_tensor(interpreter.get_input_details()[0]["index"], image.astype(np.uint8))
        interpreter.invoke()
        output = interpreter.get_tensor(interpreter.get_output_details()[0]["index"])
        assert list(output.shape) == [1, *spec.output_size, *([] if head.ids else [CLASSES])], (mode, head)
        keras_output = np.asarray(ending(image.astype(np.uint8).astype(np.float32), training=False))
        if head.ids:  # the same class at nearly every pixel (float16 and dynamic-range weights round)
            assert np.mean(output == keras_output) > 0.95, (mode, head)
        else:
            np.testing.assert_allclose(output, keras_output, atol=1e-3 * np.abs(keras_output).max())
    assert fields["output_stride"] == 1 and cut(model, Head.ARGMAX)[1]["output_stride"] == 8
