"""Where an exported graph ends: the head of the artifact, chosen at export time.

The Keras model always ends in logits at the input size (training and evaluation need
them). An artifact may end earlier, which is cheaper on a device:

- ``full``: the Keras graph as it is, logits at the input size (output stride 1).
- ``native``: logits at the classifier's own resolution, before the final upsampling:
  DeepLab's last ``ResizeToReference`` ("logits"), FCN's fixed bilinear
  ``Conv2DTranspose`` ("upscore8/16/32"). The device upsamples, using the spec's
  ``output_stride`` and ``output_alignment``.
- ``argmax``: ``native``, then ARG_MAX over the classes: (1, h, w) uint8 class ids.
- ``full-argmax``: ``full``, then ARG_MAX: (1, H, W) uint8 class ids.

:func:`cut` returns the model to convert and the spec fields that head implies.
"""
from __future__ import annotations

from edge.artifact.spec import Alignment
from kerasseg.backend import keras, layers, tf
from kerasseg.export.modes import Choice
from kerasseg.models.layers import CropToReference, ResizeToReference

FCN_UPSCORE_NAMES = ("upscore8", "upscore16", "upscore32")


class Head(Choice):
    """Where the exported graph ends; ``value`` is the ``--head`` choice."""

    FULL = "full"
    NATIVE = "native"
    ARGMAX = "argmax"
    FULL_ARGMAX = "full-argmax"

    @property
    def ids(self) -> bool:
        """True when the head outputs class ids (an ARG_MAX in the graph)."""
        return self in (Head.ARGMAX, Head.FULL_ARGMAX)


class ArgMaxIds(layers.Layer):
    """Class ids of per-pixel scores: ARG_MAX over the last axis (int32), then a CAST to ``ids_type``
    ("uint8", the default, when the classes fit; "int32" keeps ARG_MAX's own output)."""

    def __init__(self, *, ids_type: str = "uint8", **kwargs):
        super().__init__(**kwargs)
        if ids_type not in ("uint8", "int32"):
            raise ValueError(f"ids_type: expected 'uint8' or 'int32', got {ids_type!r}")
        self.ids_type = ids_type

    def call(self, scores):
        ids = tf.math.argmax(scores, axis=-1, output_type=tf.int32)
        if self.ids_type == "uint8" and scores.shape[-1] <= 256:
            return tf.cast(ids, tf.uint8)
        return ids


def _producer(tensor):
    """(layer, its input tensors) for the node that produced a functional-model tensor.

    A wrapped layer (tfmot's quantization-aware wrapper) is described by the layer it wraps.
    """
    history = tensor._keras_history
    node = history.layer._inbound_nodes[history.node_index]
    layer = history.layer
    if isinstance(layer, layers.Wrapper):
        layer = layer.layer
    return layer, list(node.keras_inputs)


def _stride(tensor, memo: dict):
    """How many input pixels one pixel of ``tensor`` spans (None: a global, 1x1 map)."""
    key = id(tensor)
    if key not in memo:
        layer, inputs = _producer(tensor)
        if not inputs:  # the image
            memo[key] = 1
        elif isinstance(layer, (ResizeToReference, CropToReference)):
            memo[key] = _stride(inputs[1], memo)
        elif isinstance(layer, (layers.GlobalAveragePooling2D, layers.GlobalMaxPooling2D)):
            memo[key] = None
        else:
            strides = {s for s in (_stride(t, memo) for t in inputs) if s is not None}
            if len(strides) > 1:
                raise ValueError(f"layer {layer.name!r} merges maps of strides {sorted(strides)}")
            stride = strides.pop() if strides else None
            step = getattr(layer, "strides", (1, 1))
            if stride is not None and len(set(step)) != 1:
                raise ValueError(f"layer {layer.name!r} has unequal strides {tuple(step)}")
            if stride is not None and isinstance(layer, layers.Conv2DTranspose):
                stride = stride / step[0]
            elif stride is not None:
                stride = stride * step[0]
            memo[key] = stride
    return memo[key]


def _native(model, head: Head):
    """(native logits tensor, alignment) for a DeepLab or FCN model; ValueError otherwise."""
    final, inputs = _producer(model.outputs[0])
    if isinstance(final, ResizeToReference) and final.name == "logits" and final.interpolation == "bilinear":
        return inputs[0], final.alignment
    if isinstance(final, CropToReference) and final.name == "logits":
        upscore, up_inputs = _producer(inputs[0])
        if isinstance(upscore, layers.Conv2DTranspose) and upscore.name in FCN_UPSCORE_NAMES:
            return up_inputs[0], Alignment.STRIDE
    raise ValueError(
        f"head {head.value!r}: model {model.name!r} does not end in a bilinear ResizeToReference 'logits' "
        f"(DeepLab) or a Conv2DTranspose {'/'.join(FCN_UPSCORE_NAMES)} cropped by 'logits' (FCN), so it cannot "
        f"end at its native resolution; its last layer is {final.name!r} ({type(final).__name__}). "
        f"Valid choices for this model: {[Head.FULL.value, Head.FULL_ARGMAX.value]}")


def _native_stride(model, native, head: Head) -> int:
    """The native map's stride, checked against the static input size: ceil(input / stride) a side."""
    stride = _stride(native, {})
    if stride is None or stride != int(stride) or stride < 1:
        raise ValueError(f"head {head.value!r}: model {model.name!r} has no whole output stride at its native "
                         f"resolution (got {stride})")
    stride = int(stride)
    size, native_size = tuple(model.inputs[0].shape[1:3]), tuple(native.shape[1:3])
    if None not in size:
        expected = tuple(-(-side // stride) for side in size)
        if native_size != expected:
            raise ValueError(f"head {head.value!r}: model {model.name!r} at input {size[0]}x{size[1]} has a native "
                             f"map of {native_size}, not ceil(input / {stride}) = {expected}")
    return stride


def cut(model, head: Head | str) -> tuple:
    """The model to convert for ``head`` and the spec fields it implies.

    Returns ``(model, {"output_kind", "output_stride", "output_alignment"})``. The input
    model is unchanged; native heads share its layers and weights. Raises ValueError,
    naming the head and the valid choices, when the model cannot end there.
    """
    head = Head.parse(head)
    if head in (Head.FULL, Head.FULL_ARGMAX):
        scores, stride, alignment = model.outputs[0], 1, Alignment.HALF_PIXEL
    else:
        native, alignment = _native(model, head)
        stride = _native_stride(model, native, head)
        scores = layers.Activation("linear", dtype="float32", name="native_logits")(native)
    fields = {"output_kind": "class_ids" if head.ids else "logits", "output_stride": stride,
              "output_alignment": alignment}
    if head.ids:
        out = ArgMaxIds(name="class_ids")(scores)
    elif scores is model.outputs[0]:
        return model, fields
    else:
        out = scores
    return keras.Model(model.inputs, out, name=f"{model.name}_{head.filename_suffix}"), fields
