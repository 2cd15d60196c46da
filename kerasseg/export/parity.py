"""Parity report: the Keras float model against its TFLite conversion on the validation set.

Both models see the same images, rounded to uint8 as a device would deliver
them; the report puts mIoU, pixel accuracy and per-class IoU side by side,
and counts the pixels on which the two predictions agree.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Iterable, Sequence

import numpy as np

from kerasseg.training.metrics import ConfusionMatrix


class TFLiteSegmenter:
    """Runs a ``.tflite`` segmentation model on uint8 images and returns class maps."""

    def __init__(self, content: bytes, *, num_threads: int = 2):
        from ai_edge_litert.interpreter import Interpreter
        self.interpreter = Interpreter(model_content=content, num_threads=num_threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]
        self.input_size = tuple(int(v) for v in self.input["shape"][1:3])

    def scores(self, image_uint8: np.ndarray) -> np.ndarray:
        """Raw output (H, W, C) for one (H, W, 3) uint8 image, in the output's own type."""
        if image_uint8.shape[:2] != self.input_size:
            raise ValueError(f"image: expected size {self.input_size}, got {image_uint8.shape[:2]}")
        self.interpreter.set_tensor(self.input["index"], image_uint8[None].astype(self.input["dtype"]))
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"])[0]

    def predict(self, image_uint8: np.ndarray) -> np.ndarray:
        return np.argmax(self.scores(image_uint8), axis=-1)


@dataclasses.dataclass
class ParityReport:
    """Keras float vs TFLite quality on the same images."""

    mode: str
    labels: list
    num_images: int
    keras_miou: float
    tflite_miou: float
    keras_pixel_accuracy: float
    tflite_pixel_accuracy: float
    keras_iou: list
    tflite_iou: list
    pixel_agreement: float
    max_drop: float

    @property
    def miou_drop(self) -> float:
        """mIoU lost by the conversion, in points (percent)."""
        return 100.0 * (self.keras_miou - self.tflite_miou)

    @property
    def passed(self) -> bool:
        return bool(self.miou_drop <= self.max_drop)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["miou_drop_points"] = self.miou_drop
        data["passed"] = self.passed
        return data

    def save(self, path: str | os.PathLike) -> str:
        path = os.fspath(path)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(_json_safe(self.to_dict()), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
        return path

    def format(self) -> str:
        """A side-by-side table for the terminal."""
        def pct(v):
            return "   n/a" if v is None or np.isnan(v) else f"{100 * v:6.2f}"
        lines = [
            f"parity [{self.mode}] on {self.num_images} validation images",
            f"{'':22s} {'keras':>8s} {'tflite':>8s} {'change':>8s}",
            f"{'mIoU %':22s} {pct(self.keras_miou):>8s} {pct(self.tflite_miou):>8s} {-self.miou_drop:+8.2f}",
            f"{'pixel accuracy %':22s} {pct(self.keras_pixel_accuracy):>8s} {pct(self.tflite_pixel_accuracy):>8s} "
            f"{100 * (self.tflite_pixel_accuracy - self.keras_pixel_accuracy):+8.2f}",
        ]
        for name, before, after in zip(self.labels, self.keras_iou, self.tflite_iou):
            change = "     n/a" if np.isnan(before) or np.isnan(after) else f"{100 * (after - before):+8.2f}"
            lines.append(f"{'  IoU ' + name:22.22s} {pct(before):>8s} {pct(after):>8s} {change}")
        lines.append(f"pixels where keras and tflite agree: {100 * self.pixel_agreement:.3f}%")
        verdict = "ok" if self.passed else "FAILED"
        lines.append(f"mIoU drop {self.miou_drop:.2f} points (max {self.max_drop:.2f}): {verdict}")
        return "\n".join(lines)


def _json_safe(value):
    if isinstance(value, float) and np.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, np.generic):
        return _json_safe(value.item())
    return value


def to_uint8(images) -> np.ndarray:
    """Float [0, 255] images as a camera would deliver them."""
    return np.clip(np.rint(np.asarray(images, dtype=np.float32)), 0, 255).astype(np.uint8)


def parity_report(keras_model, content: bytes, batches: Iterable, *, labels: Sequence[str], mode: str,
                  max_drop: float = 2.0, max_images: int | None = None, ignore_label: int = 255) -> ParityReport:
    """Evaluate ``keras_model`` and the TFLite ``content`` on ``batches`` of (image, mask)."""
    labels = list(labels)
    segmenter = TFLiteSegmenter(content)
    keras_counts = ConfusionMatrix(len(labels), ignore_label=ignore_label)
    tflite_counts = ConfusionMatrix(len(labels), ignore_label=ignore_label)
    agree = total = images_seen = 0
    for images, masks in batches:
        images = to_uint8(images)
        masks = np.asarray(masks)
        if max_images is not None:
            images, masks = images[: max_images - images_seen], masks[: max_images - images_seen]
        if len(images) == 0:
            break
        keras_pred = np.argmax(np.asarray(keras_model(images.astype(np.float32), training=False)), axis=-1)
        for image, mask, k_pred in zip(images, masks, keras_pred):
            t_pred = segmenter.predict(image)
            mask = mask.reshape(t_pred.shape)
            keras_counts.update(mask, k_pred)
            tflite_counts.update(mask, t_pred)
            agree += int(np.sum(t_pred == k_pred))
            total += t_pred.size
            images_seen += 1
        if max_images is not None and images_seen >= max_images:
            break
    if images_seen == 0:
        raise ValueError("validation data: the pipeline yielded no image for the parity report")
    before, after = keras_counts.results(labels), tflite_counts.results(labels)
    return ParityReport(
        mode=mode, labels=labels, num_images=images_seen,
        keras_miou=_nan(before["mean_iou"]), tflite_miou=_nan(after["mean_iou"]),
        keras_pixel_accuracy=_nan(before["pixel_accuracy"]), tflite_pixel_accuracy=_nan(after["pixel_accuracy"]),
        keras_iou=[_nan(before["per_class_iou"][n]) for n in labels],
        tflite_iou=[_nan(after["per_class_iou"][n]) for n in labels],
        pixel_agreement=agree / total, max_drop=float(max_drop))


def _nan(value) -> float:
    return float("nan") if value is None else float(value)
