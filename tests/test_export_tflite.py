"""Each conversion mode on a tiny model, run in the LiteRT interpreter; spec metadata round trip."""
import numpy as np
import pytest
from export_helpers import LABELS, synthetic_batches, tiny_model

from kerasseg.export import tflite
from kerasseg.export.modes import Mode
from kerasseg.export.parity import TFLiteSegmenter, parity_report, to_uint8
from kerasseg.artifact import FlatbufferError, Spec, embed_spec, load_spec, read_artifact

SIZE = 32


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.fixture(scope="module")
def batches():
    return synthetic_batches(count=8, size=SIZE)


def _calibration(batches, steps=8):
    return lambda: tflite.calibration_images(batches, steps=steps)


@pytest.fixture(scope="module")
def converted(model, batches):
    return {mode: tflite.convert(model, mode=mode, input_size=(SIZE, SIZE), calibration=_calibration(batches))
            for mode in (Mode.FLOAT32, Mode.FLOAT16, Mode.DYNAMIC_RANGE, Mode.INT8)}


@pytest.mark.parametrize("mode", [Mode.FLOAT32, Mode.FLOAT16, Mode.DYNAMIC_RANGE, Mode.INT8])
def test_each_mode_runs_on_uint8_input_at_a_static_size(converted, batches, mode):
    segmenter = TFLiteSegmenter(converted[mode])
    assert segmenter.input["dtype"] == np.uint8
    assert list(segmenter.input["shape"]) == [1, SIZE, SIZE, 3]
    assert list(segmenter.output["shape"]) == [1, SIZE, SIZE, len(LABELS)]
    prediction = segmenter.predict(to_uint8(batches[0][0][0]))
    assert prediction.shape == (SIZE, SIZE) and prediction.max() < len(LABELS)


def test_float32_tflite_matches_keras_per_pixel(model, converted, batches):
    report = parity_report(model, converted[Mode.FLOAT32], batches, labels=LABELS, mode="float32")
    assert report.num_images == 8
    assert report.pixel_agreement >= 0.999
    assert abs(report.miou_drop) < 0.1


def test_full_integer_model_has_no_float_op_and_takes_raw_pixels(converted):
    content = converted[Mode.INT8]
    assert tflite.float_ops(content) == []
    segmenter = TFLiteSegmenter(content)
    assert segmenter.input["quantization"] == (1.0, 0)
    assert segmenter.output["dtype"] == np.uint8  # MediaPipe's ImageSegmenter misreads int8 scores


def test_float_modes_do_contain_float_ops(converted):
    # The check above is meaningful: it does see float tensors when they are there.
    assert tflite.float_ops(converted[Mode.FLOAT32])


def test_int8_output_dequantizes_close_to_keras_scores(model, converted, batches):
    segmenter = TFLiteSegmenter(converted[Mode.INT8])
    image = to_uint8(batches[0][0][0])
    scale, zero_point = segmenter.output["quantization"]
    scores = scale * (segmenter.scores(image).astype(np.float32) - zero_point)
    expected = np.asarray(model(image[None].astype(np.float32)))[0]
    spread = expected.max() - expected.min()
    assert np.mean(np.abs(scores - expected)) < 0.05 * spread


def test_spec_round_trips_through_the_tflite_file(converted, tmp_path):
    spec = Spec(labels=LABELS, input_size=(SIZE, SIZE), output_kind="logits")
    path = tmp_path / "m.tflite"
    path.write_bytes(embed_spec(converted[Mode.INT8], spec))
    assert load_spec(path)[0] == spec
    path.write_bytes(embed_spec(path.read_bytes(), spec.replace(ignore_label=254)))
    found = read_artifact(path)
    assert found.spec.ignore_label == 254  # replaced, not duplicated
    assert found.standard.labels == LABELS
    segmenter = TFLiteSegmenter(path.read_bytes())  # still a runnable model
    assert segmenter.predict(np.zeros((SIZE, SIZE, 3), np.uint8)).shape == (SIZE, SIZE)


def test_a_model_without_a_spec_reads_as_foreign(converted, tmp_path):
    path = tmp_path / "plain.tflite"
    path.write_bytes(converted[Mode.FLOAT32])
    assert load_spec(path) == (None, None)


def test_corrupt_tflite_is_rejected(tmp_path):
    path = tmp_path / "bad.tflite"
    path.write_bytes(b"not a flatbuffer at all")
    with pytest.raises(FlatbufferError, match="bad.tflite"):
        load_spec(path)


def test_zero_calibration_steps_is_an_error(batches):
    with pytest.raises(ValueError, match="calibration_steps"):
        next(tflite.calibration_images(batches, steps=0))


def test_mode_parse_rejects_unknown_names():
    assert Mode.parse("dynamic-range") is Mode.DYNAMIC_RANGE
    with pytest.raises(ValueError, match="valid choices"):
        Mode.parse("int4")


def test_the_edge_runtime_reads_the_spec_we_embed(converted, tmp_path):
    from kerasseg.artifact import load_spec
    spec = Spec(labels=LABELS, input_size=(SIZE, SIZE))
    path = tmp_path / "model_int8.tflite"
    path.write_bytes(embed_spec(converted[Mode.INT8], spec))
    loaded, where = load_spec(path)
    assert loaded == spec and "kerasseg_spec" in where
