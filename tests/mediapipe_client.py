"""Run MediaPipe's ImageSegmenter (Tasks API) on a .tflite model: the third-party client of our artifacts.

It runs in MediaPipe's own virtual environment (its opencv-contrib-python wheel clashes with our
opencv-python-headless), made by ``mediapipe_python()`` below, so it imports nothing from kerasseg.

    MEDIAPIPE_PYTHON tests/mediapipe_client.py MODEL.tflite IMAGES.npz OUT.npz
    python tests/mediapipe_client.py --install      # make the venv (conftest.py starts this in the background)

IMAGES.npz holds ``images``: (N, H, W, 3) uint8 RGB. OUT.npz gets ``category_masks`` (N, H, W) uint8 and
``labels`` (the names MediaPipe read from the model's metadata).
"""
from __future__ import annotations

import os
import subprocess
import sys

MEDIAPIPE_VERSION = "1.2.2"


class MediaPipeUnavailable(RuntimeError):
    """MediaPipe could not be installed here (no registry, no wheel for this platform): the test skips."""


def venv_dir() -> str:
    """Where MediaPipe's virtual environment lives: once per machine, under the user's cache."""
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    return os.path.join(cache, "kerasseg", f"mediapipe-{MEDIAPIPE_VERSION}-py{sys.version_info[0]}"
                                           f"{sys.version_info[1]}")


def installed_python(cache_dir: str | None = None) -> str | None:
    """The venv's Python if MediaPipe is installed there, else None."""
    cache_dir = cache_dir or venv_dir()
    return os.path.join(cache_dir, "bin", "python") if os.path.exists(os.path.join(cache_dir, ".installed")) else None


def mediapipe_python(cache_dir: str | None = None, *, failed_since: float | None = None) -> str:
    """The Python of a virtual environment with MediaPipe installed; made (once per machine) under the user's cache.

    Several processes may ask at once (pytest-xdist workers, the background install): one makes it under a file
    lock, the others wait and reuse it. Raises MediaPipeUnavailable when venv or pip fails, and at once, without
    trying again, when an attempt failed after the time ``failed_since`` (the test session's start).
    """
    from filelock import FileLock

    cache_dir = cache_dir or venv_dir()
    os.makedirs(os.path.dirname(cache_dir), exist_ok=True)
    failed = cache_dir + ".failed"
    with FileLock(cache_dir + ".lock"):
        python = installed_python(cache_dir)
        if python:
            return python
        if failed_since is not None and os.path.exists(failed) and os.path.getmtime(failed) >= failed_since:
            with open(failed) as f:
                raise MediaPipeUnavailable(f.read())
        python = os.path.join(cache_dir, "bin", "python")
        for command in ([sys.executable, "-m", "venv", "--clear", cache_dir],
                        [python, "-m", "pip", "install", "-q", f"mediapipe=={MEDIAPIPE_VERSION}"]):
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode != 0:
                last = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
                reason = (f"{' '.join(command[-3:])} failed (exit {done.returncode}): {last}\n{cache_dir}\n"
                          f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
                with open(failed, "w") as f:
                    f.write(reason)
                raise MediaPipeUnavailable(reason)
        open(os.path.join(cache_dir, ".installed"), "w").close()
    return python


def install_in_background() -> subprocess.Popen | None:
    """Start making the venv in a process of its own (it waits on the network, not the CPU) unless it is made;
    ``mediapipe_python()`` later waits for it through the lock. Its output goes to the venv's name + ``.log``."""
    if installed_python():
        return None
    os.makedirs(os.path.dirname(venv_dir()), exist_ok=True)
    with open(venv_dir() + ".log", "w") as log:
        return subprocess.Popen([sys.executable, os.path.abspath(__file__), "--install"], stdout=log, stderr=log,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def segment(model_path: str, images_path: str, out_path: str) -> None:
    import mediapipe as mp
    import numpy as np
    from mediapipe.tasks.python import BaseOptions, vision

    options = vision.ImageSegmenterOptions(base_options=BaseOptions(model_asset_path=model_path),
                                           output_category_mask=True, output_confidence_masks=False)
    masks = []
    with vision.ImageSegmenter.create_from_options(options) as segmenter:
        for image in np.load(images_path)["images"]:
            result = segmenter.segment(mp.Image(image_format=mp.ImageFormat.SRGB, data=np.ascontiguousarray(image)))
            masks.append(np.array(result.category_mask.numpy_view()).reshape(image.shape[:2]))
        labels = list(segmenter.labels)
    np.savez(out_path, category_masks=np.stack(masks).astype(np.uint8), labels=np.array(labels))


if __name__ == "__main__":
    if sys.argv[1:] == ["--install"]:  # install_in_background
        print(mediapipe_python())
    elif len(sys.argv) != 4:
        sys.exit(__doc__)
    else:
        segment(*sys.argv[1:])
