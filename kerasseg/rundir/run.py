"""The run directory: one object, ``Run``, owns every file a training run reads and writes.

::

    runs/20260101-120000-deeplabv3plus/
      config.yaml          train: the resolved TrainConfig; model: the build_model kwargs;
                           derived: labels, scale range, class weights, steps; hardware: strategy, replicas, policy
      spec.json            edge.artifact.Spec: labels, colours, input size, normalisation, ignore label
      best.keras           best model by val mean IoU (kerasseg.models.load_model)
      last.keras           model after the last finished epoch
      checkpoints/         tf.train.CheckpointManager: model, optimizer and step, for --resume
      logs/train, logs/val TensorBoard
      metrics.json         per-epoch history, best epoch, final val metrics, elapsed time, skipped bad files
      val_overlays.png     val images with ground truth and prediction overlays
      confusion_matrix.png val confusion matrix of the best model

``open_run`` creates or resumes one (for training, or for an imported model: imported.py); ``load_run`` /
``latest_run`` read one back. ``--resume`` compares the saved configuration with the wanted one
(``config_differences``). Run directories written before ``derived`` and ``hardware`` existed (the same facts
at the top level) are normalised on read.
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import json
import os
import shutil
import tempfile
from typing import Any, Mapping, NamedTuple

import yaml

from edge import files
from edge.artifact import SPEC_FILENAME, Spec

CONFIG_FILENAME = "config.yaml"
BEST_MODEL = "best.keras"
LAST_MODEL = "last.keras"
CHECKPOINTS = "checkpoints"
LOGS = "logs"
METRICS = "metrics.json"
OVERLAYS = "val_overlays.png"
CONFUSION = "confusion_matrix.png"
DEFAULT_ROOT = "runs"
RUN_FILES = (CONFIG_FILENAME, SPEC_FILENAME, BEST_MODEL, LAST_MODEL, CHECKPOINTS, LOGS, METRICS, OVERLAYS, CONFUSION)
SECTIONS = ("train", "model", "derived", "hardware")
# Where the old (flat) config.yaml kept what now lives in a section.
_OLD_TOP_LEVEL = {"derived": ("labels", "scale_range", "steps_per_epoch", "total_steps", "class_weights"),
                  "hardware": ("strategy", "replicas", "precision_policy")}
# Settings --resume may change: skipping bad files lets a run stopped by one continue.
RESUME_MAY_CHANGE = ("skip_bad_files",)


class RunError(FileNotFoundError):
    """A run directory that is missing or incomplete (the message names the missing file)."""


class Progress(NamedTuple):
    """What ``metrics.json`` carries over a resume."""

    history: list
    elapsed_seconds: float
    skipped_files: dict


@dataclasses.dataclass(frozen=True)
class Run:
    """A training run directory: its config and spec, and every file in it.

    ``chief`` is False on the other workers of a multi-worker run: they read, but write nothing here.
    """

    path: str
    config: dict
    spec: Spec
    chief: bool = True

    def file(self, name: str) -> str:
        """The path of ``name`` (one of ``RUN_FILES``) in this run."""
        return os.path.join(self.path, name)

    @property
    def model_path(self) -> str:
        """The best model by val mean IoU."""
        return self.file(BEST_MODEL)

    @property
    def last_model_path(self) -> str:
        return self.file(LAST_MODEL)

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

    def load_model(self, *, which: str = "best"):
        """Load ``best.keras`` or ``last.keras`` with ``kerasseg.models.load_model``."""
        from kerasseg.models import load_model

        paths = {"best": self.model_path, "last": self.last_model_path}
        if which not in paths:
            raise ValueError(f"which: expected one of {sorted(paths)}, got {which!r}")
        if not os.path.exists(paths[which]):
            raise RunError(f"run {self.path}: no {os.path.basename(paths[which])} (did the first epoch finish?)")
        return load_model(paths[which])

    # ---------------------------------------------------------------- written while training (chief only)

    def save_model(self, model, *, which: str) -> None:
        """Save ``model`` as ``best.keras`` or ``last.keras``."""
        if self.chief:
            with files.atomic_path(self.file({"best": BEST_MODEL, "last": LAST_MODEL}[which])) as tmp:
                model.save(tmp)

    def last_is_best(self) -> None:
        """``last.keras`` as a copy of ``best.keras``, for an epoch whose model is both (no second serialisation)."""
        if self.chief:
            with files.atomic_path(self.file(LAST_MODEL)) as tmp:
                shutil.copyfile(self.file(BEST_MODEL), tmp)

    def write_metrics(self, *, history: list, elapsed_seconds: float, skipped_files: dict) -> None:
        """``metrics.json``: the history, the best and last epochs, the total time and the skipped bad files."""
        if not self.chief:
            return
        best = best_entry(history) if history else None
        files.write_json(self.file(METRICS), {
            "best_epoch": best and best["epoch"], "best": best and best["val"],
            "last": history[-1]["val"] if history else None, "steps": history[-1]["step"] if history else 0,
            "total_steps": self.config["derived"]["total_steps"], "elapsed_seconds": round(elapsed_seconds, 1),
            "skipped_files": skipped_files, "history": history})

    def read_progress(self, *, before_step: int) -> Progress:
        """The history up to ``before_step``, the time spent so far and the bad files skipped so far."""
        path = self.file(METRICS)
        if not os.path.exists(path):
            return Progress([], 0.0, {})
        with open(path, encoding="utf-8") as f:
            metrics = json.load(f)
        return Progress([h for h in metrics.get("history", []) if h["step"] <= before_step],
                        float(metrics.get("elapsed_seconds", 0.0)), dict(metrics.get("skipped_files", {})))

    def latest_checkpoint(self) -> str | None:
        from kerasseg.backend import tf

        return tf.train.latest_checkpoint(self.file(CHECKPOINTS))

    @contextlib.contextmanager
    def checkpoints(self, checkpoint, *, max_to_keep: int = 3):
        """A ``tf.train.CheckpointManager`` for ``checkpoint`` in ``checkpoints/``. The other workers of a
        multi-worker run must save too: they write to a temporary folder, removed on exit."""
        from kerasseg.backend import tf

        directory = self.file(CHECKPOINTS) if self.chief else tempfile.mkdtemp(prefix="kerasseg-worker-")
        try:
            yield tf.train.CheckpointManager(checkpoint, directory, max_to_keep=max_to_keep)
        finally:
            if not self.chief:
                shutil.rmtree(directory, ignore_errors=True)

    def summary_writers(self) -> dict:
        """TensorBoard writers for ``logs/train`` and ``logs/val``."""
        from kerasseg.backend import tf

        if not self.chief:
            return {"train": tf.summary.create_noop_writer(), "val": tf.summary.create_noop_writer()}
        return {name: tf.summary.create_file_writer(self.file(os.path.join(LOGS, name))) for name in ("train", "val")}

    def discard(self) -> None:
        """Remove every file this run wrote, and the directory when nothing else is left in it."""
        if not self.chief:
            return
        for name in RUN_FILES:
            path = self.file(name)
            if os.path.isdir(path):
                shutil.rmtree(path, ignore_errors=True)
            elif os.path.exists(path):
                os.remove(path)
        if os.path.isdir(self.path) and not os.listdir(self.path):
            os.rmdir(self.path)


def config_document(*, train: dict, model: dict, derived: dict, hardware: dict, **more) -> dict:
    """What ``config.yaml`` holds: the sections every run has (``SECTIONS``), then a run's own (an import's
    ``source``)."""
    return {**dict(zip(SECTIONS, (train, model, derived, hardware))), **more}


def best_entry(history: list) -> dict:
    """The first epoch of ``history`` with the highest val mean IoU."""
    return max(history, key=lambda h: -1.0 if h["val"]["mean_iou"] is None else h["val"]["mean_iou"])


def open_run(path: str | None, *, config: dict, spec: Spec, resume: bool, chief: bool = True,
             multi_worker: bool = False) -> Run:
    """Create a run directory (``path``, default a new folder under ``runs/``) or resume the one at ``path``.

    A new run refuses a directory that already holds one; a resumed run refuses a different configuration
    (the ``hardware`` section and ``RESUME_MAY_CHANGE`` may differ). Writes ``config.yaml`` and ``spec.json``.
    """
    if multi_worker and not path:
        raise ValueError("output_dir: multi-worker training needs the same --output-dir on every worker "
                         "(on a filesystem they share, for --resume)")
    path = path or new_run_dir(arch=config["model"]["arch"])
    if resume:
        _check_resumable(path, config)
    elif chief and os.path.exists(os.path.join(path, CONFIG_FILENAME)):
        raise FileExistsError(f"output_dir {path} already holds a run; continue it with --resume "
                              f"or choose another --output-dir")
    run = Run(path=path, config=config, spec=spec, chief=chief)
    if chief:
        os.makedirs(path, exist_ok=True)
        files.write_yaml(run.file(CONFIG_FILENAME), config)
        spec.save(run.file(SPEC_FILENAME))
    return run


def _check_resumable(path: str, config: dict) -> None:
    saved = read_config(path)
    differences = []
    for section in ("train", "model", "derived"):
        old, new = dict(saved.get(section, {})), dict(config[section])
        if section == "model":
            old = _with_new_defaults(old)
        for key in RESUME_MAY_CHANGE if section == "train" else ():
            old.pop(key, None), new.pop(key, None)
        differences += config_differences(old, new)
    if differences:
        raise ValueError(f"--resume {path}: the configuration differs from the checkpoint's, refusing to resume:\n  "
                         + "\n  ".join(differences))


def _with_new_defaults(model_kwargs: dict) -> dict:
    """A saved run's build arguments with the defaults of options added since it was written."""
    from kerasseg.models import model_config
    try:
        return model_config(**model_kwargs)
    except (ValueError, TypeError):
        return model_kwargs  # compared as it is; the difference will be named


def config_differences(saved: Mapping[str, Any], wanted: Mapping[str, Any]) -> list[str]:
    """Human-readable differences between two config dicts, for refusing a mismatched resume."""
    out = []
    for key in sorted(set(saved) | set(wanted)):
        a, b = saved.get(key), wanted.get(key)
        if isinstance(a, tuple):
            a = list(a)
        if isinstance(b, tuple):
            b = list(b)
        if a != b:
            out.append(f"{key}: checkpoint has {a!r}, now {b!r}")
    return out


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
    """``config.yaml`` of a run directory, with the sections ``train``, ``model``, ``derived`` and ``hardware``."""
    path = os.path.join(run_dir, CONFIG_FILENAME)
    if not os.path.isfile(path):
        raise RunError(f"run {run_dir}: missing {CONFIG_FILENAME}; is this a kerasseg run directory?")
    with open(path, encoding="utf-8") as f:
        config = yaml.safe_load(f)
    if not isinstance(config, dict) or not isinstance(config.get("model"), dict) \
            or not isinstance(config.get("train"), dict):
        raise RunError(f"{path}: expected the mappings 'train' and 'model', got {config!r:.200}")
    return normalize_config(config)


def normalize_config(config: dict) -> dict:
    """The current schema of a config read from disk: an old flat config's top-level facts move to their section
    (``dataset``, ``image_size`` and ``seed``, written twice before, are kept once, under ``train``)."""
    config = dict(config)
    train = dict(config.pop("train"))
    for key in ("dataset", "image_size", "seed"):
        if key in config:
            train.setdefault(key, config.pop(key))
    out = {"train": train, "model": config.pop("model")}
    for section, keys in _OLD_TOP_LEVEL.items():
        out[section] = {**{k: config.pop(k) for k in keys if k in config}, **dict(config.pop(section, None) or {})}
    out.update(config)  # anything unknown is kept as it was
    return out


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


def latest_run(root: str | os.PathLike = DEFAULT_ROOT, *, require_model: bool = True,
               require_checkpoint: bool = False) -> Run:
    """The most recently modified run under ``root`` that ``load_run`` accepts (and, with ``require_checkpoint``,
    that has a checkpoint to resume from)."""
    root = os.fspath(root)
    if not os.path.isdir(root):
        raise RunError(f"no runs directory at {root} (train a model with `python train.py`, or name a run)")
    candidates = []
    for name in os.listdir(root):
        path = os.path.join(root, name)
        if os.path.isfile(os.path.join(path, CONFIG_FILENAME)):
            candidates.append((os.path.getmtime(os.path.join(path, CONFIG_FILENAME)), path))
    for _, path in sorted(candidates, reverse=True):
        try:
            run = load_run(path, require_model=require_model)
        except RunError:
            continue
        if not require_checkpoint or os.path.isfile(os.path.join(path, CHECKPOINTS, "checkpoint")):
            return run
    raise RunError(f"no complete run under {root} (looked at {len(candidates)} directories; train a model with "
                   f"`python train.py`, or name a run)")
