"""Temporal smoothing of a model's scores across frames, so that a still scene's mask does not flicker.

Camera noise moves the scores of pixels near a class boundary a little every frame, and where two classes
are close the argmax flips back and forth. :class:`Smoother` keeps an exponential moving average of the
raw output, at the output's own resolution (a native head's 33x33, not the frame), and the segmenter
takes its classes from the average:

    average_t = (1 - weight) * output_t + weight * average_(t-1)

It averages the raw tensor (quantized integers as float32): dequantizing is ``scale * (q - zero_point)``,
an increasing affine map, and an average of affine images is the affine image of the average, so the
classes (and the exact upsampling's blends) are those of the averaged real scores. Class ids cannot be
averaged (the mean of class 1 and class 3 is not class 2), so an ``argmax`` head is refused.

The average restarts whenever the caller's ``key`` changes: the loop passes a new one when the source
jumps (each file of an image folder, a camera or stream that reconnected) or the frame geometry changes.
The segmenter itself stays stateless (parity runs it on unrelated images), so smoothing lives here and
the camera loop applies it between invoke and post-processing.
"""
from __future__ import annotations

import numpy as np

from edge.segmenter import CLASS_IDS

# Halves the flicker of a still scene under camera noise for under a frame of lag (benchmarks/bench_smoothing.py).
DEFAULT_SMOOTH = 0.5


class SmoothingError(ValueError):
    """Smoothing asked of a model whose output it cannot average."""


class Smoother:
    """An exponential moving average of one model's raw outputs; ``weight`` is the previous average's share."""

    def __init__(self, weight: float, *, kind: str = "scores", model: str = "model"):
        if not 0.0 < weight < 1.0:
            raise ValueError(f"smooth: expected a weight in (0, 1) (0 turns smoothing off), got {weight}")
        if kind == CLASS_IDS:
            raise SmoothingError(
                f"--smooth cannot apply to {model}: it outputs class ids (an argmax head), so the scores are gone "
                f"before the device sees them, and ids cannot be averaged (the mean of class 1 and class 3 is not "
                f"class 2). Export a head with scores (convert.py --head native) to smooth, or drop --smooth")
        self.weight = float(weight)
        self._average: np.ndarray | None = None
        self._scratch: np.ndarray | None = None
        self._key = None
        self.restarts = 0  # how many times the average started afresh (the first frame included)

    def update(self, raw: np.ndarray, *, key=None) -> np.ndarray:
        """The average with ``raw`` (the interpreter's output tensor) blended in, float32, same shape.

        A ``key`` different from the previous call's restarts the average at ``raw``. The result is this
        object's buffer: read it before the next call, and do not write to it.
        """
        if self._average is None or key != self._key or raw.shape != self._average.shape:
            self._average = raw.astype(np.float32)  # a copy, whatever the dtype
            self._scratch = np.empty_like(self._average)
            self._key = key
            self.restarts += 1
            return self._average
        np.multiply(raw, np.float32(1.0 - self.weight), out=self._scratch, casting="unsafe")
        self._average *= np.float32(self.weight)
        self._average += self._scratch
        return self._average


def smoother_for(kind: str, weight: float | None, *, model: str = "model") -> Smoother | None:
    """The smoother for an output of ``kind`` (``edge.segmenter``'s SCORES, PROBABILITY or CLASS_IDS) and ``weight``:
    None for off (weight 0), :data:`DEFAULT_SMOOTH` for ``weight`` None, which a class-ids output goes without
    (and with any other weight raises :class:`SmoothingError`)."""
    if weight is None:
        weight = 0 if kind == CLASS_IDS else DEFAULT_SMOOTH
    return Smoother(weight, kind=kind, model=model) if weight else None


__all__ = ["DEFAULT_SMOOTH", "Smoother", "SmoothingError", "smoother_for"]
