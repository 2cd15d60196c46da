"""Run MediaPipe's ImageSegmenter (Tasks API) on a .tflite model: the third-party client of our artifacts.

It runs in MediaPipe's own virtual environment (its opencv-contrib-python wheel clashes with our
opencv-python-headless), made by ``mediapipe_python()`` below, so it imports nothing from kerasseg.

    MEDIAPIPE_PYTHON tests/mediapipe_client.py MODEL.tflite IMAGES.npz OUT.npz

IMAGES.npz holds ``images``: (N, H, W, 3) uint8 RGB. OUT.npz gets ``category_masks`` (N, H, W) uint8 and
``labels`` (the names MediaPipe read from the model's metadata).
"""
from __future__ import annotations

import os
import subprocess
import sys

MEDIAPIPE_VERSION = "1.2.2"


def mediapipe_python(cache_dir: str | None = None) -> str:
    """The Python of a virtual environment with MediaPipe installed; made (once) under the user's cache."""
    cache_dir = cache_dir or os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"),
                                          "kerasseg", f"mediapipe-{MEDIAPIPE_VERSION}-py{sys.version_info[0]}"
                                                      f"{sys.version_info[1]}")
    python = os.path.join(cache_dir, "bin", "python")
    marker = os.path.join(cache_dir, ".installed")
    if os.path.exists(marker):
        return python
    subprocess.run([sys.executable, "-m", "venv", "--clear", cache_dir], check=True)
    done = subprocess.run([python, "-m", "pip", "install", "-q", f"mediapipe=={MEDIAPIPE_VERSION}"],
                          capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"pip could not install mediapipe=={MEDIAPIPE_VERSION} into {cache_dir}:\n"
                           f"{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    open(marker, "w").close()
    return python


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
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    segment(*sys.argv[1:])
