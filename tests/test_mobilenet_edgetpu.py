"""MobileNet-EdgeTPU (issue 26): the backbone against TF-slim's figures, Google's Cityscapes DeepLab imported into it,
and the whole path (predict, evaluate, train --init-from, QAT and Edge TPU conversion with the op report).

The reference for the import is Google's released file itself (tests/data, see SOURCES.md), run by the edge
runtime's Segmenter on the two photos. The session fixture ``cityscapes_run`` imports it once; the module fixture
``pipeline`` fine-tunes it at 64 px and exports it once.
"""
import json
import os

import numpy as np
import pytest
import yaml

from released_helpers import (CITYSCAPES, CITYSCAPES_LABELS_FILE, DATA, PHOTOS, dominant, edgetpu_compiled_copy,
                              frames_at, keras_class_maps, noisy, photos_folder, segment, write_official_checkpoint)
from training_helpers import load_script

# TF-slim's figures for the classification network at 224 x 224 (1001 classes; parameters are the convolution
# kernels and the logits, without batch norm, multiply-adds those of the convolutions):
# - depth 1.0: 4.05 M parameters, 990.7 M multiply-adds, the "Total" row of the layer table in the docstring of
#   tensorflow/models research/slim/nets/mobilenet/mobilenet_v3.py ("MobilenetEdgeTPU/...");
# - depth 0.75 (edge_tpu_075): 624 M multiply-adds, 2.9 M parameters, the "Edge TPU checkpoints" table of
#   research/slim/nets/mobilenet/README.md (which also gives 990 M and 4.0 M for depth 1.0); its 2.9 M is
#   truncated to one decimal (the 4.05 M of depth 1.0 is printed there as 4.0).
SLIM_1_0 = {"params": 4.05e6, "macs": 990.7e6}
SLIM_0_75 = {"params": (2.9e6, 3.0e6), "macs": 624e6}
CLASSIFIER_CLASSES = 1001
# The pipeline: Google's import fine-tuned by train.py --init-from on the built-in shapes (5 classes) at 64 px, at
# output stride 8 (8x8 class maps), then QAT and Edge TPU conversion, parity on the whole validation split. 240
# steps reach a val mIoU of 0.64 (background alone: 0.15), and two exports of that run measured QAT drops of -0.7
# and -0.8 points, Edge TPU -0.3. After 120 steps (0.39) the QAT drop of one run moved between -0.4 and +2.1.
PARITY_IMAGES = 48
PIPELINE_FLAGS = ["--output-stride", "8", "--dataset", f"synthetic:64?val={PARITY_IMAGES}&size=64",
                  "--image-size", "64", "--batch-size", "8", "--epochs", "1", "--steps-per-epoch", "240",
                  "--learning-rate", "0.003", "--warmup-steps", "10"]
MAX_DROP = {"qat": 2.0, "edgetpu": 3.5}  # mIoU points, as the MobileNetV3 pipeline (mnv3_helpers) holds them
# The released file against itself: each photo is also segmented with every pixel moved by -1, 0 or +1 grey
# level, NOISE_DRAWS times; the median share of pixels on which the file keeps its class map is its noise floor.
NOISE_DRAWS = 3
FLOOR_MARGIN = 0.01


def _classifier(alpha):
    """MobileNet-EdgeTPU at 224 with slim's classification head (global pooling, a 1x1 convolution to 1001)."""
    from kerasseg.backend import keras, layers
    from kerasseg.models.mobilenet_edgetpu import mobilenet_edgetpu

    image = keras.Input((224, 224, 3))
    features = mobilenet_edgetpu(image, output_stride=None, alpha=alpha)
    pooled = layers.GlobalAveragePooling2D(keepdims=True)(features["out"])
    return keras.Model(image, layers.Conv2D(CLASSIFIER_CLASSES, 1, name="Logits")(pooled))


def _self_agreement(model_path, frames, reference) -> dict:
    """Per photo, the median share of pixels on which ``model_path`` keeps ``reference`` under invisible noise."""
    shaken = [segment(model_path, noisy(frames, seed)) for seed in range(NOISE_DRAWS)]
    return {photo: float(np.median([np.mean(other[photo] == reference[photo]) for other in shaken]))
            for photo in PHOTOS}


@pytest.mark.slow
def test_classification_backbone_has_tf_slims_parameters_and_multiply_adds():
    """Slow: builds the network twice at 224 (a few seconds)."""
    from kerasseg.backend import layers
    from kerasseg.models import count_params_and_macs

    counts = {}
    for alpha in (1.0, 0.75):
        model = _classifier(alpha)
        weights = sum(int(np.prod(w.shape)) for layer in model.layers
                      if isinstance(layer, (layers.Conv2D, layers.DepthwiseConv2D)) for w in layer.weights)
        counts[alpha] = (weights, count_params_and_macs(model, input_shape=(224, 224, 3))[1])
    (params, macs), (params_075, macs_075) = counts[1.0], counts[0.75]
    assert abs(params / SLIM_1_0["params"] - 1) < 0.02 and abs(macs / SLIM_1_0["macs"] - 1) < 0.02, counts
    assert abs(macs_075 / SLIM_0_75["macs"] - 1) < 0.02, counts
    assert SLIM_0_75["params"][0] <= params_075 < SLIM_0_75["params"][1], counts


def test_block_table_builds_the_convolutions_of_googles_file():
    """Every convolution of the released backbone, in its order, is one the table builds at depth 0.75, and the
    other way round (the layer names are slim's below MobilenetEdgeTPU/)."""
    from kerasseg.models.importing.names import mobilenet_edgetpu_slots
    from kerasseg.models.importing.tflite import read_tflite
    from kerasseg.models.mobilenet_edgetpu import BLOCKS

    official, facts = read_tflite(str(CITYSCAPES))
    released = [scope for scope in official.tensors if scope.startswith("MobilenetEdgeTPU/")]
    assert [slot.scope for slot in mobilenet_edgetpu_slots(alpha=0.75)] == released
    assert len(BLOCKS) == 22 and sum(row.fused for row in BLOCKS) == 9
    assert [row.kernel for row in BLOCKS[9:]] == [3] * 8 + [5] * 4 + [3]
    assert [i for i, row in enumerate(BLOCKS) if not row.residual] == [13]  # slim's residual=False
    assert official.tensors["MobilenetEdgeTPU/expanded_conv_10/expand"]["weights"].shape == (1, 1, 72, 288)
    assert official.tensors["MobilenetEdgeTPU/Conv_1"]["weights"].shape[-1] == 1280
    assert (facts.input_size, facts.output_stride, facts.alignment) == ((513, 513), 16, "align_corners")


def test_features_and_output_strides():
    from kerasseg.backend import keras
    from kerasseg.models.mobilenet_edgetpu import mobilenet_edgetpu

    for output_stride in (8, 16, 32):
        image = keras.Input((64, 64, 3))
        features = mobilenet_edgetpu(image, output_stride=output_stride, alpha=0.5)
        assert features["stride4"].shape[1] == 16 and features["stride8"].shape[1] == 8
        assert features["out"].shape[1:] == (64 // output_stride, 64 // output_stride, 1280)
        rates = {layer.dilation_rate[0] for layer in keras.Model(image, features["out"]).layers
                 if isinstance(layer, keras.layers.DepthwiseConv2D)}
        assert rates == {8: {1, 2, 4}, 16: {1, 2}, 32: {1}}[output_stride], (output_stride, rates)


def test_an_edgetpu_compiled_file_is_refused_in_one_line_naming_the_cpu_file(tmp_path, capsys):
    from kerasseg.__main__ import main

    compiled = edgetpu_compiled_copy(CITYSCAPES, tmp_path / (CITYSCAPES.stem + "_edgetpu.tflite"))
    assert main(["import", compiled, "--output", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and compiled in err and "edgetpu-custom-op" in err
    assert f"import the CPU file instead ({CITYSCAPES.name})" in err and "weights are inside" in err
    assert not (tmp_path / "run").exists()


def test_coral_label_file_is_refused_naming_its_background_line():
    from kerasseg.models.importing import Imported
    from kerasseg.models.importing.labels import imported_spec

    imported = Imported(model=None, config={"arch": "deeplabv3plus", "backbone": "mobilenet_edgetpu",
                                            "num_classes": 19}, input_size=(513, 513), source={}, filled=[], unused=[])
    with pytest.raises(ValueError, match="20 names .* 19 classes; its first name, 'background', is not a class"):
        imported_spec(imported, labels_file=CITYSCAPES_LABELS_FILE)
    lines = CITYSCAPES_LABELS_FILE.read_text().split()
    assert imported_spec(imported).labels[:2] == ("road", "sidewalk") and lines[1] == "road"


@pytest.mark.slow
def test_import_writes_a_cityscapes_run(cityscapes_run):
    """Slow: the shared import."""
    from edge.artifact import Spec

    config = yaml.safe_load(open(os.path.join(cityscapes_run.path, "config.yaml")))
    assert config["model"] == {"arch": "deeplabv3plus", "num_classes": 19, "backbone": "mobilenet_edgetpu",
                               "output_stride": 16, "aspp": False, "decoder": False, "dropout": 0.1,
                               "edgetpu_friendly": False, "align_corners": True, "head_filters": 128, "alpha": 0.75}
    assert config["source"]["sha256"] == "322fe29945cb1693f426952f2a330ab67ea5678545ddee6f2548e0cfd0ca03e5"
    assert config["source"]["layers_filled"] == 2 * 61 + 1 and config["source"]["tensors_left_out"] == []
    spec = Spec.load(cityscapes_run.path)
    assert len(spec.labels) == 19 and spec.labels[0] == "road" and spec.labels[-1] == "bicycle"
    assert spec.colors[0] == (128, 64, 128) and spec.colors[10] == (70, 130, 180)  # Cityscapes' road and sky
    assert spec.input_size == (513, 513)
    assert "mobilenet_edgetpu alpha 0.75, output stride 16" in cityscapes_run.output


@pytest.mark.slow
def test_imported_model_agrees_with_googles_file_as_well_as_the_file_agrees_with_itself(cityscapes_run):
    """Slow: the Keras model and the released file at 513 on the two photos, and the file on noisy copies.

    The issue asked for 99% agreement. On these photos (no street scene) the released int8 file does not reach
    that against itself: an invisible +-1 grey-level change moves 6-13% of its class map (VOC's file: under 1%),
    and our float model of its exact weights sits within that noise. So the bound is the file's own floor.
    """
    from kerasseg.rundir import open_trained

    trained = open_trained(cityscapes_run.path)
    frames = frames_at(trained.spec.input_size)
    ours, released = keras_class_maps(trained.model, frames), segment(CITYSCAPES, frames)
    floors = _self_agreement(CITYSCAPES, frames, released)
    for photo in PHOTOS:
        agreement = float(np.mean(ours[photo] == released[photo]))
        assert agreement >= floors[photo] - FLOOR_MARGIN and agreement > 0.85, (photo, agreement, floors)
        assert dominant(ours[photo]) == dominant(released[photo]), photo


@pytest.mark.slow
def test_int8_reexport_differs_from_googles_file_no_more_than_their_own_noise(cityscapes_run, tmp_path):
    """Slow: the import exported as convert.py --int8 does (default head), at 513, calibrated on the photos.

    The issue asked for 98% agreement with Google's file. Both are int8 quantizations of the same weights, and on
    these photos each moves 6-13% of its class map under an invisible +-1 grey-level change (see the test above),
    so 98% is out of reach for any re-export. The bound: the two files disagree on no more pixels than the sum of
    their own disagreements under that noise; a wrong layer or resize would disagree on far more.
    """
    from kerasseg.export.export import export
    from kerasseg.rundir import open_trained

    [result] = export(open_trained(cityscapes_run.path), ["int8"], dataset=f"images:{photos_folder(tmp_path)}",
                      calibration_steps=4, out_dir=str(tmp_path / "export"), max_drop=100.0, log=lambda line: None)
    frames = frames_at((513, 513))
    ours, released = segment(result.path, frames), segment(CITYSCAPES, frames)
    floors = {"ours": _self_agreement(result.path, frames, ours),
              "released": _self_agreement(CITYSCAPES, frames, released)}
    for photo in PHOTOS:
        disagreement = 1 - float(np.mean(ours[photo] == released[photo]))
        noise = (1 - floors["ours"][photo]) + (1 - floors["released"][photo])
        # The cap is a sanity bound (a wrong layer disagrees on most pixels): the calibration's ranges move a little
        # between runs, and one whole-suite run measured 0.21 on cat.bmp, within that run's noise bound of 0.25.
        assert disagreement <= noise and disagreement < 0.3, (photo, disagreement, floors)


@pytest.mark.slow
def test_each_imported_layer_computes_what_googles_layer_computes(cityscapes_run):
    """Slow: one run of the released file keeping every tensor, then each of its 62 convolutions again through the
    imported layer and batch norm, fed the file's own input. Outside the values the file clips at its int8 range,
    each output is the file's to within one quantization step (rounding is half a step): the weights, the folded
    batch norms and the concat_projection order are the file's."""
    from ai_edge_litert.interpreter import Interpreter

    from edge.artifact.tflite_file import read_model_file
    from edge.artifact.tflite_graph import read_graph
    from kerasseg.backend import tf
    from kerasseg.models.importing import slots_for
    from kerasseg.models.importing.tflite import CONVOLUTIONS, kernel_scope
    from kerasseg.rundir import open_trained

    trained = open_trained(cityscapes_run.path)
    slots = {slot.scope: slot for slot in slots_for(trained.model_kwargs)}
    graph = read_graph(read_model_file(CITYSCAPES), source=str(CITYSCAPES))
    interpreter = Interpreter(model_path=str(CITYSCAPES), experimental_preserve_all_tensors=True)
    interpreter.allocate_tensors()
    interpreter.set_tensor(graph.inputs[0], frames_at((513, 513))["grace_hopper.bmp"][None, ..., ::-1].copy())
    interpreter.invoke()

    def value(index):
        tensor = graph.tensors[index]
        return (interpreter.get_tensor(index).astype(np.float32) - tensor.zero_point[0]) * tensor.scale[0]

    convolutions = [op for op in graph.operators if op.name in CONVOLUTIONS]
    for op in convolutions:
        slot = slots.pop(kernel_scope(graph.tensors[op.inputs[1]].name))
        x, expected = value(op.inputs[0]), value(op.outputs[0])
        if slot.pooling_channels:  # TF1 concatenates the image pooling first, the builder last
            x = np.roll(x, -slot.pooling_channels, axis=-1)
        y = trained.model.get_layer(slot.layer)(x)
        if slot.batch_norm:
            y = trained.model.get_layer(slot.batch_norm)(y, training=False)
        y = (tf.nn.relu(y) if op.options["activation"] == 1 else y).numpy()
        output = graph.tensors[op.outputs[0]]
        inside = ~np.isin(interpreter.get_tensor(op.outputs[0]), (0, 255))  # uint8: 0 and 255 are clipped values
        error = np.abs(y - expected)[inside] / output.scale[0]
        assert error.max() <= 1.0 and error.mean() < 0.3, (slot.scope, error.max(), error.mean())
    assert len(convolutions) == 62 and not slots


@pytest.mark.slow
def test_predict_and_evaluate_open_the_imported_run(cityscapes_run, tmp_path):
    """Slow: predict.py on the two photos and evaluate.py on a 19-class folder dataset, at 513 px."""
    import cv2

    from data_helpers import make_folder
    from edge.artifact import Spec

    predict = load_script("predict.py")
    folder = photos_folder(tmp_path)
    assert predict.main(["--run", cityscapes_run.path, "--input", folder, "--output", str(tmp_path / "p")]) == 0
    labels = cv2.imread(str(tmp_path / "p" / "cat_labels.png"), cv2.IMREAD_UNCHANGED)
    assert labels.shape == cv2.imread(str(DATA / "cat.bmp")).shape[:2] and labels.max() < 19

    make_folder(str(tmp_path / "streets"), stems=("a", "b", "c", "d"), size=(40, 48), num_classes=19)
    (tmp_path / "streets" / "labels.txt").write_text("\n".join(Spec.load(cityscapes_run.path).labels) + "\n")
    evaluate = load_script("evaluate.py")
    assert evaluate.main([cityscapes_run.path, "--dataset", f"folder:{tmp_path / 'streets'}",
                          "--output", str(tmp_path / "eval.json")]) == 0
    assert 0 <= json.load(open(tmp_path / "eval.json"))["results"]["mean_iou"] <= 1


@pytest.mark.slow
def test_a_checkpoint_under_the_official_names_imports_bit_for_bit(tmp_path):
    """Slow: builds the model twice. No MobileNet-EdgeTPU checkpoint of the model zoo is reachable here, so the
    test writes one of DeepLab's EdgeTPU-DeepLab (depth 1.0, head 256) under the official names, batch norm
    unfolded, and the importer must give back every weight bit for bit."""
    from kerasseg.models import build_model, model_config
    from kerasseg.models.importing import import_model, official_weights, slots_for

    config = model_config(arch="deeplabv3plus", backbone="mobilenet_edgetpu", num_classes=19, alpha=1.0,
                          aspp=False, decoder=False, align_corners=True)
    model = build_model(**config)
    rng = np.random.default_rng(0)
    model.set_weights([rng.uniform(0.5, 2.0, w.shape).astype(np.float32) if "variance" in w.name
                       else rng.normal(size=w.shape).astype(np.float32) for w in model.weights])
    weights = official_weights(model, slots_for(config))
    assert "MobilenetEdgeTPU/expanded_conv_1/expand/BatchNorm/moving_variance" in weights
    weights["global_step"] = np.int64(1)
    imported = import_model(write_official_checkpoint(str(tmp_path / "model.ckpt"), weights))
    assert imported.config == config and imported.unused == []
    for expected, found in zip(model.get_weights(), imported.model.get_weights()):
        assert np.array_equal(expected, found)


@pytest.fixture(scope="module")
def pipeline(cityscapes_run, tmp_path_factory):
    """train.py --init-from the import (in-process), then the library's export in QAT and Edge TPU modes."""
    import contextlib
    import io

    from kerasseg.export.export import export
    from kerasseg.rundir import open_trained

    run, out = tmp_path_factory.mktemp("edgetpu_pipeline") / "run", io.StringIO()
    with contextlib.redirect_stdout(out):
        assert load_script("train.py").main(["--init-from", cityscapes_run.path, *PIPELINE_FLAGS,
                                              "--output-dir", str(run)]) == 0
    log = []
    results = export(open_trained(str(run)), ["qat", "edgetpu"], calibration_steps=16, qat_steps=10,
                     parity_images=PARITY_IMAGES, max_drop=100.0, log=log.append)
    return {"run": run, "train_output": out.getvalue(), "results": {r.mode.value: r for r in results}, "log": log}


@pytest.mark.slow
def test_train_init_from_the_import_fine_tunes_it_to_other_classes(pipeline):
    """Slow: the module's pipeline (train.py, QAT and Edge TPU export: a few minutes on a loaded machine)."""
    out = pipeline["train_output"]
    assert "loaded 122 of 123 layers with weights; not loaded (1): classifier (re-initialised: 19 classes in the " \
           "source, 5 here)" in out
    assert "61 batch norms came folded; their statistics were re-estimated" in out
    config = yaml.safe_load(open(pipeline["run"] / "config.yaml"))
    assert {k: config["model"][k] for k in ("backbone", "alpha", "head_filters", "output_stride", "num_classes")} == \
        {"backbone": "mobilenet_edgetpu", "alpha": 0.75, "head_filters": 128, "output_stride": 8, "num_classes": 5}
    assert json.loads((pipeline["run"] / "metrics.json").read_text())["best"]["mean_iou"] > 0.5


@pytest.mark.slow
@pytest.mark.parametrize("mode", sorted(MAX_DROP))
def test_qat_and_edgetpu_exports_keep_parity(pipeline, mode):
    from ai_edge_litert.interpreter import Interpreter

    from kerasseg.export import tflite

    result = pipeline["results"][mode]
    assert result.parity.miou_drop < MAX_DROP[mode] and result.parity.pixel_agreement > 0.95, result.parity.verdict()
    content = open(result.path, "rb").read()
    assert tflite.float_ops(content) == []
    interpreter = Interpreter(model_content=content)
    assert list(interpreter.get_output_details()[0]["shape"]) == [1, 8, 8, 5]  # the native head, stride 8
    assert interpreter.get_input_details()[0]["dtype"] == np.uint8


@pytest.mark.slow
def test_edgetpu_report_maps_every_op(pipeline):
    from kerasseg.export import edgetpu

    report = pipeline["results"]["edgetpu"].edgetpu
    assert report["first_unsupported"] is None and report["mapped_op_share"] == 1.0
    assert report["mapped_mac_share"] == 1.0
    ops = {op["op"] for op in report["ops"]}
    assert ops <= set(edgetpu.SUPPORTED) and "HARD_SWISH" not in ops
    assert {"CONV_2D", "DEPTHWISE_CONV_2D", "ADD", "CONCATENATION", "MEAN", "RESIZE_BILINEAR"} <= ops
    assert not [op for op in report["ops"] if op["note"] == edgetpu.GATE_NOTE]  # no squeeze-excite, no gate
