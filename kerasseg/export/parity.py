"""Parity report: the Keras float model against the device running its artifact, on the validation set.

The artifact runs exactly as on a device: written to a file and loaded by
``edge.segmenter.Segmenter.from_file``, which reads the spec embedded in it,
pre-processes a BGR frame, invokes the interpreter and post-processes the
output (dequantization, any upsampling from a native-resolution head, argmax)
to a class map at the frame's size. The Keras model sees the same uint8 images
and gives its argmax at full resolution. The report puts mIoU, pixel accuracy
and per-class IoU side by side, the mIoU of the device's class map taking the
Keras class map as the truth, and the share of pixels on which the two agree.

Sign convention, everywhere (files, tables, messages): a *drop* is Keras minus
device, in points (percent); positive means the artifact lost accuracy,
negative that it gained. ``--max-drop`` bounds it.
"""
from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile
from typing import Iterable

import numpy as np

from edge.files import write_bytes, write_json
from kerasseg.training.metrics import ConfusionMatrix


@contextlib.contextmanager
def device_segmenter(content: bytes, *, threads: int | None = None, require_spec: bool = False):
    """The edge runtime's ``Segmenter`` for the ``.tflite`` bytes ``content``, loaded from a temporary file.

    With ``require_spec`` an artifact without an embedded spec is a ValueError.
    """
    from edge.segmenter import Segmenter
    from edge.artifact import SPEC_METADATA_NAME, load_spec
    with tempfile.TemporaryDirectory(prefix="kerasseg-parity-") as folder:
        path = os.path.join(folder, "artifact.tflite")
        write_bytes(path, content)
        if require_spec and load_spec(path)[0] is None:
            raise ValueError(f"artifact: no spec inside it (metadata {SPEC_METADATA_NAME!r}); embed one with "
                             f"edge.artifact.embed_spec, as the device reads it from there")
        yield Segmenter.from_file(path, threads=threads)


@dataclasses.dataclass
class ParityReport:
    """Keras float vs the device's class maps on the same images."""

    mode: str
    head: str
    labels: list
    num_images: int
    keras_miou: float
    device_miou: float
    keras_pixel_accuracy: float
    device_pixel_accuracy: float
    keras_iou: list
    device_iou: list
    miou_vs_keras: float  # mIoU of the device's class map with the Keras class map as the truth
    pixel_agreement: float
    max_drop: float
    runner: str = ""
    truth: str = "masks"  # "keras": images without masks, so the Keras class map is the truth
    finetune_steps: int = 0  # steps of Edge-TPU-friendly fine-tuning before conversion (0: none)
    failure_hint: str = ""  # the likely cause and the fix; set (and written) only when the report fails

    @property
    def miou_drop(self) -> float:
        """mIoU lost on the device, in points: Keras minus device (positive: the artifact is worse)."""
        return 100.0 * (self.keras_miou - self.device_miou)

    @property
    def drop(self) -> float:
        """What ``max_drop`` bounds, in points. With masks, the mIoU drop. Without (``truth == "keras"``), the
        pixel-accuracy drop against the Keras class map, 100 x (1 - agreement): no labelling of these images
        can cost the device more pixel accuracy than that (mIoU against Keras' own map is shown, not judged:
        it counts every boundary pixel of every class as an error)."""
        if self.truth == "keras":
            return 100.0 * (self.keras_pixel_accuracy - self.device_pixel_accuracy)
        return self.miou_drop

    @property
    def drop_name(self) -> str:
        return "pixel-accuracy drop against Keras (no masks)" if self.truth == "keras" else "mIoU drop"

    @property
    def passed(self) -> bool:
        return bool(self.drop <= self.max_drop)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["miou_drop_points"] = self.miou_drop
        data["drop_points"], data["drop_measure"] = self.drop, self.drop_name
        data["drop_convention"] = "keras minus device, in points; positive = the artifact lost accuracy"
        data["passed"] = self.passed
        if not self.failure_hint:
            del data["failure_hint"]  # export gives only a failure one: a hint beside a pass reads as a problem
        return data

    def save(self, path: str | os.PathLike) -> str:
        return write_json(os.fspath(path), _json_safe(self.to_dict()))

    def verdict(self, *, hint: bool = True) -> str:
        """One line: the drop against ``max_drop``; on failure (with ``hint``) the cause and the fix."""
        line = f"{self.drop_name} {self.drop:+.2f} points (max {self.max_drop:.2f})"
        if self.passed:
            return line + ": ok"
        return line + ": FAILED" + (f". {self.failure_hint}" if hint and self.failure_hint else "")

    def format(self) -> str:
        """A side-by-side table for the terminal; the last column is the drop (Keras minus device)."""
        def pct(v):
            return "   n/a" if v is None or np.isnan(v) else f"{100 * v:6.2f}"

        def drop(before, after):
            return "     n/a" if np.isnan(before) or np.isnan(after) else f"{100 * (before - after):+8.2f}"

        tuned = f", after {self.finetune_steps} fine-tuning steps" if self.finetune_steps else ""
        truth = " without masks (the truth is the Keras class map)" if self.truth == "keras" else ""
        lines = [
            f"parity [{self.mode}, head {self.head}{tuned}] on {self.num_images} validation images{truth}",
            f"device: {self.runner}" if self.runner else "",
            f"{'':22s} {'keras':>8s} {'device':>8s} {'drop':>8s}",
            f"{'mIoU %':22s} {pct(self.keras_miou):>8s} {pct(self.device_miou):>8s} "
            f"{drop(self.keras_miou, self.device_miou)}",
            f"{'pixel accuracy %':22s} {pct(self.keras_pixel_accuracy):>8s} {pct(self.device_pixel_accuracy):>8s} "
            f"{drop(self.keras_pixel_accuracy, self.device_pixel_accuracy)}",
        ]
        for name, before, after in zip(self.labels, self.keras_iou, self.device_iou):
            lines.append(f"{'  IoU ' + name:22.22s} {pct(before):>8s} {pct(after):>8s} {drop(before, after)}")
        lines.append(f"device vs keras: mIoU {pct(self.miou_vs_keras).strip()}%, "
                     f"pixels agreeing {100 * self.pixel_agreement:.3f}%")
        lines.append(self.verdict())
        return "\n".join(line for line in lines if line)


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


def _limited(batches: Iterable, max_images: int | None):
    """(uint8 RGB images, masks) batches, cut to ``max_images`` images in all."""
    seen = 0
    for images, masks in batches:
        images, masks = to_uint8(images), np.asarray(masks)
        if max_images is not None:
            images, masks = images[: max_images - seen], masks[: max_images - seen]
        if len(images) == 0:
            return
        seen += len(images)
        yield images, masks


def parity_report(keras_model, content: bytes, batches: Iterable, *, mode: str, head: str = "full",
                  max_drop: float = 2.0, max_images: int | None = None, labelled: bool = True,
                  threads: int | None = None) -> ParityReport:
    """Run ``batches`` of (RGB image at the input size, mask) through Keras and through the device.

    ``content`` is the artifact, with its spec embedded (labels, ignore label,
    output stride and alignment come from there, as on the device). Without masks (``labelled=False``: the
    masks are all the ignore label), the Keras class map is the truth.
    """
    with device_segmenter(content, threads=threads, require_spec=True) as segmenter:
        spec = segmenter.spec
        labels, n = list(spec.labels), spec.num_classes
        keras_counts = ConfusionMatrix(n, ignore_label=spec.ignore_label)
        device_counts = ConfusionMatrix(n, ignore_label=spec.ignore_label)
        versus_keras = ConfusionMatrix(n, ignore_label=spec.ignore_label)
        agree = total = images_seen = 0
        for images, masks in _limited(batches, max_images):
            keras_pred = np.argmax(np.asarray(keras_model(images.astype(np.float32), training=False)), axis=-1)
            for image, mask, k_pred in zip(images, masks, keras_pred):
                d_pred = segmenter.segment(np.ascontiguousarray(image[..., ::-1]))  # the device takes BGR
                mask = mask.reshape(k_pred.shape)
                keras_counts.update(mask, k_pred)
                device_counts.update(mask, d_pred)
                versus_keras.update(k_pred, d_pred)
                agree += int(np.sum(d_pred == k_pred))
                total += d_pred.size
                images_seen += 1
        runner = (f"edge.segmenter.Segmenter, output {segmenter.kind} {list(spec.output_size)} "
                  f"(stride {spec.output_stride}, {spec.output_alignment}), {segmenter.loaded.describe()}")
    if images_seen == 0:
        raise ValueError("validation data: the pipeline yielded no image for the parity report")
    truth = "masks" if labelled else "keras"
    if not labelled:
        keras_counts.matrix, device_counts = np.diag(versus_keras.matrix.sum(axis=1)), versus_keras
    elif not keras_counts.matrix.any():
        raise ValueError(f"validation data: every pixel of the {images_seen} parity images is the ignore label "
                         f"{spec.ignore_label}: no mask to measure against")
    before, after = keras_counts.results(labels), device_counts.results(labels)
    return ParityReport(
        mode=mode, head=str(getattr(head, "value", head)), labels=labels, num_images=images_seen,
        keras_miou=_nan(before["mean_iou"]), device_miou=_nan(after["mean_iou"]),
        keras_pixel_accuracy=_nan(before["pixel_accuracy"]), device_pixel_accuracy=_nan(after["pixel_accuracy"]),
        keras_iou=[_nan(before["per_class_iou"][name]) for name in labels],
        device_iou=[_nan(after["per_class_iou"][name]) for name in labels],
        miou_vs_keras=_nan(versus_keras.results(labels)["mean_iou"]),
        pixel_agreement=agree / total, max_drop=float(max_drop), runner=runner, truth=truth)


def _nan(value) -> float:
    return float("nan") if value is None else float(value)


FAILED_TAG = ".FAILED"


def failed_paths(paths: dict[str, str]) -> dict[str, str]:
    """Where an artifact that fails its parity goes: ``NAME_MODE.FAILED.tflite`` and so on, beside the good names."""
    stem = os.fspath(paths["tflite"])[: -len(".tflite")]
    return {key: stem + FAILED_TAG + path[len(stem):] for key, path in paths.items()}


def outcome_paths(paths: dict[str, str], *, passed: bool) -> dict[str, str]:
    """The paths to write for this parity outcome; removes the other outcome's files left by an earlier export."""
    chosen, other = (paths, failed_paths(paths)) if passed else (failed_paths(paths), paths)
    for path in other.values():
        if os.path.exists(path):
            os.remove(path)
    return chosen


def failure_hint(*, mode, head: str, realigned: bool, finetune_steps: int) -> str:
    """The likely cause of a parity failure in ``mode`` and what to do about it, in one or two sentences."""
    from kerasseg.export.modes import Mode
    mode = Mode.parse(mode)
    accept = "or accept the drop with a larger --max-drop"
    if mode is Mode.EDGETPU and realigned:
        tuned = (f"{finetune_steps} steps of fine-tuning after the switch did not recover it" if finetune_steps
                 else "no fine-tuning followed (--edgetpu-finetune-steps 0)")
        return (f"Cause: the Edge TPU rebuild moves the model's resizes from half-pixel centres (as trained) to the "
                f"legacy alignment the Edge TPU maps, and {tuned}. Fix: raise --edgetpu-finetune-steps, or train "
                f"with --edgetpu-friendly, {accept}")
    if mode in (Mode.INT8, Mode.EDGETPU):
        return (f"Cause: post-training int8 quantization. Fix: quantization-aware training (--qat, more "
                f"--qat-steps), or more --calibration-steps, {accept}")
    if mode is Mode.QAT:
        return f"Cause: quantization-aware fine-tuning did not recover int8's loss. Fix: raise --qat-steps, {accept}"
    return (f"Cause: a float conversion agrees with Keras within about 0.1 points, so the device's "
            f"post-processing for head {head!r} (edge/segmenter.py) or the converter is suspect. Fix: compare "
            f"with --head full to tell them apart, {accept}")
