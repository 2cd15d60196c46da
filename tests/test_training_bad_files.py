"""train.py meets a bad file: a named DatasetError and exit 2, nothing half-made left, and --skip-bad-files counts."""
import json
import os
import time

import numpy as np
import pytest

from kerasseg.backend import tf

from data_helpers import make_folder, write_mask
from training_helpers import load_script


def _dataset(root):
    """A folder dataset of 32x32 px: 4 train images (one batch, so every step reads them all) and 2 val."""
    make_folder(str(root), stems=("s0", "s1", "s2", "s3", "v0", "v1"), size=(32, 32))
    (root / "train.txt").write_text("s0\ns1\ns2\ns3\n")
    (root / "val.txt").write_text("v0\nv1\n")
    return root


def _flags(data, run_dir):
    return ["--dataset", f"folder:{data}", "--image-size", "32", "--batch-size", "4", "--alpha", "0.35", "--no-aspp",
            "--no-decoder", "--warmup-steps", "0", "--learning-rate", "0.01", "--epochs", "2", "--steps-per-epoch",
            "1", "--output-dir", str(run_dir)]


def _metrics(run_dir):
    return json.load(open(run_dir / "metrics.json"))


@pytest.mark.slow
def test_a_bad_file_before_the_first_checkpoint_leaves_nothing(tmp_path, capsys):
    """Slow: train.py builds and traces a model before the bad file stops it (its own folder dataset)."""
    data = _dataset(tmp_path / "data")
    bad = data / "images" / "s1.png"
    bad.write_bytes(b"not a png")
    run_dir = tmp_path / "run"
    assert load_script("train.py").main([*_flags(data, run_dir), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert f"image {bad}: cannot decode" in err and "--skip-bad-files" in err and f"{run_dir} was removed" in err
    assert "Traceback" not in err and "InvalidArgumentError" not in err and "py_function" not in err
    assert not run_dir.exists()  # so a later --resume never picks it up


@pytest.mark.slow
def test_a_bad_file_after_a_checkpoint_keeps_it_and_skip_bad_files_counts(tmp_path, capsys):
    """Slow: three train.py sessions (train, resume onto the bad file, resume skipping it); its own dataset, since
    it damages a file."""
    data = _dataset(tmp_path / "data")
    run_dir = tmp_path / "run"
    train = load_script("train.py")
    assert train.main([*_flags(data, run_dir), "--quiet"]) == 0
    first = _metrics(run_dir)["elapsed_seconds"]
    # Back to the state of a run stopped after epoch 1.
    checkpoints = run_dir / "checkpoints"
    tf.compat.v1.train.update_checkpoint_state(str(checkpoints), "ckpt-1", all_model_checkpoint_paths=["ckpt-1"])
    bad = data / "masks" / "s2.png"
    write_mask(str(bad), np.zeros((16, 32), np.uint8), palette=False)
    capsys.readouterr()

    started = time.time()
    assert train.main(["--resume", str(run_dir), "--quiet"]) == 2
    second_wall = time.time() - started
    err = capsys.readouterr().err
    assert f"mask {bad}" in err and "differs from image size" in err and "Traceback" not in err
    assert f"python train.py --resume {run_dir} --skip-bad-files" in err
    assert "ckpt-1.index" in os.listdir(checkpoints) and (run_dir / "best.keras").is_file()
    second = _metrics(run_dir)["elapsed_seconds"]
    assert first < second <= first + second_wall + 0.1  # the time of every session adds up

    started = time.time()
    assert train.main(["--resume", str(run_dir), "--skip-bad-files"]) == 0
    third_wall = time.time() - started
    out = capsys.readouterr().out
    assert "skipped 1 bad file(s) in train" in out  # the log, after the epoch
    assert f"Skipped 1 bad file(s) in train:\n  mask {bad}" in out  # the final summary
    metrics = _metrics(run_dir)
    assert list(metrics["skipped_files"]) == ["train"] and len(metrics["skipped_files"]["train"]) == 1
    assert f"mask {bad}" in metrics["skipped_files"]["train"][0]
    assert "differs from image size" in metrics["skipped_files"]["train"][0]
    assert [h["epoch"] for h in metrics["history"]] == [1, 2] and metrics["steps"] == 2
    assert second < metrics["elapsed_seconds"] <= second + third_wall + 0.1
