"""The artifact contract: the spec, and what a ``.tflite`` file carries besides its graph.

Plain Python and numpy, no TensorFlow: the training side writes artifacts through
this package and the edge runtime reads them through it, so there is one format,
one reader and one name for each metadata entry. Data flows one way:
``kerasseg.data -> kerasseg.artifact -> kerasseg.models/training -> kerasseg.export -> edge``.
"""
from kerasseg.artifact.spec import (CHANNEL_ORDERS, IGNORE_LABEL, OUTPUT_ALIGNMENTS, OUTPUT_KINDS, RESIZE_MODES,
                                    SPEC_FILENAME, Spec, SpecError, default_colors, parse_size)
from kerasseg.artifact.tflite_file import (SPEC_METADATA_NAME, FlatbufferError, custom_ops, load_spec, read_metadata,
                                           spec_path_beside)

__all__ = ["CHANNEL_ORDERS", "IGNORE_LABEL", "OUTPUT_ALIGNMENTS", "OUTPUT_KINDS", "RESIZE_MODES", "SPEC_FILENAME",
           "SPEC_METADATA_NAME", "FlatbufferError", "Spec", "SpecError", "custom_ops", "default_colors", "load_spec",
           "parse_size", "read_metadata", "spec_path_beside"]
