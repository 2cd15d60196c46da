"""kerasseg's on-device runtime: numpy, OpenCV and a TFLite interpreter, never TensorFlow.

``from edge import stream`` is the way in from your own code (``edge.streaming``): ``for result in
stream("model.tflite", source=0)`` gives each frame's class map, scores and timings.

Modules (import what you need; this package imports nothing until ``stream`` or ``Result`` is asked for):

- ``edge.artifact``: the spec and the metadata inside a ``.tflite``; the training side writes artifacts through it.
- ``edge.files``: atomic file writes, used by the whole project.
- ``edge.interpreter``: choose ai_edge_litert / tflite_runtime / tensorflow.lite; the Edge TPU delegate.
- ``edge.segmenter``: ``Segmenter``: BGR frame -> class map (preprocess, invoke, dequantize, argmax).
- ``edge.visualize``: pure drawing functions (colourise, overlay, legend, stats panel).
- ``edge.sources``: frame sources (camera, video, images, stream, Picamera2).
- ``edge.loop``: the three threads and their hand-offs (and the pacing of a watched video file); ``Result``.
- ``edge.streaming``: ``stream()``, the loop as an iterator of results; ``python -m edge`` runs on it.
- ``edge.sinks`` (window, recording, snapshots, mask PNGs) and ``edge.serve`` (the browser preview): where frames go.
- ``edge.stats``: FPS, ms per stage and CPU outside invoke, per second and over the run.
- ``python -m edge`` (``edge.cli``) and ``python -m edge.benchmark``: the command lines.
"""


def __getattr__(name: str):
    """``stream`` and ``Result`` on first use, so that ``import edge.files`` (the training side) loads no OpenCV."""
    if name == "stream":
        from edge.streaming import stream
        return stream
    if name == "Result":
        from edge.loop import Result
        return Result
    raise AttributeError(f"module 'edge' has no attribute {name!r}")


__all__ = ["Result", "stream"]
