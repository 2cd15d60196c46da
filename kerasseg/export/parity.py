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

Where the points go. A head that ends before the full resolution (``native``,
``argmax``) is also measured in Keras: its output, computed by the Keras model
and placed on the image in numpy exactly as the device places the artifact's,
is the "Keras with the head's placement" column. When an artifact fails,
:func:`diagnose` splits its drop into stages, each measured on the same images:
the head's placement (Keras full vs Keras placed), the converter and runtime
(Keras placed vs the float32 export with the same head) and the quantization
(that float32 export vs the artifact); the stage that lost the most is the
cause, and :func:`failure_hint` names it with the fix that matches.
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
    # Keras with the head's placement (the same measures as keras_*; equal to them for a full head)
    keras_head_miou: float = float("nan")
    keras_head_pixel_accuracy: float = float("nan")
    diagnosis: dict | None = None  # on failure: the stages of the drop, from diagnose()

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
    def measure_name(self) -> str:
        return "pixel accuracy against Keras" if self.truth == "keras" else "mIoU"

    @property
    def passed(self) -> bool:
        return bool(self.drop <= self.max_drop)

    def measure(self, who: str) -> float:
        """The judged measure (see ``drop``) of ``who``: "keras", "keras_head" (Keras with the head's placement)
        or "device", in points."""
        if self.truth == "keras":
            return 100.0 * getattr(self, f"{who}_pixel_accuracy")
        return 100.0 * getattr(self, f"{who}_miou")

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["miou_drop_points"] = self.miou_drop
        data["drop_points"], data["drop_measure"] = self.drop, self.drop_name
        data["drop_convention"] = "keras minus device, in points; positive = the artifact lost accuracy"
        data["passed"] = self.passed
        for key in ("failure_hint", "diagnosis"):
            if not data[key]:
                del data[key]  # export gives only a failure these: a hint beside a pass reads as a problem
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
        if self.head not in ("full", "full-argmax") and not np.isnan(self.keras_head_miou):
            lines.append(f"keras with the {self.head} head's placement: {self.measure_name} "
                         f"{self.measure('keras_head'):.2f}% (the placement alone: "
                         f"{self.measure('keras') - self.measure('keras_head'):+.2f})")
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


def with_head_output(model, head):
    """``model`` with a second output, its ``head``'s (native scores or class ids), for :func:`parity_report`'s
    "Keras with the head's placement"; ``model`` itself for a head that ends at the input size."""
    from kerasseg.backend import keras
    from kerasseg.export.heads import Head, cut

    head = Head.parse(head)
    if head in (Head.FULL, Head.FULL_ARGMAX):
        return model
    ending, _ = cut(model, head)
    return keras.Model(model.inputs, [model.outputs[0], ending.outputs[0]], name=f"{model.name}_parity")


def placed(segmenter, output: np.ndarray, image_shape) -> np.ndarray:
    """A head's output computed by Keras (native scores (h, w, k) or class ids (h, w)), placed on an image of
    ``image_shape`` as ``segmenter`` places its artifact's output (``Segmenter.postprocess``), in numpy."""
    from edge.segmenter import letterbox_geometry
    from edge.upsample import Upsample, decide, exact, nearest

    grid = segmenter.grid(letterbox_geometry(tuple(image_shape), segmenter.input_size, segmenter.spec.resize_mode))
    if output.ndim == 2:  # class ids: nearest neighbour, as the device does
        return nearest(grid, output)
    ids = decide(output)
    return nearest(grid, ids) if segmenter.upsample is Upsample.NEAREST else exact(grid, output, ids)


class _Tally:
    """A class map's confusion against the masks and against the Keras class map, and their agreement."""

    def __init__(self, spec):
        self.labels = list(spec.labels)
        self.masks = ConfusionMatrix(spec.num_classes, ignore_label=spec.ignore_label)
        self.keras = ConfusionMatrix(spec.num_classes, ignore_label=spec.ignore_label)
        self.agree = self.total = self.images = 0

    def update(self, mask, keras_pred, pred) -> None:
        self.images += 1
        self.masks.update(mask, pred)
        self.keras.update(keras_pred, pred)
        self.agree += int(np.sum(pred == keras_pred))
        self.total += pred.size

    def results(self, labelled: bool) -> dict:
        """mean_iou, pixel_accuracy and per_class_iou against the masks (without masks: against Keras)."""
        return (self.masks if labelled else self.keras).results(self.labels)


def parity_report(keras_model, content: bytes, batches: Iterable, *, mode: str, head: str = "full",
                  max_drop: float = 2.0, max_images: int | None = None, labelled: bool = True,
                  threads: int | None = None) -> ParityReport:
    """Run ``batches`` of (RGB image at the input size, mask) through Keras and through the device.

    ``content`` is the artifact, with its spec embedded (labels, ignore label,
    output stride and alignment come from there, as on the device). Without masks (``labelled=False``: the
    masks are all the ignore label), the Keras class map is the truth. ``keras_model`` outputs the full
    scores, or (``with_head_output``) those and the head's output, placed as the device places it.
    """
    with device_segmenter(content, threads=threads, require_spec=True) as segmenter:
        spec = segmenter.spec
        keras, keras_head, device = _Tally(spec), _Tally(spec), _Tally(spec)
        for images, masks in _limited(batches, max_images):
            outputs = keras_model(images.astype(np.float32), training=False)
            full, ends = (outputs, None) if not isinstance(outputs, (list, tuple)) else outputs
            keras_pred = np.argmax(np.asarray(full), axis=-1)
            for index, (image, mask, k_pred) in enumerate(zip(images, masks, keras_pred)):
                mask = mask.reshape(k_pred.shape)
                keras.update(mask, k_pred, k_pred)
                k_head = k_pred if ends is None else placed(segmenter, np.asarray(ends[index]), image.shape[:2])
                keras_head.update(mask, k_pred, k_head)
                device.update(mask, k_pred, segmenter.segment(np.ascontiguousarray(image[..., ::-1])))  # BGR in
        runner = (f"edge.segmenter.Segmenter, output {segmenter.kind} {list(spec.output_size)} "
                  f"(stride {spec.output_stride}, {spec.output_alignment}), {segmenter.loaded.describe()}")
    if device.images == 0:
        raise ValueError("validation data: the pipeline yielded no image for the parity report")
    if labelled and not keras.masks.matrix.any():
        raise ValueError(f"validation data: every pixel of the parity images is the ignore label "
                         f"{spec.ignore_label}: no mask to measure against")
    before, after, middle = (tally.results(labelled) for tally in (keras, device, keras_head))
    return ParityReport(
        mode=mode, head=str(getattr(head, "value", head)), labels=keras.labels, num_images=device.images,
        keras_miou=_nan(before["mean_iou"]), device_miou=_nan(after["mean_iou"]),
        keras_pixel_accuracy=_nan(before["pixel_accuracy"]), device_pixel_accuracy=_nan(after["pixel_accuracy"]),
        keras_iou=[_nan(before["per_class_iou"][name]) for name in keras.labels],
        device_iou=[_nan(after["per_class_iou"][name]) for name in keras.labels],
        miou_vs_keras=_nan(device.keras.results(keras.labels)["mean_iou"]),
        pixel_agreement=device.agree / device.total, max_drop=float(max_drop), runner=runner,
        truth="masks" if labelled else "keras", keras_head_miou=_nan(middle["mean_iou"]),
        keras_head_pixel_accuracy=_nan(middle["pixel_accuracy"]))


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


NOISE_POINTS = 0.1  # a stage losing less than this explains nothing (a float conversion keeps within about it)
# The stages of a drop, in the order an image goes through them, with what each compares.
STAGES = {
    "head": "Keras at full resolution vs Keras with the head's placement (its output placed as the device does)",
    "converter": "Keras with the head's placement vs the float32 export with the same head on the device",
    "quantization": "the float32 export with the same head vs this artifact, both on the device",
}


def diagnose(report: ParityReport, spec, *, float32: ParityReport | None = None) -> dict:
    """Where ``report``'s drop went, measured on the same images: the judged measure (mIoU, or pixel accuracy
    against Keras without masks) after each stage of :data:`STAGES`, each stage's loss in points, and the stage
    that lost the most (``cause``). ``float32`` is the parity of the float32 export with the same head (None
    when ``report`` is that export; for another mode, the converter and the quantization then count as one)."""
    from kerasseg.export.modes import Mode

    keras, placed_ = report.measure("keras"), report.measure("keras_head")
    points = {"keras": keras, "keras_head": keras if np.isnan(placed_) else placed_}
    stages = {"head": ("keras", "keras_head")}
    if Mode.parse(report.mode) is Mode.FLOAT32:
        points["device"] = report.measure("device")
        stages["converter"] = ("keras_head", "device")
    elif float32 is not None:
        points["float32"], points["device"] = float32.measure("device"), report.measure("device")
        stages["converter"], stages["quantization"] = ("keras_head", "float32"), ("float32", "device")
    else:
        points["device"] = report.measure("device")
        stages["quantization"] = ("keras_head", "device")
    losses = {name: points[before] - points[after] for name, (before, after) in stages.items()}
    return {"measure": report.measure_name, "points": points, "losses_points": losses,
            "cause": _cause(losses), "stages": {name: STAGES[name] for name in stages},
            "head": report.head, "input_size": list(spec.input_size), "output_size": list(spec.output_size),
            "output_stride": spec.output_stride}


def _cause(losses: dict) -> str:
    """The stage that lost the most points; when none lost more than ``NOISE_POINTS``, the stage nearest the
    artifact (its own conversion), as nothing earlier explains the failure."""
    lost = {name: loss for name, loss in losses.items() if loss > NOISE_POINTS}
    return max(lost, key=lost.get) if lost else list(losses)[-1]


def failure_hint(report: ParityReport, *, realigned: bool, finetune_steps: int) -> str:
    """The cause of ``report``'s failure, from its ``diagnosis``, with its numbers and the fix that matches."""
    from kerasseg.export.modes import Mode

    found, mode, accept = report.diagnosis, Mode.parse(report.mode), "or accept the drop with a larger --max-drop"
    points, losses, measure = found["points"], found["losses_points"], found["measure"]
    if found["cause"] == "head":
        return _head_hint(found, accept)
    if found["cause"] == "converter":
        return (f"Cause: the converter or the runtime: the float32 export scores "
                f"{points.get('float32', points['device']):.2f} {measure} where Keras, placed as the device places "
                f"it, scores {points['keras_head']:.2f} ({losses['converter']:+.2f}; a float conversion keeps within "
                f"about 0.1). Fix: none in your settings: please report a bug with this parity.json and the model; "
                f"meanwhile try another --head, {accept}")
    numbers = (f"this artifact scores {points['device']:.2f} {measure}, {losses['quantization']:.2f} points below "
               + (f"the float32 export of the same graph ({points['float32']:.2f}; Keras {points['keras_head']:.2f})"
                  if "float32" in points else f"Keras ({points['keras_head']:.2f})"))
    if mode is Mode.EDGETPU and realigned:
        tuned = (f"{finetune_steps} steps of fine-tuning after the switch did not recover it" if finetune_steps
                 else "no fine-tuning followed (--edgetpu-finetune-steps 0)")
        return (f"Cause: the Edge TPU rebuild and its int8 quantization: {numbers}; the rebuild moves the model's "
                f"resizes from half-pixel centres (as trained) to the legacy alignment the Edge TPU maps, and "
                f"{tuned}. Fix: raise --edgetpu-finetune-steps, or train with --edgetpu-friendly, {accept}")
    causes = {Mode.INT8: "post-training int8 quantization", Mode.EDGETPU: "int8 quantization for the Edge TPU",
              Mode.QAT: "int8 quantization, which quantization-aware fine-tuning did not recover",
              Mode.FLOAT16: "float16 weights", Mode.DYNAMIC_RANGE: "dynamic-range quantization (int8 weights)"}
    fixes = {Mode.QAT: "raise --qat-steps", Mode.FLOAT16: "--float32",
             Mode.DYNAMIC_RANGE: "--int8 (calibrated activations) or --qat"}
    fix = fixes.get(mode, "quantization-aware training (--qat, more --qat-steps), or more --calibration-steps")
    return f"Cause: {causes[mode]}: {numbers}. Fix: {fix}, {accept}"


def _head_hint(found: dict, accept: str) -> str:
    """The hint when the head's placement lost the points (an ``argmax`` head's ids, placed by nearest neighbour)."""
    points, losses, measure, head = found["points"], found["losses_points"], found["measure"], found["head"]
    (h, w), (height, width), stride = found["output_size"], found["input_size"], found["output_stride"]
    what = "class ids" if head == "argmax" else "scores"
    float32 = points.get("float32", points["device"])
    finer = ", or a model with a smaller output stride" if stride > 4 else ""
    return (f"Cause: the {head} head's placement: its {h}x{w} {what} (stride {stride}) placed on the {height}x{width} "
            f"input as the device places them cost Keras itself {losses['head']:.2f} points ({measure} "
            f"{points['keras']:.2f} -> {points['keras_head']:.2f}), and the float32 export with the same head drops "
            f"{points['keras'] - float32:+.2f}. Fix: --head native (its scores are upsampled exactly), or a larger "
            f"--input-size{finer}, {accept}")
