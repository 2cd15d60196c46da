"""Where rendered frames go besides the preview page (``edge.serve``): a window, a recording, snapshots."""
from __future__ import annotations

import logging
import os
import time

import cv2
import numpy as np

from edge.files import atomic_path

log = logging.getLogger(__name__)

KEY_QUIT = (ord("q"), 27)
KEY_PAUSE = ord(" ")
KEY_SNAPSHOT = ord("s")
RECORD_CODECS = {".mp4": "mp4v", ".m4v": "mp4v", ".mov": "mp4v", ".avi": "MJPG", ".mkv": "MJPG"}


class DisplayError(RuntimeError):
    """OpenCV cannot open a window here."""


def check_output_folder(path: str, *, what: str) -> str:
    """``path`` if its folder exists and is writable; a ValueError naming ``what`` and the folder if not."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{what}: the folder {folder!r} does not exist (for {path!r}); create it first")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{what}: the folder {folder!r} is not writable (for {path!r})")
    return path


def check_record_path(path: str) -> str:
    """``path`` if a recording can be written there; a ValueError naming the extension or the folder."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in RECORD_CODECS:
        raise ValueError(f"record: unsupported extension {ext!r} in {path!r}; use one of {sorted(RECORD_CODECS)}")
    return check_output_folder(path, what="record")


class Recorder:
    """Writes rendered frames to a video file; opened at the first frame, closed (and playable) by ``close()``."""

    def __init__(self, path: str, *, fps: float):
        self.path, self.fps = check_record_path(path), fps
        self._fourcc = RECORD_CODECS[os.path.splitext(path)[1].lower()]
        self._writer = None
        self.frames = 0

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*self._fourcc), self.fps, (w, h))
            if not writer.isOpened():
                raise OSError(f"record: OpenCV cannot write {self.path!r} with codec {self._fourcc}")
            self._writer = writer
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


class Window:
    """An OpenCV window; ``poll()`` returns the key pressed, if any."""

    def __init__(self, title: str):
        self.title = title
        try:
            cv2.namedWindow(title, cv2.WINDOW_NORMAL)
        except cv2.error as err:
            raise DisplayError(
                f"display: OpenCV cannot open a window here ({str(err).strip().splitlines()[-1]}); "
                f"run with --no-display (and --serve HOST:PORT to watch in a browser), or install "
                f"opencv-python instead of opencv-python-headless") from None

    def show(self, frame: np.ndarray) -> None:
        cv2.imshow(self.title, frame)

    def poll(self, wait_ms: int = 1) -> int:
        return cv2.waitKey(wait_ms) & 0xFF

    def close(self) -> None:
        cv2.destroyWindow(self.title)


def save_snapshot(image: np.ndarray, folder: str, *, index: int) -> str:
    """Write ``image`` as a timestamped PNG in ``folder`` (made if missing), atomically; returns its path."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, time.strftime("snapshot-%Y%m%d-%H%M%S") + f"-{index:03d}.png")
    with atomic_path(path) as tmp:
        if not cv2.imwrite(tmp, image):
            raise OSError(f"snapshot: cannot write {path!r}")
    log.info("saved %s", path)
    return path


__all__ = ["DisplayError", "KEY_PAUSE", "KEY_QUIT", "KEY_SNAPSHOT", "RECORD_CODECS", "Recorder", "Window",
           "check_output_folder", "check_record_path", "save_snapshot"]
