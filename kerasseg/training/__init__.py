"""Training: configuration, losses, metrics, the distributed loop, and the run directory it writes.

``train(TrainConfig(...))`` trains and writes a run directory; ``load_run(dir)`` / ``latest_run()`` read one
back (config, spec, best model path). The metrics (``ConfusionMatrix``) are the FCN paper's four.
"""
from kerasseg.training.config import TrainConfig, resolve_config
from kerasseg.training.metrics import ConfusionMatrix, ConfusionMatrixMetric, format_results, scores_from_confusion
from kerasseg.training.run import Run, RunError, latest_run, load_run
from kerasseg.training.loop import NonFiniteLossError, TrainingInterrupted
from kerasseg.training.trainer import TrainResult, train

__all__ = ["TrainConfig", "resolve_config", "ConfusionMatrix", "ConfusionMatrixMetric", "format_results",
           "scores_from_confusion", "Run", "RunError", "latest_run", "load_run", "NonFiniteLossError",
           "TrainingInterrupted", "TrainResult", "train"]
