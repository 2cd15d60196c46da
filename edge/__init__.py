"""kerasseg's on-device runtime: numpy, OpenCV and a TFLite interpreter, never TensorFlow.

Modules (import what you need; this package imports nothing itself):

- ``edge.artifact``: the spec and the metadata inside a ``.tflite``; the training side writes artifacts through it.
- ``edge.files``: atomic file writes, used by the whole project.
- ``edge.interpreter``: choose ai_edge_litert / tflite_runtime / tensorflow.lite; the Edge TPU delegate.
- ``edge.segmenter``: ``Segmenter``: BGR frame -> class map (preprocess, invoke, dequantize, argmax).
- ``edge.visualize``: pure drawing functions (colourise, overlay, legend, stats panel).
- ``edge.sources``: frame sources (camera, video, images, stream, Picamera2).
- ``edge.loop``: the three threads and their hand-offs (and the pacing of a watched video file).
- ``edge.sinks`` (window, recording, snapshots) and ``edge.serve`` (the browser preview): where frames go.
- ``edge.stats``: FPS, ms per stage and CPU outside invoke, per second and over the run.
- ``python -m edge`` (``edge.cli``) and ``python -m edge.benchmark``: the command lines.
"""
