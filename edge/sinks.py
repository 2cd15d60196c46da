"""Where the loop's pictures go besides the preview page (``edge.serve``): a window, a recording, snapshots, and
each frame's class map as an indexed PNG (:class:`MaskWriter`)."""
from __future__ import annotations

import logging
import os
import struct
import time
import zlib

import cv2
import numpy as np

from edge.files import atomic_path, write_bytes
from edge.segmenter import letterbox_geometry, place

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
    """Writes rendered frames to a video file; opened at the first frame, closed (and playable) by ``close()``.

    A video has one frame size, the first frame's: a frame of another size (the next photo of a folder) is
    letterboxed into it (scaled to fit, aspect kept, black bars), so every frame written is in the file.
    """

    def __init__(self, path: str, *, fps: float):
        self.path, self.fps = check_record_path(path), fps
        self._fourcc = RECORD_CODECS[os.path.splitext(path)[1].lower()]
        self._writer = None
        self.size: tuple[int, int] | None = None  # (height, width) of the video
        self.frames = 0
        self.letterboxed = 0

    def write(self, frame: np.ndarray) -> None:
        if self._writer is None:
            h, w = frame.shape[:2]
            writer = cv2.VideoWriter(self.path, cv2.VideoWriter_fourcc(*self._fourcc), self.fps, (w, h))
            if not writer.isOpened():
                raise OSError(f"record: OpenCV cannot write {self.path!r} with codec {self._fourcc}")
            self._writer, self.size = writer, (h, w)
        elif frame.shape[:2] != self.size:
            if not self.letterboxed:
                log.info("record: a %dx%d frame in a %dx%d recording is letterboxed into it (and any other size)",
                         frame.shape[1], frame.shape[0], self.size[1], self.size[0])
            frame = place(frame, letterbox_geometry(frame.shape[:2], self.size, "letterbox"), self.size)
            self.letterboxed += 1
        self._writer.write(frame)
        self.frames += 1

    def close(self) -> None:
        if self._writer is not None:
            self._writer.release()
            self._writer = None


def check_masks_folder(folder: str) -> str:
    """``folder`` if it is an existing, writable folder; a ValueError naming it if not."""
    if not os.path.isdir(folder):
        what = "is a file, not a folder" if os.path.exists(folder) else "does not exist"
        raise ValueError(f"masks: {folder!r} {what}; create the folder first")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"masks: the folder {folder!r} is not writable")
    return folder


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def indexed_png(class_map: np.ndarray, colors) -> bytes:
    """An 8-bit palette PNG of ``class_map``: pixel value = class id, palette = ``colors`` (RGB, one per id).

    OpenCV writes no palette, so it encodes the ids as an 8-bit grey PNG (the same bytes per pixel, the same
    filters and compression) and the header's colour type becomes 3 (indexed), with a PLTE chunk of the colours
    (black for ids without one) before the image data.
    """
    if class_map.ndim != 2 or class_map.dtype != np.uint8:
        raise ValueError(f"masks: expected (H, W) uint8 class ids, got {class_map.shape} {class_map.dtype}")
    ok, encoded = cv2.imencode(".png", class_map)
    if not ok:
        raise OSError(f"masks: OpenCV could not encode a {class_map.shape} class map as PNG")
    data, chunks, pos = encoded.tobytes(), [], 8
    while pos < len(data):
        (length,), kind = struct.unpack(">I", data[pos:pos + 4]), data[pos + 4:pos + 8]
        chunks.append((kind, data[pos + 8:pos + 8 + length]))
        pos += 12 + length
    header = chunks[0][1]  # width, height, bit depth 8, colour type 0 (grey), compression, filter, interlace
    if chunks[0][0] != b"IHDR" or header[8:10] != b"\x08\x00":
        raise OSError(f"masks: OpenCV wrote an unexpected PNG header {header!r}")
    palette = np.zeros((max(len(colors), int(class_map.max(initial=0)) + 1), 3), np.uint8)
    palette[:len(colors)] = np.asarray(colors, np.uint8).reshape(-1, 3)
    return b"".join([data[:8], _png_chunk(b"IHDR", header[:9] + b"\x03" + header[10:]),
                     _png_chunk(b"PLTE", palette.tobytes()),
                     *(_png_chunk(kind, body) for kind, body in chunks[1:] if kind in (b"IDAT", b"IEND"))])


class MaskWriter:
    """Writes every ``every``-th processed frame's class map to ``folder/NNNNNN.png`` (the frame's number from 0),
    as an indexed PNG in the spec's colours (:func:`indexed_png`), atomically."""

    def __init__(self, folder: str, *, colors, every: int = 1):
        if every < 1:
            raise ValueError(f"masks_every: expected a positive integer, got {every}")
        if len(colors) > 256:
            raise ValueError(f"masks: an indexed PNG holds 256 classes at most; the model has {len(colors)}")
        self.folder, self.colors, self.every = check_masks_folder(folder), tuple(colors), every
        self.written = 0

    def path(self, index: int) -> str:
        return os.path.join(self.folder, f"{index:06d}.png")

    def write(self, index: int, class_map: np.ndarray) -> str | None:
        """Write frame ``index``'s map if its turn has come; the path written, or None."""
        if index % self.every:
            return None
        path = write_bytes(self.path(index), indexed_png(class_map, self.colors), durable=False)
        self.written += 1
        return path


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


__all__ = ["DisplayError", "KEY_PAUSE", "KEY_QUIT", "KEY_SNAPSHOT", "MaskWriter", "RECORD_CODECS", "Recorder",
           "Window", "check_masks_folder", "check_output_folder", "check_record_path", "indexed_png", "save_snapshot"]
