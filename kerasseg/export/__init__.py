"""Export: TFLite conversion modes, quantization-aware fine-tuning, the Edge TPU op report,
the parity report (through the edge runtime's Segmenter), and the spec stored inside each ``.tflite`` file."""
from kerasseg.export.metadata import METADATA_NAME, embed_spec, read_spec
from kerasseg.export.modes import Mode
from kerasseg.export.parity import ParityReport, device_segmenter, parity_report
from kerasseg.export.tflite import convert, float_ops

__all__ = ["METADATA_NAME", "Mode", "ParityReport", "convert", "device_segmenter", "embed_spec", "float_ops",
           "parity_report", "read_spec"]
