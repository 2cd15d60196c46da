import logging
import os

import cv2
import numpy as np
import pytest

from edge.interpreter import (EdgeTPUError, ModelError, RuntimeNotFound, load_interpreter, resolve_runtime)
from edge import interpreter as interpreter_module
from edge.artifact import FlatbufferError
from edge.segmenter import (Segmenter, SpecMismatch, dequantize, derived_normalisation, input_lut,
                            letterbox_geometry)
from edge.upsample import Upsample, bilinear, decide, nearest
from edge_helpers import (BLUE, GREEN, H, LABELS, NATIVE_OUT, RED, W, expected_stripes, spec_for_native, spec_for_tiny,
                          stripes_frame)


def segmenter(path, **kw):
    return Segmenter.from_file(path, **kw)


def test_runtime_preference_and_override(monkeypatch):
    assert resolve_runtime() == "ai_edge_litert"
    with pytest.raises(RuntimeNotFound, match="pip install tflite-runtime"):
        resolve_runtime("tflite_runtime")
    with pytest.raises(ValueError, match="expected one of"):
        resolve_runtime("onnx")
    real = interpreter_module._import_runtime

    def without_litert(name):
        if name in ("ai_edge_litert", "tflite_runtime"):
            raise ImportError(name)
        return real(name)

    monkeypatch.setattr(interpreter_module, "_import_runtime", without_litert)
    assert resolve_runtime() == "tensorflow"  # the last resort, only when nothing else imports


@pytest.mark.parametrize("name", ["float32", "uint8", "int8", "spec_embedded"])
def test_scores_models_segment_the_stripes(tiny_models, name):
    # Spec-less float models assume [-1, 1]; these take raw pixels, so say so with mean/std.
    kw = dict(mean=(0, 0, 0), std=(1, 1, 1)) if name == "float32" else {}
    seg = segmenter(getattr(tiny_models, name), **kw)
    class_map = seg.segment(stripes_frame(48, 64))
    assert class_map.shape == (48, 64)
    np.testing.assert_array_equal(class_map, expected_stripes(48, 64))


@pytest.mark.parametrize("name", ["uint8", "int8"])
def test_dequantization_uses_the_interpreters_parameters(tiny_models, name):
    seg = segmenter(getattr(tiny_models, name))
    detail = seg.interpreter.get_output_details()[0]
    scale, zero_point = detail["quantization"]
    assert scale > 0 and seg.output_quantization == (scale, zero_point)
    frame = stripes_frame(H, W)
    tensor, _ = seg.preprocess(frame)
    # Input: raw pixel p quantized with the input tensor's own parameters.
    in_scale, in_zero = seg.interpreter.get_input_details()[0]["quantization"]
    rgb = frame[..., ::-1].astype(np.float64)
    expected_q = np.clip(np.rint(rgb / in_scale + in_zero), *(-128, 127) if name == "int8" else (0, 255))
    np.testing.assert_array_equal(tensor[0].astype(np.int32), expected_q.astype(np.int32))
    raw = seg.invoke(tensor)
    assert raw.dtype == np.dtype(name)
    scores = seg.scores(raw)[0]
    # Channel c is colour c / 255: 1.0 where the stripe is that colour, else 0.
    truth = np.eye(3, dtype=np.float32)[expected_stripes(H, W)]
    np.testing.assert_allclose(scores, truth, atol=2 * scale)
    if name == "int8":  # ignoring the zero point (-128 here) would be off by far more than the tolerance
        assert zero_point != 0
        assert np.abs(raw[0].astype(np.float32) * scale - truth).max() > 10 * scale


@pytest.mark.parametrize("name", ["uint8", "int8", "probability_uint8"])
def test_class_map_agrees_with_the_dequantized_scores(tiny_models, name):
    # The class map is taken in the integer domain; it must match thresholding/argmax of the real values.
    seg = segmenter(getattr(tiny_models, name))
    rng = np.random.default_rng(1)
    for _ in range(3):
        frame = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        tensor, geometry = seg.preprocess(frame)
        raw = seg.invoke(tensor)
        scores = seg.scores(raw)[0]
        expected = scores[..., 0] > 0.5 if seg.kind == "probability" else np.argmax(scores, axis=-1)
        np.testing.assert_array_equal(seg.postprocess(raw, geometry), expected.astype(np.uint8))


def test_dequantize_formula():
    q = np.array([-128, 0, 127], np.int8)
    np.testing.assert_allclose(dequantize(q, (0.5, -128)), [0.0, 64.0, 127.5])
    np.testing.assert_allclose(dequantize(np.array([3], np.uint8), (0.25, 1)), [0.5])
    floats = np.array([0.1, -2.0], np.float32)
    np.testing.assert_array_equal(dequantize(floats, (0.0, 0)), floats)


def test_input_range_derived_from_quantization():
    # int8 with scale 2/255, zero point 0 represents about [-1, 1]: pixel p feeds p - 128.
    mean, std = derived_normalisation(dtype=np.int8, quantization=(2 / 255, 0))
    lut = input_lut(dtype=np.int8, quantization=(2 / 255, 0), mean=mean, std=std)
    np.testing.assert_array_equal(lut[0, :, 0].astype(int), np.arange(256) - 128)
    # uint8 over [0, 1] (scale 1/255, zero point 0): raw pixels, no table at all.
    mean, std = derived_normalisation(dtype=np.uint8, quantization=(1 / 255, 0))
    assert input_lut(dtype=np.uint8, quantization=(1 / 255, 0), mean=mean, std=std) is None
    # float: explicit mean/std become (p - mean) / std.
    lut = input_lut(dtype=np.float32, quantization=(0.0, 0), mean=(127.5,) * 3, std=(127.5,) * 3)
    np.testing.assert_allclose(lut[0, [0, 255], 1], [-1.0, 1.0])


def test_probability_and_class_id_outputs(tiny_models):
    raw_pixels = dict(mean=(0, 0, 0), std=(1, 1, 1))
    seg = segmenter(tiny_models.probability, labels=("other", "red"), **raw_pixels)
    assert seg.kind == "probability" and seg.labels == ("other", "red")
    np.testing.assert_array_equal(seg.segment(stripes_frame()), (expected_stripes() == 0).astype(np.uint8))
    seg = segmenter(tiny_models.class_ids, labels=LABELS, **raw_pixels)
    assert seg.kind == "class_ids" and seg.spec.num_classes == 3
    np.testing.assert_array_equal(seg.segment(stripes_frame()), expected_stripes())


def test_spec_less_model_is_derived_from_tensors(tiny_models, caplog):
    seg = segmenter(tiny_models.uint8)
    assert seg.spec_source.startswith("none")
    assert seg.labels == ("class 0", "class 1", "class 2") and seg.spec.input_size == (H, W)
    with caplog.at_level(logging.WARNING):
        seg = segmenter(tiny_models.float32)
    assert "--mean/--std" in caplog.text  # a guess is never silent
    assert seg.mean == (127.5,) * 3
    seg = segmenter(tiny_models.uint8, labels=("r", "g", "b"))
    assert seg.labels == ("r", "g", "b")
    with pytest.raises(ValueError, match="3 classes, got 2 labels"):
        segmenter(tiny_models.uint8, labels=("r", "g"))


def test_spec_beside_the_model_is_read(tiny_models, tmp_path):
    model = tmp_path / "tiny.tflite"
    model.write_bytes(open(tiny_models.float32, "rb").read())
    spec_for_tiny(labels=("a", "b", "c")).save(tmp_path / "tiny.spec.json")
    seg = segmenter(str(model))
    assert seg.labels == ("a", "b", "c") and seg.spec_source.endswith("tiny.spec.json")
    assert seg.mean is None  # our models normalise inside the graph


@pytest.mark.parametrize("changes,needle", [
    (dict(input_size=(W, H)), "input_size: spec says [32, 24], model input is [24, 32]"),
    (dict(labels=("a", "b", "c", "d")), "spec has 4 labels, model outputs 3 channels"),
    (dict(output_kind="class_ids"), "output_kind: spec says 'class_ids'"),
])
def test_spec_contradicting_the_tensors_is_refused(tiny_models, tmp_path, changes, needle):
    model = tmp_path / "m.tflite"
    model.write_bytes(open(tiny_models.uint8, "rb").read())
    spec_for_tiny(**changes).save(tmp_path / "m.spec.json")
    with pytest.raises(SpecMismatch, match="contradicts the model") as info:
        segmenter(str(model))
    assert needle in str(info.value)


def test_non_segmentation_and_corrupt_models(tiny_models, tmp_path):
    with pytest.raises(ModelError, match=r"not a segmentation model: its output is \(1, 10\) float32"):
        segmenter(tiny_models.classifier)
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"this is not a model at all")
    with pytest.raises(FlatbufferError, match="not a TFLite flatbuffer.*found b' is '"):
        segmenter(str(junk))
    truncated = tmp_path / "truncated.tflite"
    truncated.write_bytes(open(tiny_models.uint8, "rb").read()[:200])
    with pytest.raises((FlatbufferError, ModelError), match="truncated|cannot load"):
        segmenter(str(truncated))
    with pytest.raises(ModelError, match="no such file"):
        load_interpreter(str(tmp_path / "missing.tflite"))


def test_edgetpu_missing_says_which_and_how(tiny_models, caplog):
    with pytest.raises(EdgeTPUError) as info:
        load_interpreter(tiny_models.uint8, edgetpu=True)
    text = str(info.value)
    assert "libedgetpu.so.1" in text and "not installed" in text and "libedgetpu1-std" in text
    assert "--fallback-cpu" not in text  # a library error; the command line adds its own flag (test_edge_cli)
    with caplog.at_level(logging.WARNING):
        loaded = load_interpreter(tiny_models.uint8, edgetpu=True, fallback_cpu=True, threads=1)
    assert loaded.delegate is None and "running on the CPU" in caplog.text
    assert "on CPU, threads 1" in loaded.describe()


def test_letterbox_keeps_aspect_and_crops_padding(tiny_models, tmp_path):
    geometry = letterbox_geometry((48, 128), (H, W), "letterbox")
    assert geometry.box == (6, 0, 12, 32)  # scale 1/4: 12 rows of content, centred
    model = tmp_path / "lb.tflite"
    model.write_bytes(open(tiny_models.uint8, "rb").read())
    spec_for_tiny(resize_mode="letterbox").save(tmp_path / "lb.spec.json")
    seg = segmenter(str(model))
    frame = stripes_frame(48, 128)
    tensor, frame_geometry = seg.preprocess(frame)
    assert (tensor[0, :6] == tensor[0, 0, 0]).all()  # padding rows are uniform
    # Black padding would segment as class 0 ("red"); cropping it keeps the map exact.
    np.testing.assert_array_equal(seg.segment(frame), expected_stripes(48, 128))
    # At the model's resolution the padding is still there (black: class 0); the grid places the content only.
    small = decide(seg.invoke(tensor)[0]).astype(np.uint8)
    assert small.shape == (H, W) and (small[:6] == 0).all()
    np.testing.assert_array_equal(nearest(seg.grid(frame_geometry), small), seg.segment(frame))


def test_frame_validation(tiny_models):
    seg = segmenter(tiny_models.uint8)
    with pytest.raises(ValueError, match=r"expected an \(H, W, 3\) uint8 BGR image, got \(4, 4\)"):
        seg.preprocess(np.zeros((4, 4), np.uint8))
    assert os.path.basename(seg.model_path) == "uint8.tflite"


def native_segmenter(path, tmp_path, name, **changes):
    """The model at ``path`` with a spec (fields ``changes``) beside it."""
    model = tmp_path / f"{name}.tflite"
    model.write_bytes(open(path, "rb").read())
    spec_for_native(**changes).save(tmp_path / f"{name}.spec.json")
    return segmenter(str(model))


def scene_frame(height, width):
    """A BGR frame of coloured discs on a dark background: regions a few output pixels wide."""
    frame = np.full((height, width, 3), 30, np.uint8)
    for (cy, cx, r), color in zip(((0.3, 0.3, 0.25), (0.6, 0.7, 0.3), (0.8, 0.2, 0.2)), (RED, GREEN, BLUE)):
        cv2.circle(frame, (int(cx * width), int(cy * height)), int(r * min(height, width)), color, thickness=-1)
    return frame


@pytest.mark.parametrize("resize_mode", ["stretch", "letterbox"])
@pytest.mark.parametrize("alignment", ["half_pixel", "legacy", "stride"])
def test_native_outputs_reach_the_frame(native_models, tmp_path, resize_mode, alignment):
    fields = dict(resize_mode=resize_mode, output_alignment=alignment)
    frame = scene_frame(48, 80)
    for name in ("float32", "uint8"):
        seg = native_segmenter(getattr(native_models, name), tmp_path, name, **fields)
        tensor, geometry = seg.preprocess(frame)
        raw = seg.invoke(tensor)
        assert raw.shape == (1, *NATIVE_OUT, 3) and seg.output_size == NATIVE_OUT
        class_map = seg.segment(frame)
        assert class_map.shape == (48, 80) and class_map.dtype == np.uint8
        # The classes of the bilinear scores, as the full head computes them, at every frame pixel.
        grid = seg.grid(geometry)
        np.testing.assert_array_equal(class_map, decide(bilinear(grid, seg.scores(raw)[0])))
        assert set(np.unique(class_map)) == {0, 1, 2}
        seg.upsample = Upsample.NEAREST
        np.testing.assert_array_equal(seg.segment(frame), nearest(grid, np.argmax(raw[0], -1)))
    ids = native_segmenter(native_models.ids, tmp_path, "ids", output_kind="class_ids", **fields)
    tensor, geometry = ids.preprocess(frame)
    raw = ids.invoke(tensor)
    assert raw.shape == (1, *NATIVE_OUT)
    np.testing.assert_array_equal(ids.segment(frame), nearest(ids.grid(geometry), raw[0]))


@pytest.mark.parametrize("changes,needle", [
    (dict(output_stride=8), "output_size: spec says output_stride 8, so an output of [4, 4] for input [26, 30], "
                            "model output is [7, 8]"),
    (dict(output_stride=1), "output_size: spec says output_stride 1, so an output of [26, 30]"),
])
def test_native_spec_contradicting_the_output_is_refused(native_models, tmp_path, changes, needle):
    with pytest.raises(SpecMismatch, match="contradicts the model") as info:
        native_segmenter(native_models.uint8, tmp_path, "m", **changes)
    assert needle in str(info.value)


def test_full_output_with_a_native_spec_is_refused(tiny_models, tmp_path):
    model = tmp_path / "full.tflite"
    model.write_bytes(open(tiny_models.uint8, "rb").read())
    spec_for_tiny(output_stride=4).save(tmp_path / "full.spec.json")
    with pytest.raises(SpecMismatch, match=r"output_size: spec says output_stride 4, so an output of \[6, 8\] "
                                           r"for input \[24, 32\], model output is \[24, 32\]"):
        segmenter(str(model))
