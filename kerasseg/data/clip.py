"""A sample video for the edge runtime, made from a dataset's validation images.

Each image is scaled to cover the frame with room to spare and the view pans slowly across it, so the
clip moves as a camera would, and the images follow one another as cuts. ``python -m kerasseg.data clip``
writes one from the newest run's dataset, or from the built-in dataset when there is no run.
"""
from __future__ import annotations

import dataclasses
import os

import cv2
import numpy as np

from edge.files import atomic_path
from edge.sinks import RECORD_CODECS, Recorder, check_output_folder
from kerasseg.data.base import DatasetSource

DEFAULT_SIZE = (480, 640)  # (height, width): a camera's
DEFAULT_IMAGES = 8
DEFAULT_FPS = 15.0
DEFAULT_SECONDS_PER_IMAGE = 2.0
PAN = 1.25  # each image covers the frame times this, and the view pans across the excess


@dataclasses.dataclass(frozen=True)
class Clip:
    path: str
    frames: int
    images: int
    size: tuple[int, int]  # (height, width)
    fps: float
    stills: list  # the PNG files written with ``stills_dir``, else []


def pan_frames(image_rgb: np.ndarray, *, size: tuple[int, int], count: int) -> list[np.ndarray]:
    """``count`` BGR frames of ``size`` (height, width) panning from the top-left to the bottom-right of the image,
    scaled so that it covers ``PAN`` times the frame."""
    height, width = size
    scale = PAN * max(height / image_rgb.shape[0], width / image_rgb.shape[1])
    big = cv2.resize(cv2.cvtColor(image_rgb, cv2.COLOR_RGB2BGR),
                     (round(image_rgb.shape[1] * scale), round(image_rgb.shape[0] * scale)),
                     interpolation=cv2.INTER_LINEAR)
    spare_y, spare_x = big.shape[0] - height, big.shape[1] - width
    frames = []
    for i in range(count):
        t = i / max(count - 1, 1)
        y, x = round(t * spare_y), round(t * spare_x)
        frames.append(np.ascontiguousarray(big[y:y + height, x:x + width]))
    return frames


def write_clip(source: DatasetSource, path: str, *, split: str = "val", images: int = DEFAULT_IMAGES,
               size: tuple[int, int] = DEFAULT_SIZE, fps: float = DEFAULT_FPS,
               seconds_per_image: float = DEFAULT_SECONDS_PER_IMAGE, stills_dir: str | None = None) -> Clip:
    """Write a clip of the first ``images`` examples of ``split`` to ``path`` (replaced only when it is complete).

    With ``stills_dir`` the images themselves are also written there as PNG files (for ``predict.py`` and an
    image-folder source). Raises ValueError naming a bad argument, DatasetError for a bad dataset.
    """
    if os.path.splitext(path)[1].lower() not in RECORD_CODECS:
        raise ValueError(f"output: {path!r} is not a video file name; end it in one of {sorted(RECORD_CODECS)}")
    check_output_folder(path, what="output")
    if images < 1:
        raise ValueError(f"images: expected a positive integer, got {images}")
    if len(size) != 2 or min(size) < 16:
        raise ValueError(f"size: expected a height and a width of at least 16 pixels, got {list(size)}")
    if not fps > 0 or not seconds_per_image > 0:
        raise ValueError(f"fps and seconds per image: expected values > 0, got {fps} and {seconds_per_image}")
    if stills_dir is not None and os.path.isfile(stills_dir):
        raise ValueError(f"stills: {stills_dir} is a file, expected a folder")
    chosen = []
    for example in source.iter_examples(split):
        chosen.append(example)
        if len(chosen) == images:
            break
    if not chosen:
        raise ValueError(f"{source.name}: the {split} split has no images to make a clip of")
    per_image = max(1, round(fps * seconds_per_image))
    with atomic_path(path) as tmp:
        recorder = Recorder(tmp, fps=fps)
        try:
            for example in chosen:
                for frame in pan_frames(example.image, size=size, count=per_image):
                    recorder.write(frame)
        finally:
            recorder.close()
    return Clip(path=path, frames=recorder.frames, images=len(chosen), size=tuple(size), fps=fps,
                stills=_write_stills(chosen, stills_dir) if stills_dir is not None else [])


def _write_stills(examples, folder: str) -> list[str]:
    from edge.files import write_bytes

    os.makedirs(folder, exist_ok=True)
    paths = []
    for index, example in enumerate(examples):
        ok, buffer = cv2.imencode(".png", cv2.cvtColor(example.image, cv2.COLOR_RGB2BGR))
        if not ok:
            raise ValueError(f"{example.name}: OpenCV could not encode it as PNG")
        paths.append(write_bytes(os.path.join(folder, f"sample_{index:03d}.png"), buffer.tobytes()))
    return paths


__all__ = ["Clip", "pan_frames", "write_clip"]
