"""The one spec that travels with every kerasseg artifact.

It says what a device needs to use a segmentation model: input size, the
normalisation the model applies to raw RGB pixels, class names, colours, the
ignore label, and what the output holds. It is plain Python (no TensorFlow),
so the edge runtime and the training side read exactly the same format.
"""
from __future__ import annotations

import dataclasses
import enum
import json
import os


SPEC_FILENAME = "spec.json"
OUTPUT_KINDS = ("logits", "probabilities", "class_ids")
RESIZE_MODES = ("stretch", "letterbox")
CHANNEL_ORDERS = ("rgb", "bgr")
IGNORE_LABEL = 255


class Alignment(str, enum.Enum):
    """Where a coarser map's pixel centres lie on the input: how output row ``y_out`` maps to input row ``y_in``.

    The one vocabulary of a spec's ``output_alignment``, of the models' resize layers, of the importer (which
    reads it from a released graph's resizes) and of the device's upsampler. A ``str``, so that a spec writes it
    to JSON as its value and compares equal to it.
    """

    HALF_PIXEL = "half_pixel"  # y_out = (y_in + 0.5) * out / in - 0.5   (TF2 resize, OpenCV; scale = size ratio)
    LEGACY = "legacy"  # y_out = y_in * out / in                 (TF1 resize without half-pixel centres; Edge TPU)
    STRIDE = "stride"  # y_out = (y_in + 0.5) / stride - 0.5     (FCN's transposed convolution, then a crop)
    ALIGN_CORNERS = "align_corners"  # y_out = y_in * (out - 1) / (in - 1)  (TF1's align_corners=True: DeepLab's)

    def __str__(self) -> str:
        return self.value

    @classmethod
    def parse(cls, value: "str | Alignment", *, name: str = "alignment") -> "Alignment":
        """``value`` (a member or its value) as an Alignment; ValueError naming ``name``, the value and the valid
        choices otherwise."""
        try:
            return cls(value)
        except (ValueError, TypeError):
            raise ValueError(f"{name}: unknown value {value!r}; valid choices are {[a.value for a in cls]}") from None

    @classmethod
    def of_resize(cls, *, align_corners: bool, half_pixel_centers: bool) -> "Alignment":
        """The alignment of a TensorFlow (or TFLite) resize with these flags."""
        if align_corners:
            return cls.ALIGN_CORNERS
        return cls.HALF_PIXEL if half_pixel_centers else cls.LEGACY

    def resize_flags(self) -> dict[str, bool]:
        """``align_corners`` and ``half_pixel_centers`` of the TensorFlow resize with this alignment."""
        if self is Alignment.STRIDE:
            raise ValueError("alignment 'stride' is a transposed convolution's; no resize has it (valid choices "
                             f"for a resize are {[a.value for a in RESIZE_ALIGNMENTS]})")
        return {"align_corners": self is Alignment.ALIGN_CORNERS, "half_pixel_centers": self is Alignment.HALF_PIXEL}


OUTPUT_ALIGNMENTS = tuple(alignment.value for alignment in Alignment)
RESIZE_ALIGNMENTS = (Alignment.HALF_PIXEL, Alignment.LEGACY, Alignment.ALIGN_CORNERS)  # what a resize can do


class SpecError(ValueError):
    """A spec that is missing, malformed or inconsistent."""


def parse_size(value, *, name: str) -> tuple[int, int]:
    """``value`` as a positive ``(height, width)``; ValueError naming ``name`` otherwise."""
    try:
        height, width = (int(v) for v in value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected (height, width), got {value!r}") from None
    if height < 1 or width < 1:
        raise ValueError(f"{name}: expected positive (height, width), got {value!r}")
    return height, width


def default_colors(num_classes: int) -> tuple[tuple[int, int, int], ...]:
    """PASCAL VOC's bit-interleaved palette, RGB, for ``num_classes`` classes."""
    colors = []
    for index in range(num_classes):
        r = g = b = 0
        c = index
        for shift in range(7, -1, -1):
            r |= ((c >> 0) & 1) << shift
            g |= ((c >> 1) & 1) << shift
            b |= ((c >> 2) & 1) << shift
            c >>= 3
        colors.append((r, g, b))
    return tuple(colors)


@dataclasses.dataclass(frozen=True)
class Spec:
    """What a segmentation model expects and produces.

    ``mean`` and ``std`` are per RGB channel in pixel units (0..255): the model
    computes ``(pixel - mean) / std`` inside its graph, after reversing the
    channels when ``channel_order`` is ``"bgr"``. The device always feeds raw
    RGB; these fields are recorded so that a reader knows what happens inside.
    ``input_size`` is ``(height, width)``. ``output_stride`` is 1 when the output has
    the input's size, else the output has ``ceil(input / output_stride)`` pixels a side
    and ``output_alignment`` (an :class:`Alignment`) says where their centres lie. ``label_ids``
    (optional) maps each class id to the dataset's own id, e.g. COCO category ids (0 for background).
    """

    labels: tuple[str, ...]
    input_size: tuple[int, int]
    colors: tuple[tuple[int, int, int], ...] = ()
    mean: tuple[float, float, float] = (127.5, 127.5, 127.5)
    std: tuple[float, float, float] = (127.5, 127.5, 127.5)
    channel_order: str = "rgb"
    ignore_label: int = IGNORE_LABEL
    output_kind: str = "logits"
    resize_mode: str = "stretch"
    output_stride: int = 1
    output_alignment: Alignment = Alignment.HALF_PIXEL
    label_ids: tuple[int, ...] | None = None  # each class's id in the dataset's own numbering (COCO category ids)

    def __post_init__(self):
        if self.label_ids is not None:
            object.__setattr__(self, "label_ids", tuple(self.label_ids))
        object.__setattr__(self, "labels", tuple(str(x) for x in self.labels))
        object.__setattr__(self, "input_size", tuple(int(x) for x in self.input_size))
        colors = self.colors or default_colors(len(self.labels))
        object.__setattr__(self, "colors", tuple(tuple(int(v) for v in c) for c in colors))
        object.__setattr__(self, "mean", tuple(float(x) for x in self.mean))
        object.__setattr__(self, "std", tuple(float(x) for x in self.std))
        if self.output_alignment in OUTPUT_ALIGNMENTS:
            object.__setattr__(self, "output_alignment", Alignment.parse(self.output_alignment))
        self.validate()

    @property
    def num_classes(self) -> int:
        return len(self.labels)

    @property
    def output_size(self) -> tuple[int, int]:
        """(height, width) of the model's output map: the input size divided by the output stride, rounded up."""
        return tuple(-(-side // self.output_stride) for side in self.input_size)

    def validate(self) -> None:
        if len(self.labels) < 2:
            raise SpecError(f"spec labels: need at least 2 classes, got {len(self.labels)}: {list(self.labels)}")
        if len(set(self.labels)) != len(self.labels):
            raise SpecError(f"spec labels: names must be unique, got {list(self.labels)}")
        if len(self.input_size) != 2 or min(self.input_size) < 1:
            raise SpecError(f"spec input_size: expected (height, width) of positive ints, got {self.input_size}")
        if len(self.colors) != len(self.labels):
            raise SpecError(
                f"spec colors: expected one colour per label ({len(self.labels)}), got {len(self.colors)}")
        for color in self.colors:
            if len(color) != 3 or not all(0 <= v <= 255 for v in color):
                raise SpecError(f"spec colors: each colour must be 3 values in 0..255, got {color}")
        if len(self.mean) != 3 or len(self.std) != 3:
            raise SpecError(f"spec mean/std: expected 3 values each, got mean={self.mean} std={self.std}")
        if any(s <= 0 for s in self.std):
            raise SpecError(f"spec std: values must be positive, got {self.std}")
        if self.channel_order not in CHANNEL_ORDERS:
            raise SpecError(f"spec channel_order: expected one of {CHANNEL_ORDERS}, got {self.channel_order!r}")
        if self.output_kind not in OUTPUT_KINDS:
            raise SpecError(f"spec output_kind: expected one of {OUTPUT_KINDS}, got {self.output_kind!r}")
        if self.resize_mode not in RESIZE_MODES:
            raise SpecError(f"spec resize_mode: expected one of {RESIZE_MODES}, got {self.resize_mode!r}")
        if isinstance(self.output_stride, bool) or not isinstance(self.output_stride, int) or self.output_stride < 1:
            raise SpecError(f"spec output_stride: expected a positive int, got {self.output_stride!r}")
        if self.output_alignment not in OUTPUT_ALIGNMENTS:
            raise SpecError(f"spec output_alignment: expected one of {OUTPUT_ALIGNMENTS}, "
                            f"got {self.output_alignment!r}")
        if self.label_ids is not None and (len(self.label_ids) != len(self.labels) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in self.label_ids)):
            raise SpecError(f"spec label_ids: expected one int per label ({len(self.labels)}), got {self.label_ids}")
        if 0 <= self.ignore_label < len(self.labels):
            raise SpecError(
                f"spec ignore_label: {self.ignore_label} collides with a class id (0..{len(self.labels) - 1})")

    def replace(self, **changes) -> "Spec":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["labels"] = list(self.labels)
        data["input_size"] = list(self.input_size)
        data["colors"] = [list(c) for c in self.colors]
        data["mean"] = list(self.mean)
        data["std"] = list(self.std)
        data["output_alignment"] = self.output_alignment.value
        if self.label_ids is None:  # optional: written only when the dataset has its own ids
            del data["label_ids"]
        else:
            data["label_ids"] = list(self.label_ids)
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_dict(cls, data: dict, *, source: str = "spec") -> "Spec":
        if not isinstance(data, dict):
            raise SpecError(f"{source}: expected a JSON object, got {type(data).__name__}")
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise SpecError(f"{source}: unknown keys {unknown}; known keys are {sorted(known)}")
        missing = [k for k in ("labels", "input_size") if k not in data]
        if missing:
            raise SpecError(f"{source}: missing required keys {missing}")
        try:
            return cls(**data)
        except SpecError as err:
            raise SpecError(f"{source}: {err}") from None
        except (TypeError, ValueError) as err:
            raise SpecError(f"{source}: {err}") from None

    @classmethod
    def from_json(cls, text: str | bytes, *, source: str = "spec") -> "Spec":
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise SpecError(f"{source}: not valid JSON ({err})") from None
        return cls.from_dict(data, source=source)

    def save(self, path: str | os.PathLike) -> str:
        """Write the spec as JSON; a directory gets ``spec.json`` inside it."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, SPEC_FILENAME)
        from edge.files import write_text  # here: importing edge.artifact loads no other kerasseg module

        return write_text(path, self.to_json() + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Spec":
        """Read a spec JSON file, or ``spec.json`` inside a directory."""
        path = os.fspath(path)
        if os.path.isdir(path):
            path = os.path.join(path, SPEC_FILENAME)
        if not os.path.exists(path):
            raise SpecError(f"no spec at {path}")
        with open(path, "rb") as f:
            return cls.from_json(f.read(), source=path)
