"""``train(config)``, top to bottom: prepare, open the run directory, run the loop, sum up.

Each step lives in its own module:

* ``prepare.py``: strategy, seed and precision policy; the dataset, the spec and the model arguments (``Setup``).
* ``kerasseg.rundir``: the run directory (``Run``) and every file in it; created, or resumed after a config check.
* ``loop.py``: the model and optimizer under the strategy, restore, the epochs, validation and checkpoints.
* ``evaluation.py``: the one evaluation loop, shared by validation and ``evaluate.py``.

SIGTERM or Ctrl-C stops training after the current step with a checkpoint, and
``train(config, output_dir=..., resume=True)`` continues from that step.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os

from kerasseg.backend import tf
from kerasseg.data import DatasetError
from kerasseg.rundir.run import best_entry, open_run
from kerasseg.training.config import TrainConfig
from kerasseg.training.loop import fit
from kerasseg.training.prepare import prepare


@dataclasses.dataclass
class TrainResult:
    run_dir: str
    steps: int
    best_epoch: int
    best: dict          # val results of the best epoch (ConfusionMatrix.results)
    last: dict          # val results of the last epoch
    history: list
    seconds: float      # over the whole run, resumes included
    skipped_files: dict  # split -> messages naming each bad file skipped (--skip-bad-files) and why


def train(config: TrainConfig, *, output_dir: str | None = None, resume: bool = False, check_data: bool = False,
          verbose: bool = True, init_source=None) -> TrainResult:
    """Train ``config`` into ``output_dir`` (default: a new folder under ``runs/``); see the module docstring.

    ``init_source``: the model ``config.init_from`` names, already opened (``init_from.resolve_with_source``);
    without it a new run opens that model itself.
    """
    log = print if verbose else _silent
    setup = prepare(config, check_data=check_data, log=log)
    run = open_run(output_dir, config=setup.document(), spec=setup.spec, resume=resume, chief=setup.chief,
                   multi_worker=setup.multi_worker)
    with _failing_well(run, setup.source, created=not resume):
        outcome = fit(setup, run, resume=resume, log=log, verbose=verbose, init_source=init_source)
    best = best_entry(outcome.history)
    return TrainResult(run_dir=run.path, steps=outcome.steps, best_epoch=best["epoch"], best=best["val"],
                       last=outcome.history[-1]["val"], history=outcome.history, seconds=outcome.elapsed_seconds,
                       skipped_files=outcome.skipped_files)


@contextlib.contextmanager
def _failing_well(run, source, *, created: bool):
    """A run this call created that fails before its first checkpoint is removed, so that ``--resume`` never meets
    it; a bad file met inside the input pipeline surfaces as its own ``DatasetError``, with what to do next."""
    try:
        yield
    except BaseException as err:
        checkpoint = run.latest_checkpoint()
        if created and checkpoint is None:
            run.discard()
        bad = getattr(source, "failure", None) if isinstance(err, tf.errors.OpError) else None
        if bad is None:
            raise
        raise DatasetError(f"{bad}\n{_bad_file_advice(run.path, checkpoint)}", kind=bad.kind) from None


def _bad_file_advice(run_dir: str, checkpoint: str | None) -> str:
    if checkpoint is None:
        return (f"Nothing was kept: training stopped before its first checkpoint, so {run_dir} was removed. "
                f"Fix the file, or train with --skip-bad-files to skip and count bad files.")
    return (f"The checkpoints in {run_dir} are kept (latest: {os.path.basename(checkpoint)}). Fix the file and "
            f"continue with: python train.py --resume {run_dir}\n"
            f"or skip and count bad files with: python train.py --resume {run_dir} --skip-bad-files")


def _silent(*args, **kwargs) -> None:
    pass
