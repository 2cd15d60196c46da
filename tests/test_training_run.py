"""A tiny training run writes every run-directory file, and evaluate.py / predict.py read it."""
import json
import os

import cv2
import numpy as np
import pytest
import yaml

from edge.artifact import Spec
from kerasseg.training import ConfusionMatrix, RunError, TrainConfig, latest_run, load_run, train
from training_helpers import TINY_CONFIG, load_script, run_script

RUN_FILES = ("config.yaml", "spec.json", "best.keras", "last.keras", "checkpoints/checkpoint", "metrics.json",
             "val_overlays.png", "confusion_matrix.png")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = str(tmp_path_factory.mktemp("run") / "tiny")
    result = train(TrainConfig(**TINY_CONFIG, epochs=3, steps_per_epoch=12, seed=1), output_dir=run_dir,
                   verbose=False)
    return run_dir, result


@pytest.mark.slow
def test_run_directory_holds_every_file(tiny_run):
    """Slow: reads the module's ``tiny_run`` (train() for 3 epochs of 12 steps), shared by the tests below."""
    run_dir, result = tiny_run
    for name in RUN_FILES:
        assert os.path.isfile(os.path.join(run_dir, name)), name
    for sub in ("train", "val"):
        assert any(n.startswith("events.out.tfevents") for n in os.listdir(os.path.join(run_dir, "logs", sub)))
    assert not [n for n in os.listdir(run_dir) if ".tmp" in n]  # atomic writes leave no temporaries
    assert cv2.imread(os.path.join(run_dir, "val_overlays.png")).shape[0] > 100

    config = yaml.safe_load(open(os.path.join(run_dir, "config.yaml")))
    assert list(config) == ["train", "model", "derived", "hardware"]  # one schema, each key once
    train_config = config["train"]
    assert train_config["dataset"] == TINY_CONFIG["dataset"] and train_config["image_size"] == [32, 32]
    assert train_config["seed"] == 1
    assert config["model"] == {"arch": "deeplabv3plus", "num_classes": 5, "backbone": "mobilenetv2",
                               "output_stride": 16, "aspp": False, "decoder": False, "dropout": 0.1,
                               "edgetpu_friendly": False, "align_corners": False, "alpha": 0.35,
                               "channel_rounding": "keras", "head_filters": 256}
    assert config["train"]["learning_rate"] == 0.01 and config["derived"]["total_steps"] == 36
    assert config["derived"]["labels"] == ["background", "circle", "square", "triangle", "cross"]
    assert config["hardware"] == {"strategy": "default", "replicas": 1, "precision_policy": "float32"}

    spec = Spec.load(run_dir)
    assert spec.labels == ("background", "circle", "square", "triangle", "cross")
    assert spec.input_size == (32, 32) and spec.output_kind == "logits" and spec.ignore_label == 255
    from kerasseg.models import preprocessing_for
    expected = preprocessing_for(arch="deeplabv3plus", backbone="mobilenetv2")
    assert spec.mean == tuple(expected["mean"]) and spec.channel_order == expected["channel_order"]

    metrics = json.load(open(os.path.join(run_dir, "metrics.json")))
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3] and metrics["steps"] == 36
    assert metrics["skipped_files"] == {} and metrics["elapsed_seconds"] == pytest.approx(result.seconds, abs=0.5)
    assert metrics["best"] == result.best and set(result.best) >= {"pixel_accuracy", "mean_accuracy", "mean_iou",
                                                                   "frequency_weighted_iou", "per_class_iou"}


@pytest.mark.slow
def test_a_few_steps_lower_the_loss(tiny_run):
    """Slow only by its fixture, the module's ``tiny_run``."""
    _, result = tiny_run
    losses = [h["train_loss"] for h in result.history]
    assert losses[-1] < losses[0], losses


@pytest.mark.slow
def test_best_model_reproduces_its_val_metrics(tiny_run):
    """Slow: evaluates the module's ``tiny_run`` model on its val set."""
    run_dir, result = tiny_run
    run = load_run(run_dir)
    model = run.load_model()
    from kerasseg.data import build_pipeline, open_dataset

    source = open_dataset(run.dataset, seed=run.seed)
    cm = ConfusionMatrix(run.spec.num_classes)
    for images, masks in build_pipeline(source, split="val", image_size=run.spec.input_size, batch_size=4,
                                        training=False):
        cm.update(masks.numpy(), np.argmax(model.predict_on_batch(images), axis=-1))
    assert cm.results(labels=run.spec.labels)["mean_iou"] == pytest.approx(result.best["mean_iou"], abs=1e-6)


@pytest.mark.slow
def test_evaluate_and_predict_commands(tiny_run, tmp_path):
    """Slow: evaluate.py (twice, once with CRF) and predict.py as subprocesses on the module's ``tiny_run``."""
    run_dir, result = tiny_run
    out = run_script("evaluate.py", run_dir, "--output", tmp_path / "eval.json")
    assert out.returncode == 0, out.stderr
    report = json.load(open(tmp_path / "eval.json"))
    assert report["results"]["mean_iou"] == pytest.approx(result.best["mean_iou"], abs=1e-6)
    for name in ("pixel_accuracy", "mean_accuracy", "mean_iou", "frequency_weighted_iou", "circle"):
        assert name in out.stdout

    out = run_script("evaluate.py", run_dir, "--scales", "0.5", "1.0", "1.5", "--flip", "--crf",
                     "--output", tmp_path / "ms.json")
    assert out.returncode == 0, out.stderr
    report = json.load(open(tmp_path / "ms.json"))
    assert report["scales"] == [0.5, 1.0, 1.5] and report["flip"] is True
    assert 0.0 <= report["crf_results"]["mean_iou"] <= 1.0 and "with CRF" in out.stdout

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    cv2.imwrite(str(images / "a.png"), rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    cv2.imwrite(str(images / "b.jpg"), rng.integers(0, 255, (30, 30, 3), dtype=np.uint8))
    out = run_script("predict.py", "--run", run_dir, "--input", images, "--output", tmp_path / "pred")
    assert out.returncode == 0, out.stderr
    labels = cv2.imread(str(tmp_path / "pred" / "a_labels.png"), cv2.IMREAD_UNCHANGED)
    assert labels.shape == (40, 50) and labels.max() < 5
    mask = cv2.imread(str(tmp_path / "pred" / "a_mask.png"))
    colors = {tuple(int(v) for v in c[::-1]) for c in Spec.load(run_dir).colors}  # BGR on disk
    assert {tuple(p) for p in mask.reshape(-1, 3)} <= colors
    for stem, (height, width) in (("a", (40, 50)), ("b", (30, 30))):
        ids = cv2.imread(str(tmp_path / "pred" / f"{stem}_labels.png"), cv2.IMREAD_UNCHANGED)
        overlay = cv2.imread(str(tmp_path / "pred" / f"{stem}_overlay.png"))
        if (ids > 0).any():  # a tinted class: its legend sits beside an image this small, on a panel
            assert overlay.shape[0] >= height and overlay.shape[1] > width and overlay.shape[2] == 3
            assert {tuple(p) for p in overlay[:height, width:].reshape(-1, 3)} - {(32, 32, 32)}
        else:  # background only: left untinted, and no colour for a legend to explain
            assert overlay.shape == (height, width, 3)


def test_evaluate_and_predict_report_bad_input(tmp_path, capsys):
    assert load_script("evaluate.py").main([str(tmp_path / "missing")]) == 2
    assert "no such directory or model file" in capsys.readouterr().err
    photo = tmp_path / "photo.png"  # predict.py checks its input before it opens the run
    cv2.imwrite(str(photo), np.zeros((8, 8, 3), np.uint8))
    assert load_script("predict.py").main(["--run", str(tmp_path), "--input", str(photo),
                                           "--output", str(tmp_path / "o")]) == 2
    assert "missing config.yaml" in capsys.readouterr().err and not (tmp_path / "o").exists()


def _fake_run(path, *, model=True):
    from edge.artifact import Spec

    os.makedirs(path)
    (path / "config.yaml").write_text(yaml.safe_dump({"train": {}, "model": {"arch": "deeplabv3plus"}}))
    Spec(labels=("a", "b"), input_size=(8, 8)).save(path)
    if model:
        (path / "best.keras").write_bytes(b"")


def test_load_run_and_latest_run(tmp_path):
    with pytest.raises(RunError, match="run directory not found"):
        load_run(tmp_path / "nope")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(RunError, match="missing config.yaml"):
        load_run(empty)
    _fake_run(tmp_path / "runs" / "a")
    _fake_run(tmp_path / "runs" / "b", model=False)
    os.utime(tmp_path / "runs" / "a" / "config.yaml", (1, 1))
    run = load_run(tmp_path / "runs" / "a")
    assert run.spec.labels == ("a", "b") and run.model_path.endswith("best.keras")
    assert run.model_kwargs == {"arch": "deeplabv3plus"}
    with pytest.raises(RunError, match="missing best.keras"):
        load_run(tmp_path / "runs" / "b")
    # b is newer but has no model: latest_run skips it unless the model is not required.
    assert latest_run(tmp_path / "runs").path.endswith("a")
    assert latest_run(tmp_path / "runs", require_model=False).path.endswith("b")
    os.remove(tmp_path / "runs" / "a" / "spec.json")
    with pytest.raises(RunError, match="missing spec.json"):
        load_run(tmp_path / "runs" / "a")


def test_latest_run_for_resume_needs_a_checkpoint(tmp_path):
    _fake_run(tmp_path / "runs" / "old", model=False)
    _fake_run(tmp_path / "runs" / "failed", model=False)  # newer, but never reached a checkpoint
    os.utime(tmp_path / "runs" / "old" / "config.yaml", (1, 1))
    os.makedirs(tmp_path / "runs" / "old" / "checkpoints")
    (tmp_path / "runs" / "old" / "checkpoints" / "checkpoint").write_text('model_checkpoint_path: "ckpt-5"\n')
    assert latest_run(tmp_path / "runs", require_model=False).path.endswith("failed")
    assert latest_run(tmp_path / "runs", require_model=False, require_checkpoint=True).path.endswith("old")


OLD_CONFIG = {  # config.yaml as runs wrote it before the sections: dataset, image_size and seed twice
    "train": {"arch": "deeplabv3plus", "dataset": "synthetic:24?val=8&size=32", "image_size": [32, 32], "seed": 3,
              "epochs": 2, "skip_bad_files": False},
    "model": {"arch": "deeplabv3plus", "num_classes": 5, "backbone": "mobilenetv2"},
    "dataset": "synthetic:24?val=8&size=32", "image_size": [32, 32], "scale_range": [0.8, 1.25], "seed": 3,
    "labels": ["background", "circle", "square", "triangle", "cross"], "steps_per_epoch": 6, "total_steps": 12,
    "class_weights": None, "strategy": "default", "replicas": 1, "precision_policy": "float32",
}


def test_an_old_schema_run_directory_still_loads(tmp_path):
    from edge.artifact import Spec
    from kerasseg.rundir import read_config

    path = tmp_path / "old"
    path.mkdir()
    (path / "config.yaml").write_text(yaml.safe_dump(OLD_CONFIG))
    Spec(labels=tuple(OLD_CONFIG["labels"]), input_size=(32, 32)).save(path)
    run = load_run(path, require_model=False)
    assert (run.dataset, run.seed, run.image_size) == ("synthetic:24?val=8&size=32", 3, (32, 32))
    assert run.model_kwargs == OLD_CONFIG["model"]
    assert run.config == read_config(str(path)) == {
        "train": OLD_CONFIG["train"], "model": OLD_CONFIG["model"],
        "derived": {"labels": OLD_CONFIG["labels"], "scale_range": [0.8, 1.25], "steps_per_epoch": 6,
                    "total_steps": 12, "class_weights": None},
        "hardware": {"strategy": "default", "replicas": 1, "precision_policy": "float32"}}
    with pytest.raises(RunError, match="missing best.keras"):
        load_run(path)
