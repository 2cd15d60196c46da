"""Export heads: where the graph ends (full, native, argmax, full-argmax), its spec fields, and convert.py --head."""
import json
import os

import numpy as np
import pytest
from export_helpers import tiny_model
from shared_helpers import TRAINED_RUN_SIZE

import convert
from edge.artifact import Spec, load_spec
from kerasseg.export import tflite
from kerasseg.export.heads import Head, cut
from kerasseg.export.modes import Mode

SIZE = (96, 80)
MNV2 = dict(arch="deeplabv3plus", backbone="mobilenetv2", alpha=0.35)
# (build_model arguments, native stride, alignment)
CONFIGS = {
    "deeplabv3plus": (MNV2, 4, "half_pixel"),
    "deeplabv3": ({**MNV2, "decoder": False}, 16, "half_pixel"),
    "mobile_head_os8_edgetpu": ({**MNV2, "decoder": False, "aspp": False, "output_stride": 8,
                                 "edgetpu_friendly": True}, 8, "legacy"),
    "fcn8s": (dict(arch="fcn8s"), 8, "stride"),
    "fcn16s": (dict(arch="fcn16s"), 16, "stride"),
    "fcn32s": (dict(arch="fcn32s"), 32, "stride"),
}


def _build(name, size=SIZE, num_classes=3):
    from kerasseg.backend import keras
    from kerasseg.models import build_model
    keras.utils.set_random_seed(0)
    return build_model(**CONFIGS[name][0], num_classes=num_classes, input_shape=(*size, 3))


def _source_coordinates(out_size: int, in_size: int, stride: int, alignment: str) -> np.ndarray:
    """Where each output pixel's centre lies in native pixels, per edge.artifact.spec.OUTPUT_ALIGNMENTS."""
    y = np.arange(out_size, dtype=np.float64)
    if alignment == "half_pixel":
        return (y + 0.5) * in_size / out_size - 0.5
    if alignment == "legacy":
        return y * in_size / out_size
    return (y + 0.5) / stride - 0.5


def _upsample(native: np.ndarray, size, stride: int, alignment: str) -> np.ndarray:
    """(h, w, C) -> (H, W, C) bilinear at the alignment's coordinates, edges clamped."""
    out = native.astype(np.float64)
    for axis, out_size in enumerate(size):
        n = out.shape[axis]
        src = np.clip(_source_coordinates(out_size, n, stride, alignment), 0, n - 1)
        low = np.floor(src).astype(int)
        high = np.minimum(low + 1, n - 1)
        frac = (src - low).reshape([-1 if a == axis else 1 for a in range(out.ndim)])
        out = np.take(out, low, axis=axis) * (1 - frac) + np.take(out, high, axis=axis) * frac
    return out


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CONFIGS))
def test_native_head_is_the_full_head_before_its_upsampling(name):
    """The recorded stride and alignment are the true ones: upsampling the native scores the way the spec
    says gives the full head's scores (FCN: away from the borders, where the transposed convolution
    sees zero padding). Slow: builds each architecture (FCN's VGG16 too) at 96x80; Keras only."""
    model = _build(name)
    native, fields = cut(model, Head.NATIVE)
    _, stride, alignment = CONFIGS[name]
    assert fields == {"output_kind": "logits", "output_stride": stride, "output_alignment": alignment}
    spec = Spec(labels=("a", "b", "c"), input_size=SIZE, **fields)
    assert tuple(native.outputs[0].shape[1:3]) == spec.output_size
    image = np.random.default_rng(0).uniform(0, 255, (1, *SIZE, 3)).astype(np.float32)
    full = np.asarray(model(image))[0]
    upsampled = _upsample(np.asarray(native(image))[0], SIZE, stride, alignment)
    border = stride if alignment == "stride" else 0
    inner = (slice(border, SIZE[0] - border), slice(border, SIZE[1] - border))
    spread = full.max() - full.min()
    assert np.max(np.abs(upsampled[inner] - full[inner])) < 1e-4 * spread
    ids, id_fields = cut(model, Head.ARGMAX)
    assert id_fields == {**fields, "output_kind": "class_ids"}
    np.testing.assert_array_equal(np.asarray(ids(image))[0], np.argmax(np.asarray(native(image))[0], axis=-1))


def test_a_head_the_model_cannot_end_at_is_refused_naming_it():
    model = tiny_model()
    for head in (Head.NATIVE, Head.ARGMAX):
        with pytest.raises(ValueError, match=rf"head '{head.value}'.*'tiny'.*\['full', 'full-argmax'\]"):
            cut(model, head)
    full, fields = cut(model, Head.FULL)
    assert full is model and fields["output_stride"] == 1 and fields["output_kind"] == "logits"
    ids, fields = cut(model, "full-argmax")
    assert ids.outputs[0].shape[1:] == model.outputs[0].shape[1:3] and fields["output_kind"] == "class_ids"
    with pytest.raises(ValueError, match=r"valid choices are \['full', 'native', 'argmax', 'full-argmax'\]"):
        Head.parse("softmax")


def test_a_native_size_that_is_not_ceil_input_over_stride_is_refused():
    # A valid-padded stride-2 convolution: 9 -> 4 pixels, where ceil(9 / 2) = 5.
    from kerasseg.backend import keras, layers
    from kerasseg.models.layers import ResizeToReference
    image = keras.Input((9, 9, 3), name="image")
    x = layers.Conv2D(2, 3, strides=2, padding="valid", name="classifier")(image)
    model = keras.Model(image, ResizeToReference(name="logits")([x, image]))
    with pytest.raises(ValueError, match=r"head 'native'.*\(4, 4\).*ceil\(input / 2\) = \(5, 5\)"):
        cut(model, Head.NATIVE)


def _output(content: bytes) -> dict:
    from ai_edge_litert.interpreter import Interpreter
    return Interpreter(model_content=content).get_output_details()[0]


@pytest.mark.slow
# The stride-8 legacy model converts the heads that end at its own stride; every head at full resolution is
# converted to int8 in the convert.py test below, FCN-8s's native head in the next one.
@pytest.mark.parametrize("name,mode,heads", [("mobile_head_os8_edgetpu", Mode.INT8, (Head.NATIVE, Head.ARGMAX))])
def test_every_head_converts_to_the_shape_its_spec_says(name, mode, heads):
    """Slow: two int8 conversions of a stride-8 DeepLab head."""
    model = _build(name, size=(64, 64))
    rng = np.random.default_rng(0)
    calibration = lambda: (rng.uniform(0, 255, (1, 64, 64, 3)).astype(np.float32) for _ in range(4))  # noqa: E731
    for head in heads:
        ending, fields = cut(model, head)
        spec = Spec(labels=("a", "b", "c"), input_size=(64, 64), **fields)
        content = tflite.convert(ending, mode=mode, input_size=(64, 64), calibration=calibration)
        output = _output(content)
        channels = [] if head.ids else [3]
        assert list(output["shape"]) == [1, *spec.output_size, *channels], head
        assert output["dtype"] == (np.uint8 if head.ids or mode.full_integer else np.float32), head
        if mode.full_integer:
            assert tflite.float_ops(content) == [], head


@pytest.mark.slow
def test_fcn8s_native_head_converts_to_the_shape_its_spec_says(fcn8s_run):
    """FCN-8s (134M parameters, a 0.5 GB float32 flatbuffer per conversion) converts its native head only; the
    Keras-level test above checks every FCN head's graph. Slow: it reads the float32 artifact of the shared
    ``fcn8s_run`` fixture (train.py, then convert.py --float32, whose default head is native), made once."""
    from ai_edge_litert.interpreter import Interpreter
    path = fcn8s_run / "export" / "fcn8s_vgg16_float32.tflite"
    spec = load_spec(path)[0]
    _, stride, alignment = CONFIGS["fcn8s"]
    assert (spec.output_kind, spec.output_stride, spec.output_alignment) == ("logits", stride, alignment)
    output = Interpreter(model_path=str(path)).get_output_details()[0]
    assert list(output["shape"]) == [1, *spec.output_size, spec.num_classes]
    assert output["dtype"] == np.float32


@pytest.mark.slow
def test_convert_writes_one_artifact_per_head_with_its_spec(trained_run, artifacts, capsys):
    """The README's ``convert.py --int8 --head native full argmax``, with full-argmax too. Slow: it reads the shared
    run's int8 artifacts, which the ``artifacts`` fixture converts once per session in one such call."""
    artifacts("int8")
    size = TRAINED_RUN_SIZE
    stem = os.path.join(trained_run, "export", "deeplabv3plus_mobilenetv2_int8")
    # (file suffix, output shape, dtype): the default head (native) keeps the plain name.
    expected = {"": ([1, size // 4, size // 4, 5], np.uint8, 4), "_full": ([1, size, size, 5], np.uint8, 1),
                "_argmax": ([1, size // 4, size // 4], np.uint8, 4), "_full_argmax": ([1, size, size], np.uint8, 1)}
    for suffix, (shape, dtype, stride) in expected.items():
        with open(stem + suffix + ".tflite", "rb") as f:
            content = f.read()
        spec = load_spec(stem + suffix + ".tflite")[0]
        assert spec == Spec.load(stem + suffix + ".spec.json")
        assert spec.output_stride == stride and spec.output_alignment == "half_pixel"
        assert spec.output_kind == ("class_ids" if "argmax" in suffix else "logits")
        output = _output(content)
        assert list(output["shape"]) == shape and output["dtype"] == dtype
        assert tflite.float_ops(content) == []
        assert json.load(open(stem + suffix + ".parity.json"))["num_images"] == 8
    # Asking again for one of them refuses before any work, naming the file.
    assert convert.main(["--run", str(trained_run), "--int8", "--head", "argmax"]) == 2
    assert "int8_argmax.tflite" in capsys.readouterr().err


def _export_files(run_dir):
    folder = os.path.join(run_dir, "export")
    return sorted(os.listdir(folder)) if os.path.isdir(folder) else []


@pytest.fixture
def light_run(tmp_path):
    """config.yaml and spec.json of a run, without its model: enough for the errors raised before loading it."""
    import yaml
    folder = tmp_path / "light"
    folder.mkdir()
    Spec(labels=("background", "thing"), input_size=(64, 64)).save(folder / "spec.json")
    config = {"train": {"dataset": "synthetic", "image_size": [64, 64]},
              "model": {"arch": "deeplabv3plus", "num_classes": 2}}
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    return str(folder)


@pytest.mark.parametrize("head", ["argmax", "full-argmax"])
def test_argmax_with_edgetpu_exits_2_and_writes_nothing(light_run, capsys, head):
    assert convert.main(["--run", light_run, "--edgetpu", "--int8", "--head", "native", head]) == 2
    err = capsys.readouterr().err
    assert "head" in err and "ARG_MAX" in err and "['full', 'native']" in err, err
    assert _export_files(light_run) == []


def test_unknown_head_is_an_argparse_error_naming_the_choices(light_run, capsys):
    with pytest.raises(SystemExit) as exit_info:
        convert.main(["--run", light_run, "--int8", "--head", "softmax"])
    assert exit_info.value.code == 2
    assert "--head" in capsys.readouterr().err
    assert _export_files(light_run) == []


def test_a_foreign_model_cannot_end_natively_and_nothing_is_written(tmp_path, capsys):
    from kerasseg.data import open_dataset
    dataset = "synthetic:4?val=2&size=32"
    labels = open_dataset(dataset).labels
    tiny_model(num_classes=len(labels)).save(tmp_path / "tiny.keras")
    Spec(labels=labels, input_size=(32, 32)).save(tmp_path / "spec.json")
    argv = ["--model", str(tmp_path / "tiny.keras"), "--dataset", dataset, "--float32", "--head", "native"]
    assert convert.main(argv) == 2
    err = capsys.readouterr().err
    assert "head 'native'" in err and "['full', 'full-argmax']" in err, err
    assert not (tmp_path / "export").exists() or os.listdir(tmp_path / "export") == []
