"""The camera loop's numbers: FPS, per-stage latency, CPU outside invoke and each class's share of the pixels, per
second and over the run."""
from __future__ import annotations

import threading
import time
from typing import Sequence

import numpy as np


def _ms(table: dict[str, list[float]]) -> dict[str, float]:
    return {k: round(1000.0 * s / n, 2) for k, (s, n) in table.items() if n}


class Stats:
    """Per-stage latency, FPS and CPU outside invoke over one-second windows, and totals over the run.

    ``cpu_ms_outside_invoke``: the process's CPU time per frame minus the inference thread's CPU time in
    invoke (:meth:`add_invoke_cpu`): what decoding, resizing, post-processing and drawing cost.
    ``class_share``: for each class present, the mean over the frames of its share of each frame's pixels
    (:meth:`add_counts`), by label.
    """

    def __init__(self, *, clock=time.perf_counter, cpu_clock=time.process_time, labels: Sequence[str] = ()):
        self.clock, self.cpu_clock = clock, cpu_clock
        self.labels = tuple(labels)
        self._shares = [None, None]  # window, total: sums of per-frame shares by class id
        self.started, self.cpu_started = clock(), cpu_clock()
        self.frames = 0
        self._window_start, self._window_cpu = self.started, self.cpu_started
        self._window_frames = 0
        self._window: dict[str, list[float]] = {}
        self._total: dict[str, list[float]] = {}
        self._invoke_cpu = [0.0, 0.0]  # window, total
        self._lock = threading.Lock()
        self.current: dict = {"fps": 0.0, "stages_ms": {}}  # the last closed window
        self.rolled = False

    def add(self, stage: str, seconds: float) -> None:
        for table in (self._window, self._total):
            entry = table.setdefault(stage, [0.0, 0])
            entry[0] += seconds
            entry[1] += 1

    def add_counts(self, counts: np.ndarray) -> None:
        """One frame's pixel count per class id (``edge.visualize.class_counts``)."""
        shares = counts / max(1, int(counts.sum()))
        for i, total in enumerate(self._shares):
            if total is None or len(total) < len(shares):
                grown = np.zeros(len(shares))
                if total is not None:
                    grown[:len(total)] = total
                self._shares[i] = total = grown
            total[:len(shares)] += shares

    def _class_share(self, sums: np.ndarray | None, frames: int) -> dict[str, float]:
        if sums is None or not frames:
            return {}
        return {(self.labels[i] if i < len(self.labels) else str(i)): round(float(sums[i]) / frames, 4)
                for i in np.flatnonzero(sums)}

    def add_invoke_cpu(self, seconds: float) -> None:
        """CPU seconds the inference thread spent in one invoke (``time.thread_time`` around it); any thread."""
        with self._lock:
            self._invoke_cpu[0] += seconds
            self._invoke_cpu[1] += seconds

    def frame_done(self) -> None:
        self.frames += 1
        self._window_frames += 1

    def on_frame(self) -> tuple[float, dict[str, float]]:
        """FPS and stage ms to draw on the frame being rendered: the last closed window's, or, before the
        first window closes (a short clip), a running estimate over the run so far that counts this frame."""
        if self.rolled:
            return self.current["fps"], self.current["stages_ms"]
        elapsed = self.clock() - self.started
        return ((self.frames + 1) / elapsed if elapsed > 0 else 0.0), _ms(self._total)

    @staticmethod
    def _cpu_ms(cpu_seconds: float, invoke_seconds: float, frames: int) -> float | None:
        return round(1000.0 * (cpu_seconds - invoke_seconds) / frames, 2) if frames else None

    def roll(self, *, force: bool = False, extra: dict | None = None) -> dict | None:
        """Close the window once a second has passed (or when ``force``); returns the window's stats."""
        now = self.clock()
        elapsed = now - self._window_start
        if elapsed < 1.0 and not force:
            return None
        cpu = self.cpu_clock()  # only here: process CPU time is a slow call in a process with many threads
        with self._lock:
            invoke_cpu, self._invoke_cpu[0] = self._invoke_cpu[0], 0.0
        fps = self._window_frames / elapsed if elapsed > 0 else 0.0
        self.current = {"time": round(time.time(), 3), "frames": self.frames, "fps": round(fps, 2),
                        "stages_ms": _ms(self._window),
                        "cpu_ms_outside_invoke": self._cpu_ms(cpu - self._window_cpu, invoke_cpu, self._window_frames),
                        "class_share": self._class_share(self._shares[0], self._window_frames), **(extra or {})}
        self._window_start, self._window_cpu, self._window_frames, self._window = now, cpu, 0, {}
        self._shares[0] = None
        self.rolled = True
        return self.current

    def summary(self) -> dict:
        elapsed = self.clock() - self.started
        return {"frames": self.frames, "elapsed_s": round(elapsed, 3),
                "fps": round(self.frames / elapsed, 2) if elapsed > 0 else 0.0,
                "stages_ms": _ms(self._total),
                "cpu_ms_outside_invoke": self._cpu_ms(self.cpu_clock() - self.cpu_started, self._invoke_cpu[1],
                                                      self.frames),
                "class_share": self._class_share(self._shares[1], self.frames)}


__all__ = ["Stats"]
