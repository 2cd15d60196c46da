"""The run directory: what a training run writes, and how other commands find and read it.

::

    runs/20260101-120000-deeplabv3plus/
      config.yaml          resolved TrainConfig + `model` (the build_model kwargs) + dataset facts
      spec.json            kerasseg.artifact.Spec: labels, colours, input size, normalisation, ignore label
      best.keras           best model by val mean IoU (kerasseg.models.load_model)
      last.keras           model after the last finished epoch
      checkpoints/         tf.train.CheckpointManager: model, optimizer, epoch and step, for --resume
      logs/train, logs/val TensorBoard
      metrics.json         per-epoch history, best epoch, final val metrics
      val_overlays.png     val images with ground truth and prediction overlays
      confusion_matrix.png val confusion matrix of the best model
"""
from __future__ import annotations

import dataclasses
import datetime
import json
import os

import yaml

from kerasseg.artifact import SPEC_FILENAME, Spec
from kerasseg.training.config import CONFIG_FILENAME

BEST_MODEL = "best.keras"
LAST_MODEL = "last.keras"
CHECKPOINTS = "checkpoints"
LOGS = "logs"
METRICS = "metrics.json"
OVERLAYS = "val_overlays.png"
CONFUSION = "confusion_matrix.png"
DEFAULT_ROOT = "runs"


class RunError(FileNotFoundError):
    """A run directory that is missing or incomplete (the message names the missing file)."""


@dataclasses.dataclass(frozen=True)
class Run:
    """A finished (or interrupted) training run read from disk."""

    path: str
    config: dict
    spec: Spec

    @property
    def model_path(self) -> str:
        """The best model by val mean IoU."""
        return os.path.join(self.path, BEST_MODEL)

    @property
    def last_model_path(self) -> str:
        return os.path.join(self.path, LAST_MODEL)

    @property
    def checkpoint_dir(self) -> str:
        return os.path.join(self.path, CHECKPOINTS)

    @property
    def dataset(self) -> str:
        """The URI of the dataset the run trained on."""
        return self.config["train"]["dataset"]

    @property
    def seed(self) -> int:
        return int(self.config["train"].get("seed", 0))

    @property
    def image_size(self) -> tuple[int, int]:
        """The (height, width) the run trained at."""
        return tuple(int(v) for v in self.config["train"]["image_size"])

    @property
    def model_kwargs(self) -> dict:
        """The ``build_model`` keyword arguments the run used."""
        return dict(self.config["model"])

    @property
    def metrics(self) -> dict | None:
        path = os.path.join(self.path, METRICS)
        if not os.path.exists(path):
            return None
        with open(path, encoding="utf-8") as f:
            return json.load(f)

    def load_model(self, *, which: str = "best"):
        """Load ``best.keras`` or ``last.keras`` with ``kerasseg.models.load_model``."""
        from kerasseg.models import load_model

        paths = {"best": self.model_path, "last": self.last_model_path}
        if which not in paths:
            raise ValueError(f"which: expected one of {sorted(paths)}, got {which!r}")
        if not os.path.exists(paths[which]):
            raise RunError(f"run {self.path}: no {os.path.basename(paths[which])} (did the first epoch finish?)")
        return load_model(paths[which])


def new_run_dir(*, arch: str, root: str = DEFAULT_ROOT) -> str:
    """A fresh ``root/YYYYmmdd-HHMMSS-arch`` directory path (not created); suffixed if it already exists."""
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = os.path.join(root, f"{stamp}-{arch}")
    path, n = base, 1
    while os.path.exists(path):
        n += 1
        path = f"{base}-{n}"
    return path


def read_config(run_dir: str) -> dict:
    path = os.path.join(run_dir, CONFIG_FILENAME)
    if not os.path.isfile(path):
        raise RunError(f"run {run_dir}: missing {CONFIG_FILENAME}; is this a kerasseg run directory?")
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    if not isinstance(config, dict) or "model" not in config or "train" not in config:
        raise RunError(f"{path}: expected the mappings 'train' and 'model', got {config!r:.200}")
    return config


def load_run(run_dir: str | os.PathLike, *, require_model: bool = True) -> Run:
    """Read a run directory: its config, spec and (unless ``require_model=False``) the best model's path."""
    run_dir = os.fspath(run_dir)
    if not os.path.isdir(run_dir):
        raise RunError(f"run directory not found: {run_dir}")
    config = read_config(run_dir)
    spec_path = os.path.join(run_dir, SPEC_FILENAME)
    if not os.path.isfile(spec_path):
        raise RunError(f"run {run_dir}: missing {SPEC_FILENAME}")
    run = Run(path=run_dir, config=config, spec=Spec.load(spec_path))
    if require_model and not os.path.isfile(run.model_path):
        raise RunError(f"run {run_dir}: missing {BEST_MODEL} (the run stopped before its first validation)")
    return run


def latest_run(root: str | os.PathLike = DEFAULT_ROOT, *, require_model: bool = True) -> Run:
    """The most recently modified run under ``root`` that ``load_run`` accepts."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise RunError(f"no runs directory at {root}")
    candidates = []
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if os.path.isfile(os.path.join(path, CONFIG_FILENAME)):
            candidates.append((os.path.getmtime(os.path.join(path, CONFIG_FILENAME)), path))
    for _, path in sorted(candidates, reverse=True):
        try:
            return load_run(path, require_model=require_model)
        except RunError:
            continue
    raise RunError(f"no complete run under {root} (looked at {len(candidates)} directories)")
