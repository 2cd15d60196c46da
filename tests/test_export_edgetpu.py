"""The Edge TPU op report, from the .tflite flatbuffer and from a compiler log."""
import pytest
from export_helpers import synthetic_batches, tiny_model

from kerasseg.backend import keras, layers
from kerasseg.export import edgetpu, tflite
from kerasseg.export.modes import Mode

SIZE = 32


def _int8(model, batches):
    return tflite.convert(model, mode=Mode.INT8, input_size=(SIZE, SIZE),
                          calibration=lambda: tflite.calibration_images(batches, steps=4))


@pytest.fixture(scope="module")
def batches():
    return synthetic_batches(count=4, size=SIZE)


def test_half_pixel_resize_is_flagged_and_splits_the_graph(batches):
    report = edgetpu.analyze(_int8(tiny_model(), batches))
    first = report.first_unsupported
    assert first is not None and first.op == "RESIZE_BILINEAR" and "half-pixel" in first.reason
    ops = [op.op for op in report.ops]
    assert ops[0] == "QUANTIZE" and "CONV_2D" in ops
    assert all(op.mapped for op in report.ops[: first.index])
    assert not any(op.mapped for op in report.ops[first.index:])  # everything after the split is on the CPU
    assert 0 < report.mapped_op_share < 1 and 0 < report.mapped_mac_share < 1
    text = report.format()
    assert "NOT FOUND" in text and "RESIZE_BILINEAR" in text
    # The terminal gets a summary: ops mapped of the total, the op where the graph splits and why, what follows.
    summary = report.summary("model.report.json")
    after = len(report.ops) - first.index - 1
    assert summary.splitlines()[0].startswith(f"Edge TPU: {first.index} of {len(report.ops)} ops would map")
    assert f"on the CPU: #{first.index} RESIZE_BILINEAR: uses half-pixel centres" in summary
    assert (f"and the {after} ops after it" in summary) == (after > 0)
    assert "bytes" in summary and "op by op: model.report.json" in summary and len(summary.splitlines()) <= 5


def test_unequal_dilation_is_flagged_with_its_multiply_adds(batches):
    image = keras.Input((None, None, 3), name="image")
    x = layers.Conv2D(4, 3, padding="same", dilation_rate=(2, 1))(image)
    x = layers.Conv2D(3, 1, name="logits")(x)
    report = edgetpu.analyze(_int8(keras.Model(image, x), batches))
    conv = [op for op in report.ops if op.op == "CONV_2D"][0]
    assert not conv.supported and "dilation 2x1" in conv.reason
    assert conv.macs == SIZE * SIZE * 4 * 3 * 3 * 3


def test_float_model_is_not_edge_tpu_ready(batches):
    report = edgetpu.analyze(tflite.convert(tiny_model(), mode=Mode.FLOAT32, input_size=(SIZE, SIZE)))
    assert report.mapped_op_share == 0.0
    assert report.first_unsupported.index == 0


def test_edgetpu_friendly_model_maps_every_op(batches):
    image = keras.Input((None, None, 3), name="image")
    x = layers.Rescaling(1 / 127.5, offset=-1.0)(image)
    x = layers.Conv2D(8, 3, strides=2, padding="same", activation="relu")(x)
    x = layers.DepthwiseConv2D(3, padding="same", dilation_rate=2)(x)
    x = layers.Conv2D(3, 1)(x)
    x = layers.Resizing(SIZE, SIZE)(x)  # TF2 resize: half-pixel centres, flagged
    report = edgetpu.analyze(_int8(keras.Model(image, x), batches))
    assert [op.op for op in report.ops if not op.supported] == ["RESIZE_BILINEAR"]
    assert report.mapped_mac_share == 1.0  # the split comes after every convolution


COMPILER_LOG = """Edge TPU Compiler version 16.0.384591198
Input: model.tflite
Output: model_edgetpu.tflite

Operator                       Count      Status

QUANTIZE                       1          Mapped to Edge TPU
CONV_2D                        12         Mapped to Edge TPU
RESIZE_BILINEAR                1          Operation is otherwise supported, but not mapped due to some unspecified limitation
ARG_MAX                        1          Operation not supported
Number of operations that will run on Edge TPU: 13
Number of operations that will run on CPU: 2
"""


def test_compiler_log_is_parsed():
    parsed = edgetpu.parse_compiler_log(COMPILER_LOG)
    assert parsed["ops_on_tpu"] == 13 and parsed["ops_on_cpu"] == 2
    assert {"op": "ARG_MAX", "count": 1, "status": "Operation not supported"} in parsed["ops"]
    assert [row["op"] for row in parsed["ops"]] == ["QUANTIZE", "CONV_2D", "RESIZE_BILINEAR", "ARG_MAX"]


def test_missing_compiler_is_reported_not_hidden(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    result = edgetpu.compile_model(str(tmp_path / "m.tflite"), out_dir=str(tmp_path))
    assert result["available"] is False and "not on PATH" in result["message"]


def test_a_fake_compiler_on_path_is_run_and_its_log_parsed(tmp_path, monkeypatch):
    fake = tmp_path / "edgetpu_compiler"
    log = tmp_path / "log.txt"
    log.write_text(COMPILER_LOG)
    # Mimics the real CLI: -s -o OUTDIR MODEL writes OUTDIR/<name>_edgetpu.tflite and prints its table.
    fake.write_text('#!/bin/sh\ncp "$4" "$3/$(basename "$4" .tflite)_edgetpu.tflite"\ncat ' + str(log) + "\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    model = tmp_path / "m.tflite"
    model.write_bytes(b"model bytes")
    result = edgetpu.compile_model(str(model), out_dir=str(tmp_path))
    assert result["available"] and result["returncode"] == 0 and result["ops_on_cpu"] == 2
    assert (tmp_path / "m_edgetpu.tflite").read_bytes() == b"model bytes"
    with pytest.raises(FileExistsError, match="overwrite"):
        edgetpu.compile_model(str(model), out_dir=str(tmp_path))


def _legacy_upsample_model(classes=3):
    """Conv at stride 2, then a legacy-aligned bilinear upsample to the input size (on Coral's list)."""
    from kerasseg.models.layers import ResizeToReference
    image = keras.Input((None, None, 3), name="image")
    x = layers.Conv2D(4, 3, strides=2, padding="same", activation="relu")(image)
    x = layers.Conv2D(classes, 1)(x)
    x = ResizeToReference(half_pixel_centers=False)([x, image])
    return keras.Model(image, x)


def _converted_at(model, size):
    batches = synthetic_batches(count=4, size=size)
    return tflite.convert(model, mode=Mode.INT8, input_size=(size, size),
                          calibration=lambda: tflite.calibration_images(batches, steps=2))


@pytest.mark.parametrize("size, refused", [(64, False), (160, True)])
def test_resize_larger_than_128_a_side_is_flagged_with_its_source(size, refused):
    report = edgetpu.analyze(_converted_at(_legacy_upsample_model(), size))
    resize = [op for op in report.ops if op.op.startswith("RESIZE")]
    assert len(resize) == 1
    assert resize[0].supported is not refused
    if refused:
        assert f"{size}x{size}" in resize[0].reason and "#31" in resize[0].reason and "#187" in resize[0].reason
        assert report.first_unsupported is resize[0]
    else:
        assert resize[0].mapped and "depending on" in resize[0].note


def test_host_transfer_counts_the_input_and_the_split_tensor():
    size = 160  # the upsample to 160x160 is refused, so the split is just before it
    report = edgetpu.analyze(_converted_at(_legacy_upsample_model(), size))
    by_where = {t["where"]: t for t in report.transfers}
    assert set(by_where) == {"input", "split"}  # the output is written on the CPU, after the split
    assert by_where["input"]["bytes"] == size * size * 3  # uint8 RGB
    half = size // 2
    assert by_where["split"]["shape"] == [1, half, half, 3] and by_where["split"]["bytes"] == half * half * 3
    assert report.transfer_bytes == size * size * 3 + half * half * 3
    times = report.transfer_ms()
    assert times["usb2"] == pytest.approx(1e3 * report.transfer_bytes / edgetpu.USB_RATES["usb2"])
    assert times["usb2"] > times["usb3"] > 0
    data = report.to_dict()["host_transfer"]
    assert data["bytes_per_frame"] == report.transfer_bytes and "usb3" in data["ms_per_frame"]
    assert "USB 2" in report.format()


def test_host_transfer_of_a_fully_mapped_graph_is_input_plus_output():
    size = 64
    report = edgetpu.analyze(_converted_at(_legacy_upsample_model(), size))
    assert report.first_unsupported is None
    assert [t["where"] for t in report.transfers] == ["input", "output"]
    assert report.transfer_bytes == size * size * 3 + size * size * 3  # int8 scores, 3 classes


def test_usb2_rate_matches_the_measured_figure():
    # 513x513x21 int8 scores per frame took about 160 ms over USB 2 (issue 10).
    assert 1e3 * 513 * 513 * 21 / edgetpu.USB_RATES["usb2"] == pytest.approx(160, rel=0.1)
