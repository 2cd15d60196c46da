"""The spec, re-exported for the training side.

It is defined in ``edge.spec`` so that the on-device runtime, which imports
neither TensorFlow nor kerasseg, reads exactly the same format.
"""
from edge.spec import (CHANNEL_ORDERS, OUTPUT_KINDS, RESIZE_MODES, SPEC_FILENAME, Spec, SpecError, default_colors,
                       make_spec, parse_size)

__all__ = ["CHANNEL_ORDERS", "OUTPUT_KINDS", "RESIZE_MODES", "SPEC_FILENAME", "Spec", "SpecError",
           "default_colors", "make_spec", "parse_size"]
