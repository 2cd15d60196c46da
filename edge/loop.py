"""The camera loop: capture, inference and rendering in three threads.

capture thread ──newest input──▶ inference thread ──newest output──▶ caller's thread
(read, reconnect, preprocess)    (invoke only)                        (postprocess, render, sinks, keys, stats)

Each hand-over is a one-item slot. For a live source (camera, stream) a new
item replaces an unread one, so stale frames are dropped rather than queued;
for a file every frame is processed (the producer waits for the slot). The
caller's thread renders frame N while the interpreter runs frame N+1 and the
capture thread reads and resizes frame N+2, so with a free core the frame rate
is the interpreter's own. OpenCV runs single-threaded meanwhile (``opencv_threads``):
its own pool would spread each resize and blend over every core, onto the one the
interpreter is using. With ``pace_fps`` (a video file that a person watches) the
capture thread releases frames at that rate (:class:`Pacer`). With a ``smoother``
(``edge.smoothing``) the caller's thread averages each output with the previous
ones before post-processing; the capture thread numbers the stretches of continuous
frames (a new one for each file of an image folder and after a reconnect), and a
new stretch restarts the average. The sinks are in ``edge.sinks`` and ``edge.serve``,
the numbers in ``edge.stats``.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import logging
import signal
import threading
import time

import cv2
import numpy as np

from edge import visualize
from edge.segmenter import grid_for
from edge.sinks import KEY_PAUSE, KEY_QUIT, KEY_SNAPSHOT, Recorder, Window, save_snapshot
from edge.sources import SourceError
from edge.stats import Stats
from edge.upsample import nearest

log = logging.getLogger(__name__)

REASONS = ("end_of_stream", "max_frames", "quit", "signal", "source_lost")
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
    geometry: object = None
    raw: np.ndarray | None = None
    class_map: np.ndarray | None = None
    stretch: int = 0  # which stretch of continuous frames it belongs to (see the module docstring)


class Loop:
    """Runs a :class:`~edge.segmenter.Segmenter` on a source and feeds the sinks. Use :meth:`run`."""

    def __init__(self, segmenter, source, *, alpha: float = 0.5, max_frames: int | None = None,
                 window: Window | None = None, recorder: Recorder | None = None, server=None,
                 stats_json: str | None = None, reconnect_seconds: float = 10.0, snapshot_dir: str = ".",
                 show_stats: bool = True, pace_fps: float | None = None, opencv_threads: int = 1,
                 smoother=None):
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
        self.window, self.recorder, self.server = window, recorder, server
        self.stats_json, self.reconnect_seconds = stats_json, reconnect_seconds
        self.snapshot_dir, self.show_stats = snapshot_dir, show_stats
        self.opencv_threads, self.pace_fps = opencv_threads, pace_fps
        self.smoother = smoother  # edge.smoothing.Smoother, or None
        self._stretch = 0
        self._continuous = getattr(source, "continuous", True)  # False: each frame is a new file
        self.stop_event = threading.Event()
        self._pacer = Pacer(pace_fps, wait=self.stop_event.wait) if pace_fps is not None else None
        self.stats = Stats()
        self._frames_slot, self._results_slot = Slot(), Slot()
        self._error: BaseException | None = None
        self._source_lost = False
        self._stop_reason: str | None = None
        self.paused = False
        self.snapshots: list[str] = []
        self.reconnects = 0

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

    def _render(self, item: _Item) -> np.ndarray:
        """Colour the output-resolution class map there, place it on the frame (nearest), blend once, annotate."""
        spec = self.segmenter.spec
        fps, stages_ms = self.stats.on_frame()
        grid = grid_for(item.geometry, spec=spec, output_size=item.class_map.shape)
        return visualize.render(
            item.frame, item.class_map, labels=spec.labels, colors=spec.colors, alpha=self.alpha,
            ignore_label=spec.ignore_label, fps=fps if self.show_stats else None,
            stages_ms=stages_ms, scale=functools.partial(nearest, grid))

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
        stages = " ".join(f"{k} {record['stages_ms'][k]:.1f}" for k in (*visualize.STAGES, "sink")
                          if k in record["stages_ms"])
        log.info("%d frames, %.1f FPS, ms: %s, dropped %d", record["frames"], record["fps"], stages,
                 record["dropped"])
        self._write_stats(record)

    def _main(self) -> None:
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
            start = time.perf_counter()
            raw = item.raw if self.smoother is None else self.smoother.update(item.raw,
                                                                               key=(item.stretch, item.geometry))
            item.class_map = self.segmenter.postprocess(raw, item.geometry, to_frame=False)  # render scales
            post = time.perf_counter()
            image = self._render(item)
            rendered = time.perf_counter()
            if self.recorder is not None:
                self.recorder.write(image)
            if self.server is not None:
                self.server.publish(image)
            if self.window is not None:
                self.window.show(image)
            item.timings["postprocess"] = post - start
            item.timings["render"] = rendered - post
            item.timings["sink"] = time.perf_counter() - rendered
            for stage, seconds in item.timings.items():
                self.stats.add(stage, seconds)
            self.stats.frame_done()
            last_image = image
            if self.window is not None:
                self._handle_key(self.window.poll(1), image)
            self._roll_stats()
            if self.max_frames is not None and self.stats.frames >= self.max_frames:
                self.stop("max_frames")

    def run(self, *, handle_signals: bool = True) -> LoopResult:
        """Run until the stream ends, ``max_frames``, q/Esc, Ctrl-C/SIGTERM or a lost source.

        Always closes the recording and the threads; re-raises an error from a
        worker thread after cleaning up. OpenCV's thread count is set to
        ``opencv_threads`` for the run and restored afterwards.
        """
        opencv_threads = cv2.getNumThreads()
        cv2.setNumThreads(self.opencv_threads)
        try:
            return self._run(handle_signals)
        finally:
            cv2.setNumThreads(opencv_threads)

    def _run(self, handle_signals: bool) -> LoopResult:
        self.stats = Stats()  # windows and CPU time count from here
        if self._pacer is not None:
            self._pacer.pace()  # the first frame is due now; the capture thread paces the rest
        first = self.source.read()
        deadline = time.monotonic() + 2.0
        while first is None and self.source.live and time.monotonic() < deadline:
            time.sleep(0.05)  # some cameras return nothing for their first few reads
            first = self.source.read()
        if first is None:
            raise SourceError(f"{self.source.name}: opened, but produced no frame")
        self._frames_slot.put(self._prepare(first, 0.0), block=False)
        previous = self._install_signals() if handle_signals else {}
        threads = [threading.Thread(target=self._capture, name="capture", daemon=True),
                   threading.Thread(target=self._infer, name="inference", daemon=True)]
        for thread in threads:
            thread.start()
        try:
            self._main()
        finally:
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
            self._write_stats(summary)
        if self._error is not None:
            raise self._error
        return LoopResult(frames=self.stats.frames, reason=reason, stats=summary)

    def _install_signals(self) -> dict:
        if threading.current_thread() is not threading.main_thread():
            return {}
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.getsignal(sig)
            signal.signal(sig, lambda signum, frame: self.stop("signal"))
        return previous


__all__ = ["Loop", "LoopResult", "Pacer", "REASONS", "Slot"]
