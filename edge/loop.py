"""The camera loop: capture, inference and post-processing in three threads; :meth:`Loop.results` yields each frame.

capture thread ──newest input──▶ inference thread ──newest output──▶ caller's thread
(read, reconnect, preprocess)    (invoke only)                        (smooth, class map, render, sinks, keys, stats)

Each hand-over is a one-item slot. For a live source (camera, stream) a new
item replaces an unread one, so stale frames are dropped rather than queued;
for a file every frame is processed (the producer waits for the slot). The
caller's thread post-processes frame N while the interpreter runs frame N+1 and the
capture thread reads and resizes frame N+2, so with a free core the frame rate
is the interpreter's own. OpenCV runs single-threaded meanwhile (``opencv_threads``):
its own pool would spread each resize and blend over every core, onto the one the
interpreter is using. With ``pace_fps`` (a video file that a person watches) the
capture thread releases frames at that rate (:class:`Pacer`). With a ``smoother``
(``edge.smoothing``) the caller's thread averages each output with the previous
ones before post-processing; the capture thread numbers the stretches of continuous
frames (a new one for each file of an image folder and after a reconnect), and a
new stretch restarts the average.

The caller's thread computes each frame's class map with ``Segmenter.postprocess``, the
function ``Segmenter.segment`` ends with, so the loop shows, records and writes exactly
the map ``segment`` returns for that frame (of the smoothed scores, when smoothing).
It renders the overlay only when a sink shows it (or a :class:`Result`'s ``overlay`` is
read). The sinks are in ``edge.sinks`` and ``edge.serve``, the numbers in ``edge.stats``;
``edge.streaming`` (``from edge import stream``) is the public way in.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import signal
import threading
import time

import cv2
import numpy as np

from edge import visualize
from edge.segmenter import CLASS_IDS, Geometry
from edge.sinks import KEY_PAUSE, KEY_QUIT, KEY_SNAPSHOT, MaskWriter, Recorder, Window, save_snapshot
from edge.sources import SourceError
from edge.stats import Stats

log = logging.getLogger(__name__)

# Why a run ended; "closed": the caller left the iteration of Loop.results (a break, an exception in its code).
REASONS = ("end_of_stream", "max_frames", "quit", "signal", "source_lost", "closed")
_CLOSED = object()


class Slot:
    """A one-item hand-over between two threads; ``put(block=False)`` replaces an unread item."""

    def __init__(self):
        self._cond = threading.Condition()
        self._item = None
        self._full = False
        self._closed = False
        self.dropped = 0

    def put(self, item, *, block: bool) -> bool:
        with self._cond:
            if block:
                self._cond.wait_for(lambda: not self._full or self._closed)
            if self._closed:
                return False
            if self._full:
                self.dropped += 1
            self._item, self._full = item, True
            self._cond.notify_all()
            return True

    def get(self, timeout: float | None = None):
        """The item, ``_CLOSED`` once closed and drained, or None on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._full or self._closed, timeout):
                return None
            if self._full:
                item, self._item, self._full = self._item, None, False
                self._cond.notify_all()
                return item
            return _CLOSED

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()


class Pacer:
    """Releases the i-th frame no earlier than i / fps after the first, so a video file plays at its own rate.

    After a stall (a pause, a slow frame) it re-anchors instead of rushing to catch up.
    """

    def __init__(self, fps: float, *, clock=time.monotonic, wait=time.sleep):
        if not fps > 0:
            raise ValueError(f"pace: expected a frame rate > 0, got {fps}")
        self.fps, self.clock, self.wait = fps, clock, wait
        self._start: float | None = None
        self._count = 0

    def pace(self) -> None:
        """Wait until the next frame is due (the first is due at once)."""
        now, interval = self.clock(), 1.0 / self.fps
        if self._start is None or now - (self._start + self._count * interval) > interval:
            self._start = now - self._count * interval
        due = self._start + self._count * interval
        self._count += 1
        if due > now:
            self.wait(due - now)


@dataclasses.dataclass
class LoopResult:
    frames: int
    reason: str  # one of REASONS
    stats: dict  # the run's summary, as written last to --stats-json


@dataclasses.dataclass
class _Item:
    frame: np.ndarray
    timings: dict
    tensor: np.ndarray | None = None
    geometry: Geometry | None = None
    raw: np.ndarray | None = None
    stretch: int = 0  # which stretch of continuous frames it belongs to (see the module docstring)


@dataclasses.dataclass(eq=False)
class Result:
    """One processed frame.

    ``frame``: the BGR frame as the source gave it. ``class_map``: (H, W) class ids at the frame's size, what
    ``Segmenter.segment(frame)`` returns (of the smoothed scores when smoothing is on). ``timings``: seconds per
    stage (capture, preprocess, invoke, postprocess; render and sink when a sink drew the frame). ``index``: the
    frame's number in the order processed, from 0 (a live source's dropped frames are not numbered).
    ``counts``: pixels per class id. ``raw``: the output tensor as the model gave it (or its running average).
    """

    index: int
    frame: np.ndarray
    class_map: np.ndarray
    timings: dict
    geometry: Geometry
    counts: np.ndarray = dataclasses.field(repr=False)
    raw: np.ndarray = dataclasses.field(repr=False)
    _loop: "Loop" = dataclasses.field(repr=False)
    _overlay: np.ndarray | None = dataclasses.field(default=None, repr=False)

    @property
    def scores(self) -> np.ndarray | None:
        """(h, w, C) float32 scores at the model's output resolution, dequantized (and smoothed, when smoothing is
        on); None for a model that outputs class ids."""
        if self._loop.segmenter.kind == CLASS_IDS:
            return None
        return self._loop.segmenter.scores(self.raw)[0]

    @property
    def overlay(self) -> np.ndarray:
        """The picture the window, recording and preview show: classes blended over the frame (background
        untinted), the legend and the stats panel; drawn on first use."""
        if self._overlay is None:
            self._overlay = self._loop.render(self)
        return self._overlay


class Loop:
    """Runs a :class:`~edge.segmenter.Segmenter` on a source and feeds the sinks: iterate :meth:`results`, or
    :meth:`run` to the end."""

    def __init__(self, segmenter, source, *, alpha: float = 0.5, max_frames: int | None = None,
                 window: Window | None = None, recorder: Recorder | None = None, server=None,
                 masks: MaskWriter | None = None, stats_json: str | None = None, reconnect_seconds: float = 10.0,
                 snapshot_dir: str = ".", show_stats: bool = True, pace_fps: float | None = None,
                 opencv_threads: int = 1, smoother=None):
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha: expected a value in [0, 1], got {alpha}")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames: expected a positive integer, got {max_frames}")
        if reconnect_seconds < 0:
            raise ValueError(f"reconnect_seconds: expected >= 0, got {reconnect_seconds}")
        if opencv_threads < 1:
            raise ValueError(f"opencv_threads: expected a positive integer, got {opencv_threads}")
        self.segmenter, self.source = segmenter, source
        self.alpha, self.max_frames = alpha, max_frames
        self.window, self.recorder, self.server, self.masks = window, recorder, server, masks
        self.stats_json, self.reconnect_seconds = stats_json, reconnect_seconds
        self.snapshot_dir, self.show_stats = snapshot_dir, show_stats
        self.opencv_threads, self.pace_fps = opencv_threads, pace_fps
        self.smoother = smoother  # edge.smoothing.Smoother, or None
        self._stretch = 0
        self._continuous = getattr(source, "continuous", True)  # False: each frame is a new file
        self.stop_event = threading.Event()
        self._pacer = Pacer(pace_fps, wait=self.stop_event.wait) if pace_fps is not None else None
        self.stats = Stats(labels=segmenter.spec.labels)
        self._frames_slot, self._results_slot = Slot(), Slot()
        self._error: BaseException | None = None
        self._source_lost = False
        self._stop_reason: str | None = None
        self._started = False
        self.paused = False
        self.snapshots: list[str] = []
        self.reconnects = 0
        self.outcome: LoopResult | None = None  # set when the run ends

    # -- control ------------------------------------------------------------------------------------

    def stop(self, reason: str = "quit") -> None:
        """Ask the loop to finish; safe from any thread and from a signal handler."""
        if self._stop_reason is None:
            self._stop_reason = reason
        self.stop_event.set()
        self._frames_slot.close()
        self._results_slot.close()

    # -- threads ------------------------------------------------------------------------------------

    def _reconnect(self):
        """Reopen a live source with exponential backoff for up to ``reconnect_seconds``; a frame or None."""
        deadline = time.monotonic() + self.reconnect_seconds
        delay = 0.1
        while not self.stop_event.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            log.warning("%s: no frame; reconnecting (%.1f s left)", self.source.name, left)
            self.source.close()
            try:
                self.source.open()
                frame = self.source.read()
            except SourceError as err:
                log.warning("%s", err)
                frame = None
            if frame is not None:
                self.reconnects += 1
                self._stretch += 1  # what the source shows now need not follow what it showed before
                log.info("%s: reconnected", self.source.name)
                return frame
            self.stop_event.wait(min(delay, max(0.0, deadline - time.monotonic())))
            delay = min(delay * 2, 2.0)
        return None

    def _capture(self) -> None:
        try:
            live = self.source.live
            while not self.stop_event.is_set():
                if self._pacer is not None:
                    self._pacer.pace()
                start = time.perf_counter()
                frame = self.source.read()
                took = time.perf_counter() - start
                if frame is None and live:
                    frame = self._reconnect()
                    if frame is None:
                        if not self.stop_event.is_set():
                            log.error("%s: lost; gave up after %.1f s of reconnecting", self.source.name,
                                      self.reconnect_seconds)
                            self._source_lost = True
                        break
                    took = 0.0
                if frame is None:
                    break
                if not self._frames_slot.put(self._prepare(frame, took), block=not live):
                    break
        except BaseException as err:  # handed to the caller's thread, which re-raises it
            self._error = err
        finally:
            self._frames_slot.close()

    def _prepare(self, frame: np.ndarray, capture_seconds: float) -> _Item:
        start = time.perf_counter()
        tensor, geometry = self.segmenter.preprocess(frame)
        timings = {"capture": capture_seconds, "preprocess": time.perf_counter() - start}
        if not self._continuous:
            self._stretch += 1
        return _Item(frame, timings, tensor=tensor, geometry=geometry, stretch=self._stretch)

    def _infer(self) -> None:
        try:
            while True:
                item = self._frames_slot.get()
                if item is _CLOSED or item is None:
                    break
                start, cpu = time.perf_counter(), time.thread_time()
                item.raw = self.segmenter.invoke(item.tensor)  # a copy: safe to postprocess elsewhere
                item.timings["invoke"] = time.perf_counter() - start
                self.stats.add_invoke_cpu(time.thread_time() - cpu)  # dropped results' too
                item.tensor = None
                if not self._results_slot.put(item, block=not self.source.live):
                    break
        except BaseException as err:
            self._error = err
        finally:
            self._results_slot.close()

    # -- the caller's thread ------------------------------------------------------------------------

    def render(self, result: Result) -> np.ndarray:
        """The overlay of ``result``: its class map coloured through a table and blended over its frame, the
        background untinted, with the legend and (``show_stats``) the stats panel."""
        spec = self.segmenter.spec
        fps, stages_ms = self.stats.on_frame()
        return visualize.render(result.frame, result.class_map, labels=spec.labels, colors=spec.colors,
                                alpha=self.alpha, ignore_label=spec.ignore_label,
                                fps=fps if self.show_stats else None, stages_ms=stages_ms, counts=result.counts)

    def _handle_key(self, key: int, image: np.ndarray | None) -> None:
        if key in KEY_QUIT:
            self.stop("quit")
        elif key == KEY_PAUSE:
            self.paused = not self.paused
            log.info("paused" if self.paused else "resumed")
        elif key == KEY_SNAPSHOT and image is not None:
            self.snapshot(image)

    def snapshot(self, image: np.ndarray) -> str:
        """Save ``image`` in ``snapshot_dir`` (the s key); returns its path."""
        path = save_snapshot(image, self.snapshot_dir, index=len(self.snapshots))
        self.snapshots.append(path)
        return path

    def _write_stats(self, record: dict) -> None:
        if self.server is not None:
            self.server.set_stats(record)
        if self.stats_json:
            with open(self.stats_json, "a", encoding="utf-8") as f:
                f.write(json.dumps(record) + "\n")

    def _roll_stats(self) -> None:
        record = self.stats.roll(extra={"dropped": self._frames_slot.dropped + self._results_slot.dropped})
        if record is None:
            return
        stages = " ".join(f"{k} {record['stages_ms'][k]:.1f}" for k in visualize.STAGES
                          if k in record["stages_ms"])
        log.info("%d frames, %.1f FPS, ms: %s, dropped %d", record["frames"], record["fps"], stages,
                 record["dropped"])
        self._write_stats(record)

    def _process(self, item: _Item) -> Result:
        """Frame N in the caller's thread: smoothing, the class map, and what the sinks need of it."""
        start = time.perf_counter()
        raw = item.raw
        if self.smoother is not None:  # a copy: the smoother's buffer changes with the next frame
            raw = self.smoother.update(raw, key=(item.stretch, item.geometry)).copy()
        class_map = self.segmenter.postprocess(raw, item.geometry)
        counts = visualize.class_counts(class_map)
        result = Result(index=self.stats.frames, frame=item.frame, class_map=class_map, timings=item.timings,
                        geometry=item.geometry, counts=counts, raw=raw, _loop=self)
        post = time.perf_counter()
        item.timings["postprocess"] = post - start
        image = None
        if self.recorder is not None or self.server is not None or self.window is not None:
            image = result.overlay
            item.timings["render"] = time.perf_counter() - post
        sink = time.perf_counter()
        if self.masks is not None:
            self.masks.write(result.index, class_map)
        if self.recorder is not None:
            self.recorder.write(image)
        if self.server is not None:
            self.server.publish(image)
        if self.window is not None:
            self.window.show(image)
        if self.masks is not None or image is not None:
            item.timings["sink"] = time.perf_counter() - sink
        for stage, seconds in item.timings.items():
            self.stats.add(stage, seconds)
        self.stats.add_counts(counts)
        self.stats.frame_done()
        return result

    def _main(self):
        """The caller's thread: a :class:`Result` per frame until the stream ends or the loop is stopped."""
        last_image = None
        while not self.stop_event.is_set():
            if self.paused:
                if self.window is not None:
                    self._handle_key(self.window.poll(30), last_image)
                else:
                    self.stop_event.wait(0.03)
                continue
            item = self._results_slot.get(timeout=0.05)
            if item is _CLOSED:
                break
            if item is None:
                if self.window is not None:
                    self._handle_key(self.window.poll(1), last_image)
                self._roll_stats()
                continue
            result = self._process(item)
            last_image = result._overlay
            if self.window is not None:
                self._handle_key(self.window.poll(1), last_image)
            self._roll_stats()
            if self.max_frames is not None and self.stats.frames >= self.max_frames:
                self.stop("max_frames")
            yield result

    def run(self, *, handle_signals: bool = True) -> LoopResult:
        """Run until the stream ends, ``max_frames``, q/Esc, Ctrl-C/SIGTERM or a lost source (see :meth:`results`)."""
        for _ in self.results(handle_signals=handle_signals):
            pass
        return self.outcome

    def results(self, *, handle_signals: bool = False):
        """A :class:`Result` per frame, as it is processed, until the stream ends, ``max_frames``, q/Esc, a
        lost source or :meth:`stop`; with ``handle_signals`` (in the main thread), Ctrl-C and SIGTERM stop it
        too, else Ctrl-C raises KeyboardInterrupt where it lands.

        However it ends (the generator closed by a ``break``, an exception in the caller's code or here), the
        threads stop, the recording is closed (and playable), the final stats line is written and
        :attr:`outcome` is set; an error from a worker thread is re-raised after that. OpenCV's thread count is
        ``opencv_threads`` while it runs (the caller's code between results included) and restored afterwards.
        A loop runs once.
        """
        if self._started:
            raise RuntimeError("a Loop runs once; make a new one")
        self._started = True
        opencv_threads = cv2.getNumThreads()
        cv2.setNumThreads(self.opencv_threads)
        try:
            threads, previous = self._start(handle_signals)
            try:
                yield from self._main()
            except GeneratorExit:
                self.stop("closed")
                raise
            except KeyboardInterrupt:
                self.stop("signal")
                raise
            finally:
                self._finish(threads, previous)
            if self._error is not None:
                raise self._error
        finally:
            cv2.setNumThreads(opencv_threads)

    def _start(self, handle_signals: bool) -> tuple[list, dict]:
        """Read the first frame here (a source that gives none is an error), then start the two threads."""
        self.stats = Stats(labels=self.segmenter.spec.labels)  # windows and CPU time count from here
        if self._pacer is not None:
            self._pacer.pace()  # the first frame is due now; the capture thread paces the rest
        first = self.source.read()
        deadline = time.monotonic() + 2.0
        while first is None and self.source.live and time.monotonic() < deadline:
            time.sleep(0.05)  # some cameras return nothing for their first few reads
            first = self.source.read()
        if first is None:
            if self.recorder is not None:
                self.recorder.close()
            raise SourceError(f"{self.source.name}: opened, but produced no frame")
        self._frames_slot.put(self._prepare(first, 0.0), block=False)
        previous = self._install_signals() if handle_signals else {}
        threads = [threading.Thread(target=self._capture, name="capture", daemon=True),
                   threading.Thread(target=self._infer, name="inference", daemon=True)]
        for thread in threads:
            thread.start()
        return threads, previous

    def _finish(self, threads: list, previous: dict) -> None:
        """Stop and join the threads, close the recording, restore the signal handlers, write the summary."""
        self.stop(self._stop_reason or "end_of_stream")
        for thread in threads:
            thread.join(timeout=5.0)
        if self.recorder is not None:
            self.recorder.close()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        reason = "source_lost" if self._source_lost and self._stop_reason == "end_of_stream" else self._stop_reason
        summary = {"final": True, "reason": reason, "reconnects": self.reconnects,
                   "dropped": self._frames_slot.dropped + self._results_slot.dropped,
                   "snapshots": list(self.snapshots), "pace_fps": self.pace_fps, **self.stats.summary()}
        if self.smoother is not None:
            summary["smoothing"] = {"weight": self.smoother.weight, "restarts": self.smoother.restarts}
        if self.recorder is not None:
            summary["recorded_frames"] = self.recorder.frames
        if self.masks is not None:
            summary["masks_written"] = self.masks.written
        self._write_stats(summary)
        self.outcome = LoopResult(frames=self.stats.frames, reason=reason, stats=summary)

    def _install_signals(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, lambda signum, frame: self.stop("signal"))
        return previous


__all__ = ["Loop", "LoopResult", "Pacer", "REASONS", "Result", "Slot"]
