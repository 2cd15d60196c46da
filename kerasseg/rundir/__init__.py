"""The run directory: one folder per trained (or imported) model, and the one way to write, find and open it.

It sits above ``kerasseg.models`` (it opens Keras models) and below ``data``, ``training``, ``export`` and the
entry points, which all read or write runs through it:

- ``run.py``: ``Run`` and its files (``config.yaml``, ``spec.json``, ``best.keras``/``last.keras``, checkpoints,
  logs, metrics, pictures); ``open_run`` (create, or resume after comparing the configuration),
  ``load_run``, ``latest_run`` (the newest-run rules) and ``read_config``.
- ``trained.py``: ``open_trained``, a run directory or a ``.keras`` file with its spec, loaded as
  ``evaluate.py``, ``predict.py``, ``convert.py`` and ``train.py --init-from`` need it.
- ``imported.py``: a released DeepLab model written as a run (``python -m kerasseg import``).
"""
from kerasseg.rundir.run import (BEST_MODEL, CONFIG_FILENAME, DEFAULT_ROOT, LAST_MODEL, Run, RunError, config_differences,
                               latest_run, load_run, open_run, read_config)
from kerasseg.rundir.trained import Trained, open_trained, target_or_newest

__all__ = ["BEST_MODEL", "CONFIG_FILENAME", "DEFAULT_ROOT", "LAST_MODEL", "Run", "RunError", "Trained",
           "config_differences", "latest_run", "load_run", "open_run", "open_trained", "read_config",
           "target_or_newest"]
