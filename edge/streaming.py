"""``from edge import stream``: the camera loop's results in your own code, over the loop ``python -m edge`` runs.

    from edge import stream

    for result in stream("model.tflite", source=0):    # a camera index, video, image folder, URL or picamera2
        result.frame          # the BGR frame
        result.class_map      # (H, W) class ids at the frame's size: what Segmenter.segment(frame) returns
        result.scores         # (h, w, C) scores at the model's resolution (smoothed, as the class map is)
        result.timings        # seconds per stage
        result.overlay        # the picture python -m edge shows (drawn when first read)

The same three threads as ``python -m edge`` (``edge.loop``): capture and inference run ahead while your code
handles a result, and a live source drops the frames your code had no time for. Leaving the loop in any way
(``break``, an exception, Ctrl-C) stops the threads and closes the source it opened and the recording.
"""
from __future__ import annotations

import os

from edge.loop import Loop, LoopResult
from edge.segmenter import Segmenter
from edge.sinks import MaskWriter, Recorder
from edge.smoothing import smoother_for
from edge.sources import open_source

DEFAULT_RECORD_FPS = 15.0


class Stream:
    """What :func:`stream` returns: iterate it (once) for :class:`~edge.loop.Result`\\ s; ``outcome`` afterwards.

    Also a context manager, which closes what :func:`stream` opened even if it was never iterated.
    """

    def __init__(self, loop: Loop, *, owned=(), handle_signals: bool = False):
        self.loop, self._owned, self.handle_signals = loop, list(owned), handle_signals

    def __iter__(self):
        try:
            yield from self.loop.results(handle_signals=self.handle_signals)
        finally:
            self.close()

    @property
    def segmenter(self) -> Segmenter:
        return self.loop.segmenter

    @property
    def outcome(self) -> LoopResult | None:
        """How the run ended (frames, reason, the summary written last to ``stats_json``); None before the end."""
        return self.loop.outcome

    def stop(self) -> None:
        """End the iteration after the current result (from any thread)."""
        self.loop.stop("quit")

    def close(self) -> None:
        """Close the source (and anything else) :func:`stream` opened; the loop closes its recording itself."""
        while self._owned:
            self._owned.pop().close()

    def __enter__(self) -> "Stream":
        return self

    def __exit__(self, *exc) -> None:
        self.loop.stop("quit")
        self.close()


def stream(model, source=0, *, threads: int | None = None, upsample: str | None = None, smooth: float | None = None,
           alpha: float = 0.5, max_frames: int | None = None, record=None, record_fps: float | None = None,
           masks: str | None = None, masks_every: int = 1, stats_json: str | None = None, window=None, server=None,
           show_stats: bool = True, pace_fps: float | None = None, reconnect_seconds: float = 10.0,
           snapshot_dir: str = ".", width: int | None = None, height: int | None = None,
           handle_signals: bool = False) -> Stream:
    """Run ``model`` on ``source`` in the camera loop; iterate the result for each frame's :class:`~edge.loop.Result`.

    ``model``: a ``.tflite`` path (``threads`` and ``upsample``, "exact" by default or "nearest", configure its
    :class:`~edge.segmenter.Segmenter`) or a Segmenter. ``source``: what ``python -m edge --source`` takes (a
    camera index, a video or image path, a folder, a glob, a URL, "picamera2"; ``width``/``height`` for a
    camera), or a source object (``edge.sources``), which stays yours to close. ``smooth``: the previous frames'
    share of the running average of the scores (None: 0.5 unless the model outputs class ids; 0: off).
    ``record``: a video path (or an ``edge.sinks.Recorder``) for the overlay; ``masks``: a folder for each
    ``masks_every``-th frame's class map as an indexed PNG; ``stats_json``: a file (replaced) for a JSON line of stats
    a second; ``window``/``server``: an ``edge.sinks.Window`` and an ``edge.serve.PreviewServer`` to show the
    overlay (yours to close). ``handle_signals``: Ctrl-C and SIGTERM end the iteration instead of raising.
    """
    owned = []
    try:
        if isinstance(model, Segmenter):
            if threads is not None or upsample is not None:
                raise ValueError("stream: threads and upsample configure a model path; set them on the Segmenter")
            segmenter = model
        else:
            segmenter = Segmenter.from_file(model, threads=threads, upsample=upsample or "exact")
        if isinstance(source, (str, int, os.PathLike)):
            source = open_source(os.fspath(source) if isinstance(source, os.PathLike) else str(source),
                                 width=width, height=height)
            owned.append(source)
        smoother = smoother_for(segmenter.kind, smooth, model=segmenter.model_path)
        if record is not None and not isinstance(record, Recorder):
            record = Recorder(os.fspath(record), fps=record_fps or getattr(source, "fps", None) or DEFAULT_RECORD_FPS)
        writer = MaskWriter(os.fspath(masks), colors=segmenter.spec.colors, every=masks_every) if masks else None
        if stats_json and os.path.exists(stats_json):
            os.remove(stats_json)  # a new run's lines, not appended to an old run's
        loop = Loop(segmenter, source, alpha=alpha, max_frames=max_frames, window=window, recorder=record,
                    server=server, masks=writer, stats_json=stats_json, reconnect_seconds=reconnect_seconds,
                    snapshot_dir=snapshot_dir, show_stats=show_stats, pace_fps=pace_fps, smoother=smoother)
    except BaseException:
        for thing in owned:
            thing.close()
        raise
    return Stream(loop, owned=owned, handle_signals=handle_signals)


__all__ = ["DEFAULT_RECORD_FPS", "Stream", "stream"]
