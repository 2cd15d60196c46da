"""Export: TFLite conversion modes, quantization-aware fine-tuning, the Edge TPU op report,
and the parity report (through the edge runtime's Segmenter). What each ``.tflite`` file carries (the spec,
the standard metadata) is written and read by ``edge.artifact``."""
from kerasseg.export.modes import Mode
from kerasseg.export.parity import ParityReport, device_segmenter, parity_report
from kerasseg.export.tflite import convert, float_ops

__all__ = ["Mode", "ParityReport", "convert", "device_segmenter", "float_ops", "parity_report"]
