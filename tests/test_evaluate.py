"""evaluate.py through main() on a model file alone: its spec from --spec, its data from --dataset."""
import json
import os

from export_helpers import TINY_RUN_DATASET, make_tiny_run
from training_helpers import load_script

evaluate = load_script("evaluate.py")


def test_a_model_file_needs_its_dataset_then_evaluates(tmp_path, capsys):
    run = make_tiny_run(tmp_path / "run")
    model = tmp_path / "alone.keras"
    os.symlink(os.path.join(run, "best.keras"), model)
    spec = os.path.join(run, "spec.json")
    assert evaluate.main([str(model), "--spec", spec]) == 2
    assert "--dataset: required for model" in capsys.readouterr().err
    out = tmp_path / "eval.json"
    assert evaluate.main([str(model), "--spec", spec, "--dataset", TINY_RUN_DATASET, "--output", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["model"] == str(model) and report["dataset"] == TINY_RUN_DATASET
    assert 0.0 <= report["results"]["pixel_accuracy"] <= 1.0 and "mean_iou" in capsys.readouterr().out
    assert evaluate.main([run, "--spec", spec]) == 2
    assert "goes with a model file" in capsys.readouterr().err


def test_without_a_path_it_evaluates_the_newest_run_and_says_which(tmp_path, capsys, monkeypatch):
    old, new = make_tiny_run(tmp_path / "runs" / "20260101-000000-old"), make_tiny_run(tmp_path / "runs" / "x-new")
    stamp = os.path.getmtime(os.path.join(new, "config.yaml"))
    os.utime(os.path.join(old, "config.yaml"), (stamp + 100, stamp + 100))  # the newest by time, not by name
    monkeypatch.chdir(tmp_path)
    assert evaluate.main(["--output", "eval.json"]) == 0
    out = capsys.readouterr().out
    assert out.splitlines()[0] == f"Using the newest run under runs/: {os.path.join('runs', '20260101-000000-old')}"
    assert json.loads((tmp_path / "eval.json").read_text())["model"] == os.path.join("runs", "20260101-000000-old",
                                                                                      "best.keras")
