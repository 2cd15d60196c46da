"""Each conversion mode on a tiny model, run in the LiteRT interpreter; spec metadata round trip."""
import numpy as np
import pytest
from export_helpers import LABELS, device_predict, synthetic_batches, tiny_model, trained_tiny_model

from kerasseg.export import tflite
from kerasseg.export.modes import Mode
from kerasseg.export.parity import device_segmenter, parity_report, to_uint8
from edge.artifact import FlatbufferError, Spec, embed_spec, load_spec, read_artifact

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
    with device_segmenter(converted[mode]) as segmenter:
        assert segmenter.input_dtype == np.uint8 and segmenter.input_size == (SIZE, SIZE)
        output = segmenter.interpreter.get_output_details()[0]
        assert list(output["shape"]) == [1, SIZE, SIZE, len(LABELS)]
        prediction = device_predict(segmenter, to_uint8(batches[0][0][0]))
    assert prediction.shape == (SIZE, SIZE) and prediction.max() < len(LABELS)


def _with_spec(content):
    return embed_spec(content, Spec(labels=LABELS, input_size=(SIZE, SIZE)))


def test_float32_tflite_matches_keras_per_pixel(model, converted, batches):
    report = parity_report(model, _with_spec(converted[Mode.FLOAT32]), batches, mode="float32")
    assert report.num_images == 8 and report.labels == list(LABELS) and report.head == "full"
    assert report.pixel_agreement >= 0.999 and report.miou_vs_keras >= 0.99
    assert abs(report.miou_drop) < 0.1 and report.passed
    assert "edge.segmenter.Segmenter" in report.runner


def test_parity_needs_the_spec_inside_the_artifact(model, converted, batches):
    with pytest.raises(ValueError, match="kerasseg_spec"):
        parity_report(model, converted[Mode.FLOAT32], batches, mode="float32")


@pytest.mark.slow
def test_parity_goes_through_the_device_post_processing(batches, monkeypatch):
    """Slow: trains the tiny model 30 epochs, so that its parity means something; it converts it once, float32."""
    model = trained_tiny_model(batches, epochs=30)
    content = _with_spec(tflite.convert(model, mode=Mode.FLOAT32, input_size=(SIZE, SIZE)))
    good = parity_report(model, content, batches, mode="float32")
    assert good.passed and good.keras_miou > 0.5
    # Break the edge Segmenter's post-processing (its class map comes out upside down): parity must fail.
    from edge.segmenter import Segmenter
    postprocess = Segmenter.postprocess
    monkeypatch.setattr(Segmenter, "postprocess", lambda self, *a, **k: postprocess(self, *a, **k)[::-1])
    broken = parity_report(model, content, batches, mode="float32")
    assert not broken.passed and broken.miou_drop > 10 and broken.pixel_agreement < 0.9
    assert "FAILED" in broken.format()


def test_drop_has_one_sign_everywhere(model, converted, batches, tmp_path):
    report = parity_report(model, _with_spec(converted[Mode.FLOAT32]), batches, mode="float32")
    report.device_miou = report.keras_miou - 0.0123  # the device lost 1.23 points
    assert report.miou_drop == pytest.approx(1.23)
    mIoU_row = [line for line in report.format().splitlines() if line.startswith("mIoU")][0]
    assert mIoU_row.split()[-1] == "+1.23" and "drop" in report.format().splitlines()[2 if report.runner else 1]
    assert "mIoU drop +1.23 points" in report.verdict()
    import json
    saved = json.load(open(report.save(tmp_path / "p.json")))
    assert saved["miou_drop_points"] == pytest.approx(1.23) and "positive" in saved["drop_convention"]


def test_full_integer_model_has_no_float_op_and_takes_raw_pixels(converted):
    content = converted[Mode.INT8]
    assert tflite.float_ops(content) == []
    with device_segmenter(content) as segmenter:
        assert segmenter.input_quantization == (1.0, 0)
        assert segmenter.interpreter.get_output_details()[0]["dtype"] == np.uint8  # scores as uint8


def test_float_modes_do_contain_float_ops(converted):
    # The check above is meaningful: it does see float tensors when they are there.
    assert tflite.float_ops(converted[Mode.FLOAT32])


def test_int8_output_dequantizes_close_to_keras_scores(model, converted, batches):
    image = to_uint8(batches[0][0][0])
    with device_segmenter(converted[Mode.INT8]) as segmenter:
        tensor, _ = segmenter.preprocess(np.ascontiguousarray(image[..., ::-1]))
        scores = segmenter.scores(segmenter.invoke(tensor))[0]
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
    with device_segmenter(path.read_bytes()) as segmenter:  # still a runnable model
        assert device_predict(segmenter, np.zeros((SIZE, SIZE, 3), np.uint8)).shape == (SIZE, SIZE)


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
    from edge.artifact import load_spec
    spec = Spec(labels=LABELS, input_size=(SIZE, SIZE))
    path = tmp_path / "model_int8.tflite"
    path.write_bytes(embed_spec(converted[Mode.INT8], spec))
    loaded, where = load_spec(path)
    assert loaded == spec and "kerasseg_spec" in where
