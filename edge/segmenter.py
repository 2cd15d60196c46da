"""A frame in, a class map out: pre-processing, invoke, dequantization, argmax.

The contract with our exported models (see ``edge.artifact``): the model takes raw
RGB pixels and normalises inside its graph, so with a spec the device only
resizes and, for quantized inputs, quantizes the raw pixel with the input
tensor's own scale and zero point. A foreign model without a spec gets its
input range from its quantization parameters (or ``mean``/``std``) instead.
"""
from __future__ import annotations

import dataclasses
import logging
import os

import cv2
import numpy as np

from edge.interpreter import LoadedInterpreter, ModelError, load_interpreter
from edge.artifact import (ArtifactMetadata, MetadataError, Spec, SpecError, StandardMetadata, check_agreement,
                           custom_ops, default_colors, read_artifact)
from edge.upsample import Grid, Upsample, decide, exact, frame_grid, nearest

log = logging.getLogger(__name__)

INPUT_DTYPES = (np.uint8, np.int8, np.float32)
# What a tensor shape says the output holds.
SCORES, PROBABILITY, CLASS_IDS = "scores", "probability", "class_ids"
FOREIGN_FLOAT_MEAN = FOREIGN_FLOAT_STD = (127.5, 127.5, 127.5)  # [-1, 1], the common float convention


class SpecMismatch(SpecError):
    """A spec that contradicts the model's tensors."""


@dataclasses.dataclass(frozen=True)
class Geometry:
    """Where a frame sits inside the model input: the content box and the frame size."""

    frame_size: tuple[int, int]  # (height, width) of the original frame
    box: tuple[int, int, int, int]  # (top, left, height, width) of the content in the model input


def letterbox_geometry(frame_size: tuple[int, int], input_size: tuple[int, int], mode: str) -> Geometry:
    """The content box for ``mode`` ("stretch" fills the input; "letterbox" keeps the aspect ratio, centred)."""
    h, w = frame_size
    ih, iw = input_size
    if mode == "stretch":
        return Geometry(frame_size=(h, w), box=(0, 0, ih, iw))
    if mode != "letterbox":
        raise ValueError(f"resize_mode: expected 'stretch' or 'letterbox', got {mode!r}")
    scale = min(ih / h, iw / w)
    nh, nw = max(1, min(ih, round(h * scale))), max(1, min(iw, round(w * scale)))
    return Geometry(frame_size=(h, w), box=((ih - nh) // 2, (iw - nw) // 2, nh, nw))


def place(image: np.ndarray, geometry: Geometry, size: tuple[int, int]) -> np.ndarray:
    """``image`` resized (bilinear) into ``geometry.box`` of a black image of ``size`` (height, width)."""
    top, left, nh, nw = geometry.box
    # Bilinear: INTER_AREA is ~10x slower for 640x480 -> 224x224, which costs FPS on a Pi.
    resized = cv2.resize(image, (nw, nh), interpolation=cv2.INTER_LINEAR)
    if (nh, nw) == tuple(size):
        return resized
    height, width = size
    return cv2.copyMakeBorder(resized, top, height - nh - top, left, width - nw - left, cv2.BORDER_CONSTANT,
                              value=(0, 0, 0))


def input_lut(*, dtype, quantization: tuple[float, int], mean, std) -> np.ndarray | None:
    """A (1, 256, 3) table mapping each raw pixel to the input tensor value, per RGB channel.

    ``mean``/``std`` None means the model takes raw pixels. Quantized inputs use
    ``q = round(real / scale + zero_point)`` clipped to the dtype's range. None
    when the table would be the identity on uint8 (nothing to do).
    """
    pixels = np.arange(256, dtype=np.float64)[:, None].repeat(3, axis=1)
    real = pixels if mean is None else (pixels - np.asarray(mean, np.float64)) / np.asarray(std, np.float64)
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return real.astype(np.float32)[None]
    scale, zero_point = quantization
    if scale == 0:  # an integer input without quantization: feed values as they are
        q = np.rint(real)
    else:
        q = np.rint(real / scale + zero_point)
    info = np.iinfo(dtype)
    q = np.clip(q, info.min, info.max).astype(dtype)
    if dtype == np.uint8 and np.array_equal(q[:, 0], np.arange(256)) and (q == q[:, :1]).all():
        return None
    return q[None]


def derived_normalisation(*, dtype, quantization: tuple[float, int]):
    """For a foreign model: (mean, std) mapping pixels 0..255 onto the range the input tensor can represent."""
    dtype = np.dtype(dtype)
    scale, zero_point = quantization
    if dtype == np.float32 or scale == 0:
        return FOREIGN_FLOAT_MEAN, FOREIGN_FLOAT_STD
    info = np.iinfo(dtype)
    lo, hi = scale * (info.min - zero_point), scale * (info.max - zero_point)
    std = 255.0 / (hi - lo)
    return (-lo * std + 0.0,) * 3, (std,) * 3


def dequantize(values: np.ndarray, quantization: tuple[float, int]) -> np.ndarray:
    """Real values of a tensor with (scale, zero_point); float tensors (scale 0) pass through as float32."""
    scale, zero_point = quantization
    if scale == 0:
        return values.astype(np.float32, copy=False)
    return (values.astype(np.float32) - np.float32(zero_point)) * np.float32(scale)


def grid_for(geometry: Geometry, *, spec: Spec, output_size: tuple[int, int]) -> Grid:
    """The :class:`~edge.upsample.Grid` placing an output map of ``output_size`` (from ``spec``'s model) on the frame."""
    return frame_grid(geometry.frame_size, geometry.box, input_size=tuple(spec.input_size),
                      output_size=tuple(output_size), alignment=spec.output_alignment, stride=spec.output_stride)


def _describe_tensor(detail: dict) -> str:
    return f"{tuple(int(x) for x in detail['shape'])} {np.dtype(detail['dtype']).name}"


def _output_kind(detail: dict, model: str) -> str:
    shape = tuple(int(x) for x in detail["shape"])
    dtype = np.dtype(detail["dtype"])
    if len(shape) == 4 and shape[0] == 1 and shape[3] >= 2:
        return SCORES
    if len(shape) == 4 and shape[0] == 1 and shape[3] == 1:
        return PROBABILITY
    if len(shape) == 3 and shape[0] == 1 and dtype.kind in "iu":
        return CLASS_IDS
    raise ModelError(
        f"model {model!r} is not a segmentation model: its output is {_describe_tensor(detail)}; expected "
        f"(1, H, W, C) scores, (1, H, W, 1) probability or (1, H, W) integer class ids")


def _check_input(detail: dict, model: str) -> None:
    shape = tuple(int(x) for x in detail["shape"])
    if len(shape) != 4 or shape[0] != 1 or shape[3] != 3 or np.dtype(detail["dtype"]) not in INPUT_DTYPES:
        raise ModelError(
            f"model {model!r} is not a segmentation model for RGB images: its input is {_describe_tensor(detail)}; "
            f"expected (1, H, W, 3) uint8, int8 or float32")


def check_spec(spec: Spec, *, input_size: tuple[int, int], kind: str, channels: int, where: str,
               output_size: tuple[int, int] | None = None) -> None:
    """Raise :class:`SpecMismatch` naming every field of ``spec`` that the tensors contradict.

    ``output_size`` is the output tensor's (height, width); the spec's ``output_stride`` must give it.
    """
    problems = []
    if tuple(spec.input_size) != tuple(input_size):
        problems.append(f"input_size: spec says {list(spec.input_size)}, model input is {list(input_size)}")
    if kind == CLASS_IDS and spec.output_kind != "class_ids":
        problems.append(f"output_kind: spec says {spec.output_kind!r}, model outputs (1, H, W) class ids")
    if kind != CLASS_IDS and spec.output_kind == "class_ids":
        problems.append(f"output_kind: spec says 'class_ids', model outputs (1, H, W, {channels}) scores")
    if kind == SCORES and channels != spec.num_classes:
        problems.append(f"number of classes: spec has {spec.num_classes} labels, model outputs {channels} channels")
    if kind == PROBABILITY and spec.num_classes != 2:
        problems.append(f"number of classes: spec has {spec.num_classes} labels, "
                        f"model outputs one probability channel (2 classes)")
    if output_size is not None and tuple(spec.output_size) != tuple(output_size):
        problems.append(f"output_size: spec says output_stride {spec.output_stride}, so an output of "
                        f"{list(spec.output_size)} for input {list(spec.input_size)}, model output is "
                        f"{list(output_size)}")
    if problems:
        raise SpecMismatch(f"spec from {where} contradicts the model: " + "; ".join(problems))


class Segmenter:
    """Runs one segmentation model on BGR frames (as OpenCV delivers them).

    ``spec`` is the model's spec, or None for a foreign model; ``standard`` is its standard
    TFLite Model Metadata, if any (for our artifacts it must agree with the spec; for a
    foreign model its normalisation, labels and output kind beat guesses from the tensors).
    ``mean``/``std`` (pixel units, RGB) make the device normalise; ``labels`` replace the
    class names; ``upsample`` (see :class:`edge.upsample.Upsample`) is how scores coarser
    than the input reach the frame. ``sources`` says where the normalisation, labels and output kind came from.
    """

    def __init__(self, loaded: LoadedInterpreter, *, spec: Spec | None = None, spec_source: str | None = None,
                 standard: StandardMetadata | None = None, mean=None, std=None, labels=None,
                 model_path: str = "model", upsample: str = "exact"):
        self.loaded = loaded
        self.interpreter = loaded.interpreter
        self.model_path = model_path
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1:
            raise ModelError(f"model {model_path!r} is not a segmentation model: it has {len(inputs)} inputs "
                             f"({', '.join(_describe_tensor(d) for d in inputs)}); expected one image")
        if len(outputs) != 1:
            raise ModelError(f"model {model_path!r}: expected one output, found {len(outputs)} "
                             f"({', '.join(_describe_tensor(d) for d in outputs)})")
        self._input, self._output = inputs[0], outputs[0]
        _check_input(self._input, model_path)
        self.kind = _output_kind(self._output, model_path)
        self.input_size = (int(self._input["shape"][1]), int(self._input["shape"][2]))
        self.output_size = (int(self._output["shape"][1]), int(self._output["shape"][2]))
        self.upsample = Upsample.parse(upsample)
        self.input_dtype = np.dtype(self._input["dtype"])
        self.input_quantization = tuple(self._input["quantization"])
        self.output_quantization = tuple(self._output["quantization"])
        channels = int(self._output["shape"][3]) if self.kind != CLASS_IDS else 0
        if (mean is None) != (std is None):
            raise ValueError(f"mean and std go together; got mean={mean} std={std}")

        if spec is not None:
            check_spec(spec, input_size=self.input_size, kind=self.kind, channels=channels, where=spec_source or "spec",
                       output_size=self.output_size)
            if standard is not None:
                check_agreement(spec, standard, where=model_path)
            self.sources = {"normalisation": "flags" if mean is not None else "our spec", "labels": "our spec",
                            "output kind": "our spec"}
        else:
            spec, mean, std = self._foreign(channels, labels, standard or StandardMetadata(), mean, std)
            spec_source = "none: derived from the model's tensors" + (" and standard metadata" if standard else "")
        if labels is not None:
            labels = tuple(labels)
            if len(labels) != spec.num_classes and self.kind != CLASS_IDS:
                raise ValueError(f"labels: the model has {spec.num_classes} classes, got {len(labels)} labels: "
                                 f"{list(labels)}")
            colors = spec.colors if len(labels) == spec.num_classes else ()
            spec = spec.replace(labels=labels, colors=colors)
            self.sources["labels"] = "flags"
        self.spec, self.spec_source = spec, spec_source
        self.mean = None if mean is None else tuple(float(x) for x in mean)
        self.std = None if std is None else tuple(float(x) for x in std)
        self._lut = input_lut(dtype=self.input_dtype, quantization=self.input_quantization,
                              mean=self.mean, std=self.std)
        # One channel: a probability > 0.5, or a logit > 0 when the spec says logits.
        self.threshold = 0.0 if spec.output_kind == "logits" else 0.5

    def _foreign(self, channels: int, labels, standard: StandardMetadata, mean, std):
        """(derived spec, mean, std) of a model without a spec; fills ``self.sources``."""
        flagged = mean is not None
        self.sources = {"normalisation": "flags" if flagged else "tensors", "labels": "tensors",
                        "output kind": "tensors"}
        stated = standard.normalisation()
        if not flagged and stated is not None and self.input_dtype == np.float32:
            mean, std = stated
            self.sources["normalisation"] = "standard metadata"
        elif not flagged:
            mean, std = derived_normalisation(dtype=self.input_dtype, quantization=self.input_quantization)
            if self.input_dtype == np.float32:
                log.warning("model %s has a float input and no spec or standard normalisation: assuming pixels "
                            "scaled to [-1, 1] (mean %s, std %s); pass --mean/--std if it expects otherwise",
                            self.model_path, mean[0], std[0])
            elif stated is not None:  # MediaPipe and the Task Library feed integer inputs the raw pixels too
                self.sources["normalisation"] = "tensors (standard metadata normalises float inputs only)"
        spec = self._derived_spec(channels, labels, standard)
        return spec, mean, std

    def _derived_spec(self, channels: int, labels, standard: StandardMetadata) -> Spec:
        kind = {SCORES: "logits", PROBABILITY: "probabilities", CLASS_IDS: "class_ids"}[self.kind]
        if standard.output_kind is not None:
            if (standard.output_kind == "class_ids") != (self.kind == CLASS_IDS):
                raise MetadataError(f"model {self.model_path}: its standard metadata describes "
                                    f"{standard.output_kind!r}, but its output is {_describe_tensor(self._output)}")
            kind = standard.output_kind
            self.sources["output kind"] = "standard metadata"
        names = standard.labels
        if names is not None and self.kind == PROBABILITY and len(names) == 1:
            names = ("background",) + tuple(names)  # one channel: the label of its class
        if self.kind == SCORES:
            count = channels
        elif self.kind == PROBABILITY:
            count = 2
        else:  # class ids: the tensors don't say how many; labels do, else allow every uint8 id
            count = len(labels) if labels is not None else len(names) if names is not None else 256
        if names is not None and labels is None:
            if len(names) != count:
                raise MetadataError(f"model {self.model_path}: the label file in its standard metadata has "
                                    f"{len(names)} names for {count} classes: {list(names)}")
            self.sources["labels"] = "standard metadata"
        elif labels is None or len(labels) != count:
            names = tuple(f"class {i}" for i in range(count))
        else:
            names = tuple(labels)
        ignore = 255 if count < 255 else -1
        return Spec(labels=names, input_size=self.input_size, output_kind=kind, ignore_label=ignore)

    @classmethod
    def from_file(cls, model_path: str, *, runtime: str | None = None, threads: int | None = None,
                  edgetpu: bool = False, fallback_cpu: bool = False, use_spec: bool = True,
                  mean=None, std=None, labels=None, upsample: str = "exact") -> "Segmenter":
        """Load ``model_path``, its spec (embedded, or ``MODEL.spec.json`` beside it) and its standard metadata.

        ``use_spec=False`` ignores both and derives everything from the tensors (and the flags).
        """
        model_path = os.fspath(model_path)
        if not os.path.isfile(model_path):
            raise ModelError(f"model: no such file {model_path!r}")
        found = read_artifact(model_path) if use_spec else ArtifactMetadata()
        if "edgetpu-custom-op" in custom_ops(model_path) and not edgetpu:
            raise ModelError(f"model {model_path!r} is compiled for the Edge TPU (it uses edgetpu-custom-op); "
                             f"run it with --edgetpu, or use the CPU .tflite it was compiled from")
        loaded = load_interpreter(model_path, runtime=runtime, threads=threads, edgetpu=edgetpu,
                                  fallback_cpu=fallback_cpu)
        return cls(loaded, spec=found.spec, spec_source=found.spec_source, standard=found.standard, mean=mean,
                   std=std, labels=labels, model_path=model_path, upsample=upsample)

    # -- the three stages -------------------------------------------------------------------------

    def preprocess(self, frame_bgr: np.ndarray) -> tuple[np.ndarray, Geometry]:
        """BGR frame -> (1, H, W, 3) input tensor, resized per the spec's resize_mode."""
        if frame_bgr.ndim != 3 or frame_bgr.shape[2] != 3 or frame_bgr.dtype != np.uint8:
            raise ValueError(f"frame: expected an (H, W, 3) uint8 BGR image, got {frame_bgr.shape} {frame_bgr.dtype}")
        geometry = letterbox_geometry(frame_bgr.shape[:2], self.input_size, self.spec.resize_mode)
        rgb = cv2.cvtColor(place(frame_bgr, geometry, self.input_size), cv2.COLOR_BGR2RGB)
        if self._lut is not None:
            rgb = cv2.LUT(rgb, self._lut) if self._lut.dtype in (np.uint8, np.float32) else \
                cv2.LUT(rgb, self._lut.view(np.uint8)).view(self._lut.dtype)
        return rgb[None].astype(self.input_dtype, copy=False), geometry

    def invoke(self, tensor: np.ndarray) -> np.ndarray:
        """Run the interpreter; returns a copy of the raw output tensor."""
        self.interpreter.set_tensor(self._input["index"], tensor)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self._output["index"])

    def scores(self, raw: np.ndarray) -> np.ndarray:
        """The output dequantized with the interpreter's own (scale, zero_point)."""
        return dequantize(raw, self.output_quantization)

    def postprocess(self, raw: np.ndarray, geometry: Geometry) -> np.ndarray:
        """Raw output -> class map at the frame's size (uint8 when ids fit, else int32).

        Scores coarser than the input reach the frame per ``upsample``: ``exact`` gives the classes of
        the bilinear scores the full head computes (see :mod:`edge.upsample`). Class ids, and outputs at
        the input size, are scaled with nearest neighbour. ``raw`` may also be an average of outputs
        (``edge.smoothing``), as float32: its classes are decided the same way.
        """
        values, threshold = raw[0], None
        scale, zero_point = self.output_quantization
        if self.kind == SCORES and scale <= 0:
            values = self.scores(values)
        elif self.kind == PROBABILITY:
            # A probability > 0.5 (or a logit > 0), moved into the integer domain when quantized.
            threshold = self.threshold / scale + zero_point if scale > 0 else self.threshold
        elif self.kind == CLASS_IDS and scale != 0:
            values = np.rint(self.scores(values))
        dtype = np.uint8 if self.spec.num_classes <= 256 else np.int32
        # Dequantizing is x -> scale * (x - zero_point), increasing for scale > 0, so the classes of the
        # integers are the classes of the real scores (and so are those of their bilinear blends).
        ids = (values if self.kind == CLASS_IDS else decide(values, threshold)).astype(dtype)
        placement = self.grid(geometry)
        if self.kind == CLASS_IDS or self.output_size == self.input_size or self.upsample is Upsample.NEAREST:
            return nearest(placement, ids)
        return exact(placement, values, ids, threshold)

    def grid(self, geometry: Geometry) -> Grid:
        """Where each frame pixel falls in the output map (cached per geometry)."""
        return grid_for(geometry, spec=self.spec, output_size=self.output_size)

    def segment(self, frame_bgr: np.ndarray) -> np.ndarray:
        """All three stages: BGR frame -> class map of the same height and width."""
        tensor, geometry = self.preprocess(frame_bgr)
        return self.postprocess(self.invoke(tensor), geometry)

    # -- description ------------------------------------------------------------------------------

    @property
    def labels(self) -> tuple[str, ...]:
        return self.spec.labels

    @property
    def colors(self) -> tuple[tuple[int, int, int], ...]:
        return self.spec.colors

    def describe(self) -> str:
        if self.mean is None:
            norm = "raw pixels"
        else:
            norm = f"device normalisation mean {list(self.mean)} std {list(self.std)}"
        return (f"model {self.model_path}: input {self.input_size[0]}x{self.input_size[1]} "
                f"{self.input_dtype.name} ({norm}), output {_describe_tensor(self._output)} {self.kind}, "
                f"{self.spec.num_classes} classes, spec {self.spec_source}; "
                + ", ".join(f"{what} from {where}" for what, where in self.sources.items())
                + f"; {self.loaded.describe()}")


__all__ = ["CLASS_IDS", "PROBABILITY", "SCORES", "Geometry", "Segmenter", "SpecMismatch", "Upsample", "check_spec",
           "default_colors", "dequantize", "derived_normalisation", "grid_for", "input_lut", "letterbox_geometry",
           "place"]
