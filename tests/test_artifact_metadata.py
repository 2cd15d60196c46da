"""The standard TFLite Model Metadata beside our spec: written, read back, obeyed and checked by edge."""
import os
import subprocess
import sys

import numpy as np
import pytest

from edge.cli import EXIT_BAD_INPUT, main
from edge.interpreter import load_interpreter
from edge.segmenter import Segmenter
from edge_helpers import LABELS, spec_for_tiny, write_video
from edge.artifact import (RAW_PIXELS, SPEC_METADATA_NAME, STANDARD_METADATA_NAME, MetadataError,
                           MetadataMismatch, embed_metadata, embed_spec, read_artifact, read_metadata)
from edge.artifact import writer as writer_module
from edge.artifact.tflite_file import associated_files
from edge.artifact.writer import with_metadata

# ImageNet's normalisation: per channel, and unlike the [-1, 1] guess for float inputs without metadata.
IMAGENET_MEAN, IMAGENET_STD = (123.675, 116.28, 103.53), (58.395, 57.12, 57.375)


def _bytes(path) -> bytes:
    with open(path, "rb") as f:
        return f.read()


def _write(tmp_path, name: str, content: bytes) -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def _outputs(path: str, tensor: np.ndarray) -> np.ndarray:
    interpreter = load_interpreter(path, threads=1).interpreter
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], tensor)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"])


@pytest.mark.parametrize("name,kind,labels", [
    ("float32", "logits", LABELS), ("uint8", "logits", LABELS), ("int8", "logits", LABELS),
    ("class_ids", "class_ids", LABELS), ("probability", "probabilities", ("other", "red")),
])
def test_round_trip_keeps_the_graph_and_states_the_spec(tiny_models, tmp_path, name, kind, labels):
    spec = spec_for_tiny(labels=labels, output_kind=kind)
    original = getattr(tiny_models, name)
    path = _write(tmp_path, "m.tflite", embed_spec(_bytes(original), spec))
    found = read_artifact(path)
    assert found.spec == spec and SPEC_METADATA_NAME in found.spec_source
    assert found.standard.labels == labels and found.standard.output_kind == kind
    assert found.standard.normalisation() == RAW_PIXELS  # our graphs normalise: a client feeds raw pixels
    assert found.standard.activation == {"logits": "softmax", "class_ids": "none", "probabilities": "none"}[kind]
    assert "min_runtime_version" in read_metadata(path)  # the converter's entries survive
    details = load_interpreter(original, threads=1).interpreter.get_input_details()[0]
    tensor = np.random.default_rng(0).integers(0, 256, details["shape"]).astype(details["dtype"])
    np.testing.assert_array_equal(_outputs(path, tensor), _outputs(original, tensor))


def test_embedding_again_replaces_both_entries(tiny_models, tmp_path):
    once = embed_spec(_bytes(tiny_models.uint8), spec_for_tiny())
    twice = embed_spec(once, spec_for_tiny(labels=("x", "y", "z")))
    path = _write(tmp_path, "twice.tflite", twice)
    assert list(read_metadata(path)).count(STANDARD_METADATA_NAME) == 1
    assert len(read_metadata(path)) == len(read_metadata(_write(tmp_path, "once.tflite", once)))
    assert associated_files(twice, source="twice") == {"labels.txt": b"x\ny\nz\n"}  # the old archive is gone
    found = read_artifact(path)
    assert found.spec.labels == found.standard.labels == ("x", "y", "z")
    assert Segmenter.from_file(path, threads=1).labels == ("x", "y", "z")
    other = with_metadata(twice, {"other": b"\x01"})  # without files: the packed labels stay
    assert associated_files(other, source="other") == {"labels.txt": b"x\ny\nz\n"}
    assert read_artifact(_write(tmp_path, "other.tflite", other)).standard.labels == ("x", "y", "z")


def test_foreign_float_model_is_normalised_as_its_metadata_says(tiny_models, tmp_path):
    # The tiny float model scores class c by input channel c, and its graph applies no mean/std.
    # Pixel RGB (110, 100, 95): red wins on raw pixels and under the [-1, 1] guess, blue under ImageNet's.
    content = embed_metadata(_bytes(tiny_models.float32), labels=("r", "g", "b"), output_kind="logits",
                             mean=IMAGENET_MEAN, std=IMAGENET_STD)
    path = _write(tmp_path, "foreign.tflite", content)
    seg = Segmenter.from_file(path, threads=1)
    assert seg.spec_source.startswith("none") and seg.labels == ("r", "g", "b")
    assert seg.mean == IMAGENET_MEAN and seg.std == IMAGENET_STD
    assert seg.sources == {"normalisation": "standard metadata", "labels": "standard metadata",
                           "output kind": "standard metadata"}
    assert "normalisation from standard metadata" in seg.describe()
    frame = np.zeros((12, 16, 3), np.uint8)
    frame[:] = (95, 100, 110)  # BGR
    tensor, _ = seg.preprocess(frame)
    expected = (np.array([110, 100, 95], np.float32) - IMAGENET_MEAN) / IMAGENET_STD
    np.testing.assert_allclose(tensor[0, 0, 0], expected, rtol=1e-5)
    assert (seg.segment(frame) == 2).all()
    # Flags still override the metadata.
    seg = Segmenter.from_file(path, threads=1, mean=(127.5,) * 3, std=(127.5,) * 3, labels=("a", "b", "c"))
    assert (seg.segment(frame) == 0).all() and seg.labels == ("a", "b", "c")
    assert seg.sources["normalisation"] == seg.sources["labels"] == "flags"


@pytest.mark.parametrize("change,needle", [
    (dict(labels=("red", "green", "sky")), "labels: spec has ['red', 'green', 'blue'], standard metadata has"),
    (dict(mean=(127.5,), std=(127.5,)), "normalisation: spec says the graph normalises"),
    (dict(output_kind="probabilities"), "output kind: spec says 'logits', standard metadata says 'probabilities'"),
])
def test_spec_and_standard_metadata_that_contradict_are_refused(tiny_models, tmp_path, change, needle):
    artifact = embed_spec(_bytes(tiny_models.uint8), spec_for_tiny())
    fields = dict(labels=LABELS, output_kind="logits")
    fields.update(change)
    edited = embed_metadata(artifact, **fields)  # rewrites TFLITE_METADATA only; the spec entry stays
    path = _write(tmp_path, "edited.tflite", edited)
    assert read_artifact(path).spec == spec_for_tiny()
    with pytest.raises(MetadataMismatch, match="contradict") as info:
        Segmenter.from_file(path, threads=1)
    assert needle in str(info.value) and path in str(info.value)


def _bad_models(tiny_models, tmp_path, monkeypatch) -> dict[str, str]:
    plain = _bytes(tiny_models.float32)
    made = {"garbage": with_metadata(plain, {STANDARD_METADATA_NAME: b"\x10\x00\x00\x00M001 this is not a table"}),
            "wrong_identifier": with_metadata(plain, {STANDARD_METADATA_NAME: b"{\"json\": \"is not it\"}"}),
            "few_labels": embed_metadata(plain, labels=("r", "g"), output_kind="logits")}
    with pytest.raises(MetadataError, match=r"1 or 3 values.*got mean \[1.0, 2.0\]"):
        embed_metadata(plain, labels=LABELS, output_kind="logits", mean=(1, 2), std=(3, 4))  # the writer refuses
    monkeypatch.setattr(writer_module, "check_normalisation", lambda mean, std, source: (mean, std))
    made["two_means"] = embed_metadata(plain, labels=LABELS, output_kind="logits", mean=(1, 2), std=(3, 4))
    monkeypatch.undo()
    return {name: _write(tmp_path, f"{name}.tflite", content) for name, content in made.items()}


BAD = {"garbage": "TFLite Model Metadata does not parse",
       "wrong_identifier": "not a TFLite Model Metadata flatbuffer (expected file identifier b'M001'",
       "few_labels": "label file in its standard metadata has 2 names for 3 classes",
       "two_means": "needs 1 or 3 values each for mean and std (one per RGB channel), got mean [1.0, 2.0]"}


def test_bad_standard_metadata_is_named_and_stops_before_the_loop(tiny_models, tmp_path, monkeypatch, capsys):
    models = _bad_models(tiny_models, tmp_path, monkeypatch)
    video = write_video(str(tmp_path / "in.avi"), frames=2)
    for name, path in models.items():
        with pytest.raises(ValueError) as info:
            Segmenter.from_file(path, threads=1)
        assert BAD[name] in str(info.value) and path in str(info.value), (name, str(info.value))
        stats = tmp_path / f"{name}.jsonl"
        code = main(["--model", path, "--source", video, "--no-display", "--stats-json", str(stats)])
        err = capsys.readouterr().err
        assert code == EXIT_BAD_INPUT and BAD[name] in err and path in err and "Traceback" not in err
        assert not stats.exists()  # the loop never started


def test_artifact_package_imports_neither_tensorflow_nor_its_clients(tiny_models, tmp_path):
    code = (
        "import sys\n"
        "from edge.artifact import embed_spec, read_artifact, Spec\n"
        f"content = embed_spec(open({tiny_models.uint8!r}, 'rb').read(), Spec(labels=('a', 'b', 'c'), "
        "input_size=(24, 32)))\n"
        f"open({str(tmp_path / 'm.tflite')!r}, 'wb').write(content)\n"
        f"assert read_artifact({str(tmp_path / 'm.tflite')!r}).standard.labels == ('a', 'b', 'c')\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras', 'kerasseg', 'cv2')"
        " or m.startswith('edge.') and not m.startswith('edge.artifact'))\n"
        "print('BAD', bad)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, PYTHONPATH=root))
    assert "BAD []" in done.stdout, done.stdout + done.stderr
