"""What the shared session fixtures of tests/conftest.py make, and how they make each thing once.

A test session may run in several processes (pytest-xdist workers), each with its own session fixtures. An
expensive thing (a trained run, its converted artifacts) is still made once: ``made_once`` makes it under a file
lock in the folder all the workers of one session share, and records that it is done (or why it failed), so the
other workers wait for it and then reuse it.
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil
import subprocess
import sys
import traceback
from typing import Callable

ROOT = pathlib.Path(__file__).resolve().parents[1]

# The shared trained run: DeepLabv3+ MobileNetV2 (alpha 0.35, ASPP and decoder) trained by train.py at 96x96 for
# 40 steps of 4 images on 32 synthetic shapes images, 8 for validation. Trained enough that int8 keeps its
# parity and that MediaPipe agrees with the edge runtime; small enough to train in about 20 seconds.
TRAINED_RUN_DATASET = "synthetic?train=32&val=8"
TRAINED_RUN_SIZE = 96
TRAINED_RUN_STEPS = 40
TRAINED_RUN_FLAGS = ("--arch", "deeplabv3plus", "--backbone", "mobilenetv2", "--alpha", "0.35",
                     "--dataset", TRAINED_RUN_DATASET, "--image-size", str(TRAINED_RUN_SIZE), "--epochs", "1",
                     "--steps-per-epoch", str(TRAINED_RUN_STEPS), "--batch-size", "4", "--warmup-steps", "0")
TRAINED_RUN_NAME = "deeplabv3plus_mobilenetv2"  # convert.py names the artifacts after the model
# The heads convert.py makes for each mode, in one call per mode (the README's multi-head command). --max-drop 100:
# the fixture writes every artifact under its good name; a test asserts the parity bound it cares about.
ARTIFACT_HEADS = {"int8": ("native", "full", "argmax", "full-argmax"), "float32": ("native", "full")}
ARTIFACT_FLAGS = ("--calibration-steps", "8", "--parity-images", "8", "--max-drop", "100")
# Flags a mode adds, should it join ARTIFACT_HEADS: few fine-tuning steps (each QAT or Edge TPU step is slow to trace).
MODE_FLAGS = {"qat": ("--qat-steps", "2"), "edgetpu": ("--edgetpu-finetune-steps", "2")}
# The shared FCN-8s run (VGG16, 134M parameters): one train.py step of batch 1 at 64x64, then convert.py --float32
# (its default head, native). About a minute: the checkpoints and the flatbuffer are 0.5 GB each.
FCN8S_RUN_FLAGS = ("--arch", "fcn8s", "--dataset", TRAINED_RUN_DATASET, "--image-size", "64", "--epochs", "1",
                   "--steps-per-epoch", "1", "--batch-size", "1")
FCN8S_CONVERT_FLAGS = ("--float32", "--parity-images", "2")


def shared_root(tmp_path_factory) -> pathlib.Path:
    """The folder every worker of this test session sees: the session's base temp, or with pytest-xdist its parent
    (each worker's base temp is ``pytest-N/popen-gwK``)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def made_once(root: pathlib.Path, key: str, make: Callable[[], None]) -> None:
    """Run ``make()`` once per session across workers: the first caller makes it under ``root/key.lock``; later
    callers wait for the lock and return. If it failed, later callers fail at once with the first one's error."""
    from filelock import FileLock

    done, failed = root / f"{key}.done", root / f"{key}.failed"
    with FileLock(str(root / f"{key}.lock")):
        if failed.exists():
            raise RuntimeError(f"shared fixture {key!r} failed in another test:\n{failed.read_text()}")
        if done.exists():
            return
        try:
            make()
        except BaseException:
            failed.write_text(traceback.format_exc())
            raise
        done.touch()


def made_once_in(tmp_path_factory, name: str, make: Callable[[pathlib.Path], None]) -> pathlib.Path:
    """``shared_root/name``, made by ``make(folder)`` once per session across workers (see ``made_once``)."""
    root = shared_root(tmp_path_factory)
    made_once(root, name, lambda: make(root / name))
    return root / name


def run_python(*args, timeout: float = 900) -> subprocess.CompletedProcess:
    """``python ARGS...`` at the repository root, as a user types it; fail with the output's tail unless it exits 0."""
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run([sys.executable, *map(str, args)], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)
    if done.returncode != 0:
        raise AssertionError(f"python {' '.join(map(str, args))} exited {done.returncode}\n--- stdout\n"
                             f"{done.stdout[-3000:]}\n--- stderr\n{done.stderr[-3000:]}")
    return done


def train_shared_run(run_dir: pathlib.Path) -> None:
    run_python("train.py", *TRAINED_RUN_FLAGS, "--output-dir", run_dir, "--quiet")


def train_and_convert_fcn8s(run_dir: pathlib.Path) -> None:
    run_python("train.py", *FCN8S_RUN_FLAGS, "--output-dir", run_dir, "--quiet")
    run_python("convert.py", "--run", run_dir, *FCN8S_CONVERT_FLAGS)


def copy_run(run_dir: pathlib.Path, destination: pathlib.Path) -> pathlib.Path:
    """A copy of a run directory without its ``export/`` folder: a run to export into, or to damage."""
    shutil.copytree(run_dir, destination, ignore=shutil.ignore_patterns("export"))
    return destination


@dataclasses.dataclass(frozen=True)
class Artifact:
    """One artifact convert.py wrote: the ``.tflite`` (spec inside), and the spec and parity report beside it."""
    mode: str
    head: str
    tflite: pathlib.Path
    spec: pathlib.Path
    parity: pathlib.Path


class Artifacts:
    """``artifacts(mode, head=None)``: the shared run's artifact for ``mode`` ('int8', 'float32') and ``head``
    (None: the mode's default head). The first request for a mode runs ``python convert.py --MODE --head ...``
    once for every head in ARTIFACT_HEADS[mode], into the run's own ``export/``. Read them; do not write there."""

    def __init__(self, run_dir: pathlib.Path, root: pathlib.Path):
        self.run_dir, self.root = run_dir, root

    def __call__(self, mode: str, head: str | None = None) -> Artifact:
        from kerasseg.export.export import default_head, target_paths
        from kerasseg.export.heads import Head
        from kerasseg.export.modes import Mode

        mode_, head_ = Mode.parse(mode), (None if head is None else Head.parse(head))
        head_ = default_head(mode_) if head_ is None else head_
        heads = ARTIFACT_HEADS.get(mode_.value, ())
        if head_.value not in heads:
            raise ValueError(f"artifacts: no shared {mode_.value}/{head_.value} artifact; ARTIFACT_HEADS in "
                             f"tests/shared_helpers.py lists {ARTIFACT_HEADS}")
        made_once(self.root, f"artifacts-{mode_.value}", lambda: run_python(
            "convert.py", "--run", self.run_dir, f"--{mode_.value}", "--head", *heads, *ARTIFACT_FLAGS,
            *MODE_FLAGS.get(mode_.value, ())))
        paths = target_paths(str(self.run_dir / "export"), TRAINED_RUN_NAME, mode_, head_)
        return Artifact(mode_.value, head_.value, **{kind: pathlib.Path(paths[kind])
                                                     for kind in ("tflite", "spec", "parity")})
