"""Google's released DeepLab models imported into the Keras builders (kerasseg.models.importing, issue 20).

The reference is the released file itself, run by the edge runtime's Segmenter on two real photos. The
session fixtures (tests/released_helpers.py) import both files once and convert the int8 import once.
"""
import json
import logging
import os
import tarfile

import numpy as np
import pytest
import yaml

from released_helpers import (DATA, INT8, LABELS_FILE, PHOTOS, RELEASED, dominant, frames_at, keras_class_maps,
                              photos_folder, segment, write_official_checkpoint)
from training_helpers import load_script

AGREEMENT = 0.98  # share of pixels on which two models must give the same class


def _import(*args, capsys=None):
    from kerasseg.__main__ import main

    code = main(["import", *map(str, args)])
    return code, capsys.readouterr() if capsys else None


@pytest.mark.slow
def test_import_writes_a_run_directory_the_tools_open(imported_runs, tmp_path):
    """Slow: the shared import fixture, then predict.py on the two photos at 513 px (a few seconds)."""
    from edge.artifact import Spec, default_colors
    from kerasseg.data.files import VOC_LABELS
    from kerasseg.rundir import open_trained

    run = imported_runs.runs["int8"]
    # What the import wrote (the imported_int8_export fixture, shared, may have added export/ since).
    assert sorted(set(os.listdir(run)) - {"export"}) == ["best.keras", "config.yaml", "spec.json"]
    spec = Spec.load(run)
    assert spec.labels == VOC_LABELS and spec.colors == default_colors(21) and spec.input_size == (513, 513)
    config = yaml.safe_load(open(os.path.join(run, "config.yaml")))
    assert config["source"]["sha256"] == "0470d2a782aa54eeeb99d32e7b6b3fb7722905c7c4f5d26bd957ec861366d48b"
    assert config["source"]["path"] == str(INT8) and config["source"]["layers_filled"] == 109
    assert config["model"] == {"arch": "deeplabv3plus", "num_classes": 21, "backbone": "mobilenetv2",
                               "output_stride": 16, "aspp": False, "decoder": False, "dropout": 0.1,
                               "edgetpu_friendly": False, "align_corners": True, "head_filters": 256,
                               "alpha": 0.5, "channel_rounding": "slim"}
    assert "alpha 0.5, output stride 16" in imported_runs.outputs["int8"]
    assert yaml.safe_load(open(os.path.join(imported_runs.runs["float257"], "config.yaml")))["model"][
        "output_stride"] == 8
    assert open_trained(run).model_kwargs == config["model"]

    predict = load_script("predict.py")
    assert predict.main(["--run", run, "--input", imported_runs.photos, "--output", str(tmp_path / "p")]) == 0
    import cv2
    labels = cv2.imread(str(tmp_path / "p" / "cat_labels.png"), cv2.IMREAD_UNCHANGED)
    assert labels.shape == cv2.imread(str(DATA / "cat.bmp")).shape[:2] and dominant(labels, skip_background=True) == 8

    from data_helpers import make_voc
    make_voc(str(tmp_path / "VOC2012"), train=("a",), val=("b", "c"))  # VOC's 21 classes: the model's
    evaluate = load_script("evaluate.py")
    assert evaluate.main([run, "--dataset", f"voc:{tmp_path / 'VOC2012'}"]) == 0


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(RELEASED))
def test_imported_model_computes_what_the_released_file_computes(imported_runs, name):
    """Slow: the Keras model at 513 (or 257) px on two photos. On both, >= 98% of the pixels agree with the
    released file run by the Segmenter, and the dominant class (and the dominant object class) is the same."""
    from kerasseg.rundir import open_trained

    trained = open_trained(imported_runs.runs[name])
    frames = frames_at(trained.spec.input_size)
    ours, released = keras_class_maps(trained.model, frames), segment(RELEASED[name], frames)
    for photo, subject in PHOTOS.items():
        assert np.mean(ours[photo] == released[photo]) >= AGREEMENT, photo
        assert dominant(ours[photo]) == dominant(released[photo]), photo
        assert dominant(ours[photo], skip_background=True) == dominant(released[photo], skip_background=True) \
            == subject, photo


@pytest.mark.slow
def test_round_trip_import_convert_int8_edge_agrees_with_the_released_file(imported_int8_export):
    """Slow: the shared int8 conversion at 513 px (convert.py --int8, default native head, calibrated on the
    photos with images:). Through the edge runtime it agrees with Coral's file on >= 98% of both photos."""
    from edge.artifact import load_spec

    spec = load_spec(imported_int8_export)[0]
    assert (spec.output_stride, spec.output_alignment) == (16, "align_corners")
    parity = json.load(open(imported_int8_export.replace(".tflite", ".parity.json")))
    assert parity["truth"] == "keras" and parity["passed"] and parity["pixel_agreement"] > AGREEMENT
    frames = frames_at((513, 513))
    ours, released = segment(imported_int8_export, frames), segment(INT8, frames)
    for photo in PHOTOS:
        assert np.mean(ours[photo] == released[photo]) >= AGREEMENT, photo


@pytest.mark.slow
def test_the_camera_loop_writes_segments_exact_map_of_the_imported_model(imported_int8_export, imported_runs,
                                                                        tmp_path):
    """Slow: shares the int8 conversion above. python -m edge --masks on the two photos (their own sizes) writes
    exactly the map Segmenter.segment computes (exact upsampling of the 33x33 scores at stride 16,
    align_corners), not the output's 16-pixel blocks, and the recording keeps both photos (two sizes)."""
    import cv2
    from PIL import Image

    from edge import cli
    from edge.segmenter import Segmenter

    masks, record = tmp_path / "masks", tmp_path / "photos.mp4"
    masks.mkdir()
    assert cli.main(["--model", imported_int8_export, "--source", imported_runs.photos, "--no-display", "--smooth",
                     "0", "--threads", "1", "--masks", str(masks), "--record", str(record)]) == 0
    exact, blocks = (Segmenter.from_file(imported_int8_export, threads=1, upsample=up) for up in ("exact", "nearest"))
    for index, name in enumerate(sorted(PHOTOS)):  # the image source reads them in sorted order
        photo = cv2.imread(str(DATA / name))
        mask = Image.open(masks / f"{index:06d}.png")
        assert mask.mode == "P" and mask.getpalette()[8 * 3:9 * 3] == [64, 0, 0]  # VOC's cat
        np.testing.assert_array_equal(np.asarray(mask), exact.segment(photo))
        assert dominant(np.asarray(mask), skip_background=True) == PHOTOS[name]
        assert np.mean(blocks.segment(photo) != exact.segment(photo)) > 0.005  # what the loop drew before
    capture = cv2.VideoCapture(str(record))
    count = 0
    while capture.read()[0]:
        count += 1
    assert count == 2


@pytest.mark.slow
def test_the_readmes_stream_example_blurs_the_background_behind_the_person(imported_int8_export, imported_runs,
                                                                         monkeypatch):
    """Slow: shares the int8 conversion above. The README's 15-line stream() example, run as written but on the two
    photos instead of a camera and with the window replaced: on Grace Hopper the person stays sharp and the rest is
    blurred."""
    import cv2
    from readme_helpers import README

    from edge.segmenter import Segmenter

    text = README.read_text(encoding="utf-8")
    [code] = [block.split("```", 1)[0] for block in text.split("```python\n")[1:] if "from edge import stream" in block]
    assert len(code.strip().splitlines()) <= 15
    model = '"runs/voc-dm05/export/deeplabv3plus_mobilenetv2_int8.tflite"'
    assert model in code and "source=0" in code
    code = code.replace(model, repr(imported_int8_export)).replace("source=0", f"source={imported_runs.photos!r}")
    shown = []
    monkeypatch.setattr(cv2, "imshow", lambda title, image: shown.append(image))
    monkeypatch.setattr(cv2, "waitKey", lambda delay: -1)
    monkeypatch.setattr(cv2, "destroyAllWindows", lambda: None)
    exec(compile(code, "README.md", "exec"), {})
    assert len(shown) == 2  # cat.bmp, then grace_hopper.bmp
    photo = cv2.imread(str(DATA / "grace_hopper.bmp"))
    person = Segmenter.from_file(imported_int8_export).segment(photo) == 15
    inside = cv2.erode(person.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    outside = ~cv2.dilate(person.astype(np.uint8), np.ones((15, 15), np.uint8)).astype(bool)
    change = np.abs(shown[1].astype(int) - photo).mean(axis=-1)
    assert inside.mean() > 0.2 and outside.mean() > 0.1
    assert change[inside].mean() < 1 and change[outside].mean() > 5, (change[inside].mean(), change[outside].mean())


def test_label_file_ends_at_the_first_blank_line():
    from kerasseg.data.files import VOC_LABELS
    from edge.artifact import read_label_file

    assert read_label_file(LABELS_FILE) == VOC_LABELS  # Coral's file: 21 names, a blank line, then prose


def _official_checkpoint(folder, config, *, seed=0, change=None):
    """A checkpoint under DeepLab's names, batch norm unfolded, from a model with random weights and statistics."""
    from kerasseg.models import build_model
    from kerasseg.models.importing import official_weights, slots_for

    model = build_model(**config)
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(0.5, 2.0, w.shape).astype(np.float32) if "variance" in w.name
                       else rng.normal(size=w.shape).astype(np.float32) for w in model.weights])
    weights = official_weights(model, slots_for(config))
    weights.update({"global_step": np.int64(30000), "aspp0/weights/Momentum": weights["aspp0/weights"]})
    weights.update(change or {})
    os.makedirs(folder, exist_ok=True)
    return model, write_official_checkpoint(os.path.join(folder, "model.ckpt"), weights)


@pytest.mark.slow
@pytest.mark.parametrize("backbone", ["mobilenetv2", "xception65"])
def test_checkpoint_reader_restores_a_checkpoint_under_the_official_names_exactly(tmp_path, backbone):
    """Slow: builds the model twice (Xception-65: 41 M parameters). No model-zoo checkpoint is reachable here, so
    the test writes one under the official names (MobileNetV2 packed as the zoo's .tar.gz; Xception-65 with
    ASPP and the decoder read from its prefix) and the reader must give back every weight bit for bit."""
    from kerasseg.models import model_config
    from kerasseg.models.importing import import_model

    options = dict(alpha=1.0, channel_rounding="slim", aspp=False, decoder=False) if backbone == "mobilenetv2" \
        else {}  # the model zoo's MobileNetV2 (depth 1.0, mobile head) and Xception-65 (ASPP, decoder) models
    config = model_config(arch="deeplabv3plus", backbone=backbone, num_classes=21, align_corners=True, **options)
    model, prefix = _official_checkpoint(str(tmp_path / "deeplab_test"), config)
    if backbone == "xception65":
        imported = import_model(prefix)
        assert imported.config == config and imported.unused == []
        found = imported.model
    else:  # as the README imports a model-zoo download
        archive = str(tmp_path / "deeplabv3_mnv2_pascal_trainval_2018_01_29.tar.gz")
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(tmp_path / "deeplab_test", arcname="deeplabv3_mnv2_pascal_trainval")
        assert _import(archive, "--output", tmp_path / "voc-mnv2", "--output-stride", "16")[0] == 0
        from kerasseg.rundir import open_trained
        trained = open_trained(tmp_path / "voc-mnv2")
        assert trained.model_kwargs == config and trained.spec.input_size == (513, 513)
        found = trained.model
    for expected, weights in zip(model.get_weights(), found.get_weights()):
        assert np.array_equal(expected, weights)


@pytest.mark.slow
def test_bad_sources_exit_2_name_the_problem_and_write_nothing(tmp_path, capsys, tiny_models):
    """Slow: builds a MobileNetV2 for the checkpoint (2 s) and uses the edge tests' tiny segmenters."""
    from kerasseg.models import model_config

    out = tmp_path / "out"
    config = model_config(arch="deeplabv3plus", backbone="mobilenetv2", num_classes=21, alpha=0.5,
                          channel_rounding="slim", aspp=False, decoder=False, align_corners=True)
    wrong = np.zeros((1, 1, 16, 100), np.float32)  # expanded_conv_5 expands 16 channels to 96, not 100
    _, prefix = _official_checkpoint(str(tmp_path / "wrong"), config,
                                     change={"MobilenetV2/expanded_conv_5/expand/weights": wrong})
    code, cap = _import(prefix, "--output", out, capsys=capsys)
    assert code == 2 and "tensor MobilenetV2/expanded_conv_5/expand/weights does not match layer " \
        "'block_5_expand': expected shape (1, 1, 16, 96), found (1, 1, 16, 100)" in cap.err

    code, cap = _import(tiny_models.artifact, "--output", out, capsys=capsys)  # a segmenter of another design
    assert code == 2 and "not a DeepLab model" in cap.err and tiny_models.artifact in cap.err

    truncated = tmp_path / "deeplabv3_pascal_trainval_2018_01_04.tar.gz"
    with tarfile.open(truncated, "w:gz") as tar:
        tar.add(DATA / "grace_hopper.bmp", arcname="deeplabv3_pascal_trainval/model.ckpt.data-00000-of-00001")
    truncated.write_bytes(truncated.read_bytes()[: truncated.stat().st_size // 2])
    code, cap = _import(truncated, "--output", out, capsys=capsys)
    assert code == 2 and "truncated or corrupt" in cap.err and str(truncated) in cap.err

    code, cap = _import(INT8, "--output", out, "--labels", DATA / "SOURCES.md", capsys=capsys)
    assert code == 2 and "but the model has 21 classes" in cap.err
    assert not out.exists()


@pytest.mark.slow
def test_init_from_contradicting_flags_exit_2_before_anything_is_written(tmp_path, capsys):
    """Slow: reads the released file (2 s) to learn its architecture."""
    train = load_script("train.py")
    for flag, value, message in (("--backbone", "xception65", "--backbone: 'xception65' contradicts"),
                                 ("--arch", "fcn8s", "--arch: 'fcn8s' contradicts"),
                                 ("--alpha", "1.0", "whose model has alpha=0.5")):
        code = train.main(["--init-from", str(INT8), flag, value, "--output-dir", str(tmp_path / "run")])
        assert code == 2 and message in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_train_init_from_loads_every_layer_but_the_classifier_trains_and_resumes(imported_runs, tmp_path, capsys,
                                                                                 caplog):
    """Slow: fine-tunes the imported int8 run on the built-in dataset (5 classes) for 2 epochs of 2 steps at
    64 px, then resumes it from its first epoch (the same check the README test makes of --resume)."""
    from kerasseg.backend import tf
    from kerasseg.training.batchnorm import folded_batch_norms

    train = load_script("train.py")
    caplog.set_level(logging.DEBUG, logger="kerasseg.training.init_from")
    run = tmp_path / "finetuned"
    flags = ["--init-from", imported_runs.runs["int8"], "--dataset", "synthetic:16?val=4&size=64", "--image-size",
             "64", "--batch-size", "4", "--epochs", "2", "--steps-per-epoch", "2", "--output-dir", str(run)]
    assert train.main(flags) == 0
    out = capsys.readouterr().out
    assert "loaded 108 of 109 layers with weights; not loaded (1): classifier (re-initialised: 21 classes in " \
           "the source, 5 here)" in out
    assert "54 batch norms came folded; their statistics were re-estimated" in out
    assert "expanded_conv_depthwise" not in out and "(--log-level DEBUG lists every layer)" in out  # a summary
    debug = "\n".join(record.getMessage() for record in caplog.records)
    assert "loaded (108): Conv1, bn_Conv1, expanded_conv_depthwise," in debug and "concat_projection_BN" in debug
    config = yaml.safe_load(open(run / "config.yaml"))
    assert config["model"]["alpha"] == 0.5 and config["model"]["num_classes"] == 5
    assert config["train"]["init_from"] == imported_runs.runs["int8"] and config["train"]["learning_rate"] == 1e-3
    from kerasseg.models import load_model
    assert not folded_batch_norms(load_model(str(run / "best.keras")))

    checkpoints = str(run / "checkpoints")  # as if stopped after its first epoch
    first = os.path.basename(tf.train.get_checkpoint_state(checkpoints).all_model_checkpoint_paths[0])
    tf.compat.v1.train.update_checkpoint_state(checkpoints, first, all_model_checkpoint_paths=[first])
    assert train.main(["--resume", str(run)]) == 0
    out = capsys.readouterr().out
    assert "from step 2 of 4" in out and "--init-from" not in out  # the checkpoint, not the source, fills it


def test_folded_batch_norm_reestimation_keeps_inference_and_matches_training_mode():
    """Folded (identity + bias) batch norms get measured statistics; inference is unchanged, and training mode
    (batch statistics) then computes nearly what inference does."""
    from kerasseg.backend import keras, tf
    from kerasseg.training.batchnorm import folded_batch_norms, reestimate_batch_norm

    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, padding="same", use_bias=False)(inputs)
    bn = keras.layers.BatchNormalization(epsilon=1e-3)
    model = keras.Model(inputs, bn(x))
    folded = [np.ones(8, np.float32), np.linspace(-1, 1, 8).astype(np.float32), np.zeros(8, np.float32),
              np.full(8, 1 - 1e-3, np.float32)]
    bn.set_weights(folded)
    images = tf.constant(np.random.default_rng(0).normal(3.0, 2.0, (32, 16, 16, 3)).astype(np.float32))
    before = model(images, training=False).numpy()
    assert not np.allclose(model(images, training=True).numpy(), before, atol=0.1)  # batch statistics differ
    bn.set_weights(folded)  # (training mode moved the moving averages)
    assert folded_batch_norms(model) == [bn]
    assert reestimate_batch_norm(model, tf.data.Dataset.from_tensors((images, images)).repeat(), steps=3) == 1
    np.testing.assert_allclose(model(images, training=False).numpy(), before, rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(model(images, training=True).numpy(), before, rtol=1e-3, atol=1e-3)
    assert folded_batch_norms(model) == []


def test_images_dataset_takes_the_model_classes_for_convert_and_is_refused_where_masks_are_needed(tmp_path):
    from kerasseg.data import open_dataset
    from kerasseg.training.config import resolve_config
    from kerasseg.training.prepare import prepare
    from kerasseg.data.sources import open_data
    from kerasseg.rundir import Trained
    from edge.artifact import Spec

    folder = photos_folder(tmp_path)
    source = open_dataset(f"images:{folder}")
    assert not source.labelled and source.num_examples("train") == source.num_examples("val") == 2
    example = next(source.iter_examples("val"))
    assert example.image.shape[:2] == example.mask.shape and np.all(example.mask == 255)
    trained = Trained(model=None, spec=Spec(labels=("a", "b"), input_size=(8, 8)), model_path="m.keras")
    assert open_data(trained, f"images:{folder}", masks=False).labels == ("a", "b")
    with pytest.raises(ValueError, match="images without masks; this needs a dataset with masks"):
        open_data(trained, f"images:{folder}")
    with pytest.raises(ValueError, match="training needs masks"):
        prepare(resolve_config(overrides={"dataset": f"images:{folder}"}))


def test_align_corners_resize_is_tf1s_and_survives_a_keras_round_trip():
    from kerasseg.backend import tf
    from kerasseg.models.layers import RESIZE_ALIGNMENTS, ResizeToReference

    x = tf.constant(np.random.default_rng(0).normal(size=(1, 5, 7, 3)).astype(np.float32))
    reference = tf.zeros((1, 17, 25, 1))
    layer = ResizeToReference.aligned("align_corners")
    expected = tf.compat.v1.image.resize_bilinear(x, (17, 25), align_corners=True)
    np.testing.assert_allclose(layer([x, reference]).numpy(), expected.numpy(), atol=1e-5)
    assert ResizeToReference.from_config(layer.get_config()).alignment == "align_corners"
    assert [ResizeToReference.aligned(a).alignment for a in RESIZE_ALIGNMENTS] == list(RESIZE_ALIGNMENTS)
    with pytest.raises(ValueError, match="align_corners=True needs half_pixel_centers=False"):
        ResizeToReference(align_corners=True)


def test_the_device_upsamples_an_align_corners_map_as_tensorflow_does():
    """edge/upsample.py with the spec's output_alignment "align_corners" gives TF1's resize, pixel for pixel."""
    from kerasseg.backend import tf
    from edge.upsample import bilinear, frame_grid

    scores = np.random.default_rng(1).normal(size=(9, 9, 4)).astype(np.float32)
    grid = frame_grid((129, 129), (0, 0, 129, 129), input_size=(129, 129), output_size=(9, 9),
                      alignment="align_corners", stride=16)
    expected = tf.compat.v1.image.resize_bilinear(scores[None], (129, 129), align_corners=True)[0].numpy()
    np.testing.assert_allclose(bilinear(grid, scores), expected, atol=1e-4)


def test_slim_channel_rule_and_deeplabs_xception_separable_convolution():
    from kerasseg.backend import keras
    from kerasseg.models import build_model
    from kerasseg.models.backbones import _xception_separable

    slim = build_model(arch="deeplabv3plus", num_classes=21, alpha=0.5, channel_rounding="slim", aspp=False,
                       decoder=False)
    keras_rule = build_model(arch="deeplabv3plus", num_classes=21, alpha=0.5, aspp=False, decoder=False)
    assert slim.get_layer("block_1_project").filters == 12 and keras_rule.get_layer("block_1_project").filters == 16
    assert slim.get_layer("block_2_expand").filters == 72 and slim.get_layer("Conv1").filters == 16
    x = keras.Input((8, 8, 4))
    pre = keras.Model(x, _xception_separable(x, 6, stride=1, rate=1, name="a", relu_first=True))
    post = keras.Model(x, _xception_separable(x, 6, stride=1, rate=1, name="b", relu_first=False))
    kinds = [type(layer).__name__ for layer in pre.layers[1:]]
    assert kinds == ["ReLU", "DepthwiseConv2D", "BatchNormalization", "Conv2D", "BatchNormalization"]
    kinds = [type(layer).__name__ for layer in post.layers[1:]]
    assert kinds == ["DepthwiseConv2D", "BatchNormalization", "ReLU", "Conv2D", "BatchNormalization", "ReLU"]


def test_without_masks_the_parity_verdict_bounds_the_pixel_accuracy_drop():
    from kerasseg.export.parity import ParityReport

    report = ParityReport(mode="int8", head="native", labels=["a", "b"], num_images=2, keras_miou=1.0,
                          device_miou=0.96, keras_pixel_accuracy=1.0, device_pixel_accuracy=0.99, keras_iou=[1, 1],
                          device_iou=[0.95, 0.97], miou_vs_keras=0.96, pixel_agreement=0.99, max_drop=2.0,
                          truth="keras")
    assert report.passed and abs(report.drop - 1.0) < 1e-9 and abs(report.miou_drop - 4.0) < 1e-9
    assert report.verdict().startswith("pixel-accuracy drop against Keras (no masks) +1.00 points")
    assert not ParityReport(**{**report.__dict__, "truth": "masks"}).passed  # with masks: the mIoU drop, 4 points


def test_init_from_keeps_the_classifier_only_for_the_same_classes():
    from kerasseg.models import build_model
    from kerasseg.training.init_from import InitSource, copy_weights

    kwargs = dict(arch="deeplabv3plus", num_classes=3, alpha=0.35, aspp=False, decoder=False)
    source = InitSource("src", "kerasseg run", {**kwargs}, ("bg", "cat", "dog"), build_model(**kwargs))
    for labels, kept in ((("bg", "cat", "dog"), True), (("bg", "car", "bus"), False)):
        model, lines = build_model(**kwargs), []
        loaded, skipped = copy_weights(model, source, labels, log=lines.append)
        same = [np.array_equal(a, b) for a, b in zip(model.get_layer("classifier").get_weights(),
                                                      source.model.get_layer("classifier").get_weights())]
        assert all(same) is kept and ("classifier" in loaded) is kept
        assert skipped == ([] if kept else ["classifier (re-initialised: other classes)"]), lines
