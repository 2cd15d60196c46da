"""``python -m kerasseg.data clip``: a sample video (and stills) from a run's validation images, or from the
built-in dataset when there is no run; it plays through ``python -m edge`` headless."""
import json
import os
import shutil
import subprocess
import sys

import cv2
import pytest
import yaml
from edge_helpers import read_video, run_edge
from export_helpers import TINY_RUN_DATASET, make_tiny_run
from training_helpers import ROOT


@pytest.mark.slow
def test_the_clip_of_the_built_in_dataset_plays_through_the_edge_runtime(tiny_models, tmp_path):
    """Slow: one process that imports TensorFlow (the data package), then a headless edge run; shares tiny_models."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "kerasseg.data", "clip", "--output", "clip.mp4", "--images", "2",
                           "--seconds-per-image", "0.5", "--fps", "8", "--stills", "samples"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    assert "8 frames of 640x480" in done.stdout and "the built-in dataset" in done.stdout, done.stdout
    frames = read_video(tmp_path / "clip.mp4")
    assert len(frames) == 8 and frames[0].shape == (480, 640, 3)
    assert sorted(os.listdir(tmp_path / "samples")) == ["sample_000.png", "sample_001.png"]
    assert cv2.imread(str(tmp_path / "samples" / "sample_000.png")).shape == (64, 64, 3)
    assert (frames[0] != frames[3]).any()  # the view pans
    stats = tmp_path / "stats.jsonl"
    played = run_edge("--model", tiny_models.artifact, "--source", str(tmp_path / "clip.mp4"), "--no-display",
                      "--stats-json", str(stats))
    assert played.returncode == 0, played.stderr
    final = json.loads(stats.read_text().splitlines()[-1])
    assert final["reason"] == "end_of_stream" and final["frames"] == 8


def test_the_clip_of_a_run_uses_its_dataset_and_refuses_bad_arguments(tmp_path, capsys, monkeypatch):
    from kerasseg.data.__main__ import main

    run = make_tiny_run(tmp_path / "runs" / "r")
    monkeypatch.chdir(tmp_path)
    assert main(["clip", "--output", "c.avi", "--images", "1", "--seconds-per-image", "0.25", "--fps", "4",
                 "--size", "48", "64"]) == 0
    out = capsys.readouterr().out
    assert f"run {os.path.relpath(run, tmp_path)} (dataset {TINY_RUN_DATASET})" in out and "1 frames of 64x48" in out
    assert read_video(tmp_path / "c.avi")[0].shape == (48, 64, 3)
    for argv, phrase in ((["--output", "c.gif"], "not a video file name"), (["--output", "no/dir/c.mp4"], "no/dir"),
                         (["--output", "d.mp4", "--images", "0"], "images"),
                         (["--output", "d.mp4", "--run", "no/run"], "no/run")):
        assert main(["clip", *argv]) == 2
        err = capsys.readouterr().err
        assert len(err.splitlines()) == 1 and phrase in err, err
    assert sorted(os.listdir(tmp_path)) == ["c.avi", "runs"]  # nothing written by the refused ones
    # An imported model's run (python -m kerasseg import) names no dataset.
    imported = tmp_path / "runs" / "imported"
    shutil.copytree(run, imported)
    config = yaml.safe_load((imported / "config.yaml").read_text())
    config["train"]["dataset"] = None
    (imported / "config.yaml").write_text(yaml.safe_dump(config))
    assert main(["clip", "--output", "e.avi", "--images", "1", "--seconds-per-image", "0.25", "--fps", "4"]) == 0
    assert "the newest run, runs/imported, names no dataset" in capsys.readouterr().out
    assert main(["clip", "--output", "f.avi", "--run", "runs/imported"]) == 2
    assert "--run runs/imported: the run names no dataset" in capsys.readouterr().err
