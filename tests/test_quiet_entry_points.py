"""A bad input to each entry point is the only line on the screen: no TensorFlow, absl or CUDA start-up lines.

The entry points run as a user runs them, in subprocesses, without the TF_CPP_MIN_LOG_LEVEL the other tests
set, all at once (each spends most of its time importing TensorFlow).
"""
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from training_helpers import ROOT

GIVEN = "given"  # a folder of the files the bad inputs name (the test writes them; nothing else may appear)
NOTES = f"{GIVEN}/notes.keras"  # text, named as a Keras model
BAD_INPUTS = {  # name -> arguments that are bad input, and a phrase of the one error line (after "PROG: error: ")
    "train.py": (["train.py", "--epochs", "0"], "epochs"),
    "train.py (argument)": (["train.py", "--arch", "no-such-arch"], "--arch"),
    "convert.py": (["convert.py", "--int8", "--run", "no/such/run"], "no/such/run"),
    "evaluate.py": (["evaluate.py"], "no runs directory at runs"),  # nothing to default to in an empty folder
    "predict.py": (["predict.py", "--run", "no/such/run", "--input", GIVEN, "--output", "y"], "no/such/run"),
    # The inputs are checked before any model loads: with no run to default to, the missing image is the error.
    "predict.py (image)": (["predict.py", "--input", "nosuch.png", "--output", "y"],
                           "--input: no such image file: nosuch.png"),
    "predict.py (not a model)": (["predict.py", "--model", NOTES, "--spec", f"{GIVEN}/spec.json", "--input", GIVEN,
                                  "--output", "y"], f"{NOTES} is not a Keras model file"),
    "python -m kerasseg.data": (["-m", "kerasseg.data", "check", "nosuch:/x"], "nosuch"),
    "python -m kerasseg.data clip": (["-m", "kerasseg.data", "clip", "--output", "clip.gif"], "clip.gif"),
    "python -m kerasseg.models": (["-m", "kerasseg.models", "--arch", "fcn8s", "--image-size", "3"], "too small"),
    "python -m kerasseg import": (["-m", "kerasseg", "import", "nosuch.tflite", "--output", "runs/x"], "nosuch"),
    "python -m edge": (["-m", "edge", "--model", "m.tflite", "--source", "0", "--smooth", "1.5"], "--smooth"),
}


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "KERASSEG_LOG_LEVEL")}
    env.update(PYTHONPATH=str(ROOT), **extra)
    return env


def _start(argv, cwd, env):
    command = [sys.executable, *(str(ROOT / a) if a.endswith(".py") else a for a in argv)]
    return subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _prog(argv) -> str:
    """What the user typed to start the entry point: ``train.py``, ``python -m edge``, ``python -m kerasseg import``
    (the package's own commands are named with the command)."""
    if argv[0].endswith(".py"):
        return argv[0]
    return f"python -m {argv[1]}" + (f" {argv[2]}" if argv[1] == "kerasseg" else "")


@pytest.mark.slow
def test_a_bad_input_is_one_line_on_stderr_with_exit_2_and_debug_brings_the_start_up_lines_back(tmp_path):
    """Slow: thirteen processes, most of which import TensorFlow (about 5 s each on an idle core), run side by side."""
    from edge.artifact import Spec

    (tmp_path / GIVEN).mkdir()
    (tmp_path / NOTES).write_text("my notes on the model\n")
    cv2.imwrite(str(tmp_path / GIVEN / "photo.png"), np.zeros((8, 8, 3), np.uint8))
    Spec(labels=("background", "thing"), input_size=(32, 32)).save(tmp_path / GIVEN / "spec.json")
    given = sorted(os.listdir(tmp_path / GIVEN))
    running = {name: _start(argv, tmp_path, _env()) for name, (argv, _) in BAD_INPUTS.items()}
    debug = _start(["evaluate.py"], tmp_path, _env(KERASSEG_LOG_LEVEL="DEBUG"))
    for name, process in running.items():
        out, err = process.communicate(timeout=300)
        argv, phrase = BAD_INPUTS[name]
        assert process.returncode == 2, f"{name}: exit {process.returncode}\n{err}"
        assert out == "" and len(err.splitlines()) == 1 and phrase in err, f"{name}:\n{out}\n---\n{err}"
        assert err.startswith(f"{_prog(argv)}: error: "), err  # one prefix style for every entry point
    out, err = debug.communicate(timeout=300)
    assert debug.returncode == 2 and "no runs directory at runs" in err.splitlines()[-1]
    assert "absl::InitializeLog()" in err and "cudart_stub.cc" in err, err  # held back by default, shown now
    assert os.listdir(tmp_path) == [GIVEN] and sorted(os.listdir(tmp_path / GIVEN)) == given  # nothing written
