"""Frame sources: a V4L2 camera, a video file, images, a network stream, Picamera2.

Each source has ``open()``, ``read()`` (a BGR uint8 frame, or None when the
stream ends or fails), ``close()``, a ``name``, ``live`` (a camera or stream
that runs in real time, whose stale frames should be dropped; files and
images are read in full) and ``continuous`` (each frame follows the one before:
True but for image files).
"""
from __future__ import annotations

import glob
import importlib.util
import logging
import os
import sys

import cv2
import numpy as np

log = logging.getLogger(__name__)

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm")
URL_SCHEMES = ("rtsp://", "rtsps://", "http://", "https://", "rtmp://", "udp://", "tcp://")
PICAMERA2 = "picamera2"


class SourceError(RuntimeError):
    """A source that cannot be opened or read."""


class VideoCaptureSource:
    """OpenCV ``VideoCapture``: a camera index, a video file or a stream URL."""

    continuous = True

    def __init__(self, target: int | str, *, live: bool, name: str, width: int | None = None,
                 height: int | None = None):
        self.target, self.live, self.name = target, live, name
        self.width, self.height = width, height
        self._capture = None

    def open(self) -> None:
        if isinstance(self.target, int) and sys.platform.startswith("linux"):
            capture = cv2.VideoCapture(self.target, cv2.CAP_V4L2)
        else:
            capture = cv2.VideoCapture(self.target)
        if not capture.isOpened():
            capture.release()
            raise SourceError(f"{self.name}: cannot open it{self._hint()}")
        if self.width:
            capture.set(cv2.CAP_PROP_FRAME_WIDTH, self.width)
        if self.height:
            capture.set(cv2.CAP_PROP_FRAME_HEIGHT, self.height)
        if self.live:
            capture.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # keep the driver from queueing old frames
        self._capture = capture

    def _hint(self) -> str:
        if isinstance(self.target, int):
            return (f" (is /dev/video{self.target} present and readable? `v4l2-ctl --list-devices` lists cameras; "
                    f"on Linux your user needs the video group)")
        if self.live:
            return " (check the URL, the network and that the stream is up)"
        return " (not a video OpenCV can decode)"

    @property
    def fps(self) -> float | None:
        fps = self._capture.get(cv2.CAP_PROP_FPS) if self._capture is not None else 0.0
        return fps if fps and 0 < fps < 1000 else None

    def read(self) -> np.ndarray | None:
        if self._capture is None:
            return None
        ok, frame = self._capture.read()
        if not ok or frame is None:
            return None
        if frame.ndim == 2:
            frame = cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
        return frame

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class ImageSource:
    """Still images, each read once, in sorted order; each is a new scene (``continuous`` False)."""

    live = False
    continuous = False
    fps = None

    def __init__(self, paths: list[str], *, name: str):
        self.paths, self.name = paths, name
        self._next = 0

    def open(self) -> None:
        if not self.paths:
            raise SourceError(f"{self.name}: no images found (looked for {', '.join(IMAGE_EXTENSIONS)})")
        if len(self.paths) == 1 and cv2.imread(self.paths[0]) is None:
            raise SourceError(f"{self.name}: cannot read it as an image")
        self._next = 0

    def read(self) -> np.ndarray | None:
        while self._next < len(self.paths):
            path = self.paths[self._next]
            self._next += 1
            frame = cv2.imread(path, cv2.IMREAD_COLOR)
            if frame is not None:
                return frame
            log.warning("skipping %s: not an image OpenCV can read", path)
        return None

    def close(self) -> None:
        pass


class Picamera2Source:
    """The Raspberry Pi camera through Picamera2 (libcamera)."""

    continuous = True

    live = True
    fps = None

    def __init__(self, *, width: int | None = None, height: int | None = None):
        self.name = "picamera2"
        self.size = (width or 640, height or 480)
        self._camera = None

    def open(self) -> None:
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise SourceError("picamera2: the module is not installed (on Raspberry Pi OS: "
                              "sudo apt install python3-picamera2, and create the venv with "
                              "--system-site-packages)") from None
        try:
            camera = Picamera2()
            # "RGB888" in libcamera's naming is B, G, R in memory: what OpenCV expects.
            camera.configure(camera.create_preview_configuration(main={"format": "RGB888", "size": self.size}))
            camera.start()
        except Exception as err:  # picamera2 raises bare RuntimeError/IndexError when no camera is attached
            raise SourceError(f"picamera2: cannot start the camera ({err})") from None
        self._camera = camera

    def read(self) -> np.ndarray | None:
        if self._camera is None:
            return None
        try:
            return np.ascontiguousarray(self._camera.capture_array("main")[..., :3])
        except Exception as err:  # a camera that went away
            log.warning("picamera2: capture failed (%s)", err)
            return None

    def close(self) -> None:
        if self._camera is not None:
            try:
                self._camera.stop()
                self._camera.close()
            finally:
                self._camera = None


def _image_paths(pattern: str) -> list[str]:
    if os.path.isdir(pattern):
        names = sorted(os.listdir(pattern))
        return [os.path.join(pattern, n) for n in names if n.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(p for p in glob.glob(pattern) if p.lower().endswith(IMAGE_EXTENSIONS))


def open_source(source: str, *, width: int | None = None, height: int | None = None):
    """Make and open the source that ``source`` names; raises :class:`SourceError` naming what failed.

    ``source`` is a camera index ("0"), a stream URL, "picamera2", an image
    file, folder or glob, or a video file.
    """
    text = str(source).strip()
    if text.isdigit():
        made = VideoCaptureSource(int(text), live=True, name=f"camera {text}", width=width, height=height)
    elif text.lower().startswith(URL_SCHEMES):
        made = VideoCaptureSource(text, live=True, name=f"stream {text}")
    elif text == PICAMERA2:
        if importlib.util.find_spec("picamera2") is None:
            raise SourceError("source picamera2: the picamera2 module is not installed (on Raspberry Pi OS: "
                              "sudo apt install python3-picamera2)")
        made = Picamera2Source(width=width, height=height)
    elif os.path.isdir(text) or any(ch in text for ch in "*?["):
        made = ImageSource(_image_paths(text), name=f"images {text}")
    elif not os.path.exists(text):
        raise SourceError(f"source {text!r}: no such file, folder, camera index or URL "
                          f"(expected a camera index like 0, a video or image file, a folder, a glob, "
                          f"an rtsp:// or http:// URL, or picamera2)")
    elif not os.access(text, os.R_OK):
        raise SourceError(f"source {text!r}: permission denied")
    elif text.lower().endswith(IMAGE_EXTENSIONS):
        made = ImageSource([text], name=f"image {text}")
    else:
        made = VideoCaptureSource(text, live=False, name=f"video {text}")
    made.open()
    return made


__all__ = ["IMAGE_EXTENSIONS", "ImageSource", "Picamera2Source", "SourceError", "VideoCaptureSource", "open_source"]
