"""kerasseg's on-device runtime: numpy, OpenCV and a TFLite interpreter, never TensorFlow.

Modules (import what you need; this package imports nothing itself):

- the spec and the metadata inside a ``.tflite`` come from ``kerasseg.artifact`` (no TensorFlow there either).
- ``edge.interpreter``: choose ai_edge_litert / tflite_runtime / tensorflow.lite; the Edge TPU delegate.
- ``edge.segmenter``: ``Segmenter``: BGR frame -> class map (preprocess, invoke, dequantize, argmax).
- ``edge.visualize``: pure drawing functions (colourise, overlay, legend, stats panel).
- ``edge.sources``, ``edge.loop``, ``edge.serve``: frame sources, the threaded loop and its sinks, the
  browser preview.
- ``python -m edge`` (``edge.cli``) and ``python -m edge.benchmark``: the command lines.
"""
