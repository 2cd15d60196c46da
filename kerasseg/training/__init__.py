"""Training: configuration, losses, metrics, the distributed loop, and fine-tuning a trained model (``init_from``).

``train(TrainConfig(...))`` trains and writes a run directory (``kerasseg.rundir``, whose ``load_run(dir)`` /
``latest_run()`` read one back and are re-exported here). The metrics (``ConfusionMatrix``) are the FCN paper's
four.
"""
from kerasseg.rundir import Run, RunError, latest_run, load_run
from kerasseg.training.config import TrainConfig, resolve_config
from kerasseg.training.metrics import ConfusionMatrix, ConfusionMatrixMetric, format_results, scores_from_confusion
from kerasseg.training.loop import NonFiniteLossError, TrainingInterrupted
from kerasseg.training.trainer import TrainResult, train

__all__ = ["TrainConfig", "resolve_config", "ConfusionMatrix", "ConfusionMatrixMetric", "format_results",
           "scores_from_confusion", "Run", "RunError", "latest_run", "load_run", "NonFiniteLossError",
           "TrainingInterrupted", "TrainResult", "train"]
