"""Open a trained model, the one way ``evaluate.py``, ``predict.py`` and ``convert.py`` do it.

A target is a run directory (its ``best.keras`` or ``last.keras``, its spec and config), or a ``.keras`` file
with its spec (``spec_path``, else ``spec.json`` beside it). A ``config.yaml`` beside the file makes that folder
its run, which gives the build arguments, the dataset and the seed; without one they are unknown (None).
"""
from __future__ import annotations

import dataclasses
import os

from edge.artifact import SPEC_FILENAME, Spec
from kerasseg.rundir.run import CONFIG_FILENAME, DEFAULT_ROOT, Run, RunError, latest_run, load_run

WHICH = ("best", "last")


@dataclasses.dataclass(frozen=True)
class Trained:
    """A loaded Keras model with its spec and, when known, its run and what the run says about it."""

    model: object
    spec: Spec
    model_path: str
    run: Run | None = None
    model_kwargs: dict | None = None  # the build_model arguments (None: kerasseg did not build it, or unknown)
    dataset: str | None = None  # the URI of the training data (None: unknown)
    seed: int = 0
    train_size: tuple[int, int] | None = None  # the (height, width) it trained at

    @property
    def folder(self) -> str:
        """The run directory, or the folder holding the model file."""
        return self.run.path if self.run else os.path.dirname(os.path.abspath(self.model_path))


def open_trained(target: str | os.PathLike, *, spec_path: str | os.PathLike | None = None,
                 which: str = "best") -> Trained:
    """Load the model of a run directory (``which``: best or last) or of a ``.keras`` file, with its spec.

    Raises RunError/FileNotFoundError naming the missing file, ValueError for a model that does not load or
    whose output does not match its spec.
    """
    target = os.fspath(target)
    if which not in WHICH:
        raise ValueError(f"which: expected one of {list(WHICH)}, got {which!r}")
    if os.path.isdir(target):
        if spec_path is not None:
            raise ValueError(f"spec: {spec_path} goes with a model file; run {target} has its own {SPEC_FILENAME}")
        run = load_run(target, require_model=which == "best")
        model_path = run.model_path if which == "best" else run.last_model_path
        if not os.path.isfile(model_path):
            raise RunError(f"run {target}: no {os.path.basename(model_path)} (did the first epoch finish?); "
                           f"try --which best")
        spec = run.spec
    elif os.path.isfile(target):
        model_path, folder = target, os.path.dirname(os.path.abspath(target))
        spec_path = os.fspath(spec_path) if spec_path else os.path.join(folder, SPEC_FILENAME)
        if not os.path.isfile(spec_path):
            raise FileNotFoundError(f"spec: no spec at {spec_path}; pass --spec FILE for model {model_path}")
        spec = Spec.load(spec_path)
        has_config = os.path.isfile(os.path.join(folder, CONFIG_FILENAME))
        run = load_run(folder, require_model=False) if has_config else None
    else:
        raise FileNotFoundError(f"{target}: no such directory or model file (expected a run directory or a "
                                f".keras model)")
    model = _load_keras(model_path)
    outputs = model.outputs[0].shape[-1]
    if outputs != spec.num_classes:
        raise ValueError(f"model {model_path}: outputs {outputs} classes but its spec lists {spec.num_classes}: "
                         f"{list(spec.labels)}")
    if run is None:
        return Trained(model=model, spec=spec, model_path=model_path)
    return Trained(model=model, spec=spec, model_path=model_path, run=run, model_kwargs=run.model_kwargs,
                   dataset=run.dataset, seed=run.seed, train_size=run.image_size)


def target_or_newest(target: str | os.PathLike | None, *, runs: str | os.PathLike = DEFAULT_ROOT,
                     log=print) -> str:
    """``target`` if given, else the newest complete run under ``runs``, logged so that the user sees which."""
    if target is not None:
        return os.fspath(target)
    path = latest_run(runs).path
    log(f"Using the newest run under {os.fspath(runs)}/: {path}")
    return path


def _load_keras(path: str):
    from kerasseg.models import load_model
    from kerasseg.models.registry import ModelFileError

    try:
        return load_model(path)
    except ModelFileError as err:
        raise ValueError(f"model: {err}") from None
    except Exception as err:  # keras raises many types for a damaged archive
        raise ValueError(f"model: cannot load {path} ({type(err).__name__}: {str(err).splitlines()[0][:200]})") \
            from None
