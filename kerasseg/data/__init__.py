"""Datasets and the input pipeline.

``open_dataset(uri)`` gives a source (built-in synthetic shapes, PASCAL VOC,
image/mask folders, TFDS); ``build_pipeline`` turns it into augmented batches;
``check_dataset`` and ``class_weights`` read its label statistics.
``python -m kerasseg.data check URI`` prints the dataset check.
"""
from kerasseg.data.base import IGNORE_LABEL, SPLITS, DatasetError, DatasetSource, Example
from kerasseg.data.check import DatasetCheckError, DatasetReport, check_dataset, class_weights
from kerasseg.data.pipeline import build_pipeline
from kerasseg.data.sources import DEFAULT_URI, SCHEMES, open_dataset

__all__ = ["IGNORE_LABEL", "SPLITS", "DEFAULT_URI", "SCHEMES", "DatasetError", "DatasetCheckError", "DatasetReport",
           "DatasetSource", "Example", "build_pipeline", "check_dataset", "class_weights", "open_dataset"]
