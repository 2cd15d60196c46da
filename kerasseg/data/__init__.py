"""Datasets and the input pipeline.

``open_dataset(uri)`` gives a source (built-in synthetic shapes, PASCAL VOC and
VOC-style tool exports, image/mask folders, COCO JSON, ADE20K, TFDS); ``with_options`` merges
``--val-fraction`` / ``--colormap`` into a URI; ``build_pipeline`` turns it into augmented batches;
``check_dataset`` and ``class_weights`` read its label statistics.
``python -m kerasseg.data check URI`` prints the dataset check.
"""
from kerasseg.data.base import IGNORE_LABEL, SPLITS, DatasetError, DatasetSource, Example
from kerasseg.data.check import DatasetCheckError, DatasetReport, check_dataset, class_weights
from kerasseg.data.pipeline import build_pipeline
from kerasseg.data.sources import DEFAULT_URI, SCHEMES, open_dataset, with_options

__all__ = ["IGNORE_LABEL", "SPLITS", "DEFAULT_URI", "SCHEMES", "DatasetError", "DatasetCheckError", "DatasetReport",
           "DatasetSource", "Example", "build_pipeline", "check_dataset", "class_weights", "open_dataset",
           "with_options"]
