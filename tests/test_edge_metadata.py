import json

import pytest

from edge.artifact import (SPEC_METADATA_NAME, FlatbufferError, custom_ops, load_spec, read_metadata,
                           spec_path_beside)
from edge.artifact import SpecError
from edge_helpers import embed_metadata, spec_for_tiny


def test_reads_the_embedded_spec_without_tensorflow_schema(tiny_models):
    entries = read_metadata(tiny_models.spec_embedded)
    assert SPEC_METADATA_NAME in entries
    assert json.loads(entries[SPEC_METADATA_NAME]) == spec_for_tiny().to_dict()
    spec, where = load_spec(tiny_models.spec_embedded)
    assert spec == spec_for_tiny() and SPEC_METADATA_NAME in where
    # The converter's own entries are read too, so the reader walks every metadata table.
    assert "min_runtime_version" in read_metadata(tiny_models.float32)
    assert load_spec(tiny_models.float32) == (None, None)
    assert custom_ops(tiny_models.float32) == []


def test_embedded_wins_over_the_file_beside(tiny_models, tmp_path):
    model = tmp_path / "m.tflite"
    model.write_bytes(open(tiny_models.spec_embedded, "rb").read())
    beside = spec_path_beside(model)
    assert beside == str(tmp_path / "m.spec.json")
    spec_for_tiny(labels=("x", "y", "z")).save(beside)
    assert load_spec(model)[0].labels == ("red", "green", "blue")
    plain = tmp_path / "plain.tflite"
    plain.write_bytes(tiny_models.float32_bytes)
    spec_for_tiny(labels=("x", "y", "z")).save(spec_path_beside(plain))
    assert load_spec(plain)[0].labels == ("x", "y", "z")


def test_several_entries_and_a_malformed_spec(tiny_models, tmp_path):
    blob = embed_metadata(tiny_models.float32_bytes, "other", b"\x00\x01")
    blob = embed_metadata(blob, SPEC_METADATA_NAME, b'{"labels": ["a"], "input_size": [24, 32]}')
    path = tmp_path / "bad_spec.tflite"
    path.write_bytes(blob)
    entries = read_metadata(path)
    assert entries["other"] == b"\x00\x01"
    with pytest.raises(SpecError, match=r"bad_spec.tflite \(metadata 'kerasseg_spec'\).*at least 2 classes"):
        load_spec(path)


def test_corrupt_files_are_named(tmp_path, tiny_models):
    short = tmp_path / "short.tflite"
    short.write_bytes(b"TF")
    with pytest.raises(FlatbufferError, match="not a TFLite flatbuffer.*found 2 bytes"):
        read_metadata(short)
    cut = tmp_path / "cut.tflite"
    data = tiny_models.float32_bytes
    cut.write_bytes(data[:len(data) // 3])
    with pytest.raises(FlatbufferError, match="cut.tflite.*(truncated|past the end)"):
        read_metadata(cut)
    with pytest.raises(FlatbufferError, match="cannot read"):
        read_metadata(tmp_path / "absent.tflite")
