"""The one name map: the official DeepLab (TF1 slim) variable scopes -> the layers ``build_model`` makes.

Every reader (``tflite.py``, ``checkpoint.py``) turns its file into :class:`Official` weights, keyed by these
scopes, and :func:`assign` puts them into a Keras model; :func:`official_weights` is the inverse. A scope
holds one convolution: ``weights`` (TF1 layout: ``(kh, kw, in, out)``, depthwise ``(kh, kw, in, 1)``),
then either its batch norm (``gamma``, ``beta``, ``moving_mean``, ``moving_variance``, as in a checkpoint)
or, folded into the convolution (as in a ``.tflite``), ``biases``. ``logits/semantic`` has ``biases`` and no
batch norm.

Covered: MobileNetV2 (``MobilenetV2/...``, any depth multiplier, slim's channel rule) and MobileNet-EdgeTPU
(``MobilenetEdgeTPU/...``, any depth multiplier) with the mobile head (``aspp0`` + ``image_pooling``, any width)
or ASPP, and Xception-65 (``xception_65/...``) with ASPP and the decoder, as in the DeepLab model zoo.
DeepLab concatenates ``[image_pooling, aspp0, aspp1, ...]`` and the builder ``[aspp0, aspp1, ..., image_pooling]``:
``concat_projection``'s input channels are permuted here.
"""
from __future__ import annotations

import dataclasses

import numpy as np

from kerasseg.backend import keras
from kerasseg.models.deeplab import ASPP_FILTERS
from kerasseg.models.mobilenet_edgetpu import NAMES as EDGETPU_NAMES, convolutions as edgetpu_convolutions

BATCH_NORM = ("gamma", "beta", "moving_mean", "moving_variance")


@dataclasses.dataclass(frozen=True)
class Slot:
    """One official convolution scope and its Keras layers."""

    scope: str
    layer: str                    # the Conv2D / DepthwiseConv2D
    batch_norm: str | None        # the BatchNormalization after it (None: the convolution has a bias)
    pooling_channels: int = 0     # concat_projection: the image pooling's input channels, which TF1 puts first

    def to_keras(self, kernel: np.ndarray) -> np.ndarray:
        """A TF1-ordered kernel with its input channels in the builder's order."""
        return kernel[:, :, self._order(kernel.shape[2])] if self.pooling_channels else kernel

    def to_official(self, kernel: np.ndarray) -> np.ndarray:
        return kernel[:, :, np.argsort(self._order(kernel.shape[2]))] if self.pooling_channels else kernel

    def _order(self, channels: int) -> np.ndarray:
        # builder block k (aspp0, aspp1.., then image pooling) <- TF1 block k + 1, the last <- TF1 block 0
        return np.roll(np.arange(channels), -self.pooling_channels)


def _conv(scope: str, layer: str, bn_suffix: str = "_BN") -> Slot:
    return Slot(scope, layer, layer + bn_suffix)


def mobilenetv2_slots() -> list[Slot]:
    """``MobilenetV2/...`` -> the builder's keras.applications names (Conv1, expanded_conv_*, block_N_*)."""
    slots = [Slot("MobilenetV2/Conv", "Conv1", "bn_Conv1"),
             _conv("MobilenetV2/expanded_conv/depthwise", "expanded_conv_depthwise"),
             _conv("MobilenetV2/expanded_conv/project", "expanded_conv_project")]
    for block in range(1, 17):
        for part in ("expand", "depthwise", "project"):
            slots.append(_conv(f"MobilenetV2/expanded_conv_{block}/{part}", f"block_{block}_{part}"))
    return slots


def mobilenet_edgetpu_slots(*, alpha: float) -> list[Slot]:
    """``MobilenetEdgeTPU/...`` -> the builder's layers, which carry slim's names below that root."""
    return [Slot(f"MobilenetEdgeTPU/{name}", name, name + EDGETPU_NAMES.batch_norm)
            for name in edgetpu_convolutions(alpha=alpha)]


def _separable(official: str, keras_name: str) -> list[Slot]:
    return [_conv(official + "_depthwise", keras_name + "_depthwise"),
            _conv(official + "_pointwise", keras_name + "_pointwise")]


def xception65_slots() -> list[Slot]:
    """``xception_65/...`` -> the builder's entry_flow_*, middle_flow_unit*, exit_flow_* names."""
    slots = [_conv("xception_65/entry_flow/conv1_1", "entry_flow_conv1_1"),
             _conv("xception_65/entry_flow/conv1_2", "entry_flow_conv1_2")]
    units = [(f"entry_flow/block{b}", f"entry_flow_block{b}", True) for b in (1, 2, 3)]
    units += [(f"middle_flow/block1/unit_{u}", f"middle_flow_unit{u}", False) for u in range(1, 17)]
    units += [("exit_flow/block1", "exit_flow_block1", True), ("exit_flow/block2", "exit_flow_block2", False)]
    for official, keras_name, shortcut in units:
        module = f"xception_65/{official}" + ("" if "unit_" in official else "/unit_1") + "/xception_module"
        for j in (1, 2, 3):
            slots += _separable(f"{module}/separable_conv{j}", f"{keras_name}_separable_conv{j}")
        if shortcut:
            slots.append(_conv(f"{module}/shortcut", f"{keras_name}_shortcut"))
    return slots


def head_slots(*, aspp: bool, decoder: bool, filters: int = ASPP_FILTERS) -> list[Slot]:
    """The DeepLab head (deeplab.py names, ``filters`` wide) and the classifier."""
    slots = [_conv("aspp0", "aspp0")]
    if aspp:
        for i in (1, 2, 3):
            slots += _separable(f"aspp{i}", f"aspp{i}")
    slots += [_conv("image_pooling", "image_pooling_conv"),
              Slot("concat_projection", "concat_projection", "concat_projection_BN", pooling_channels=filters)]
    if decoder:
        slots.append(_conv("decoder/feature_projection0", "decoder_low_level"))
        for i in (0, 1):
            slots += _separable(f"decoder/decoder_conv{i}", f"decoder_conv{i}")
    return slots + [Slot("logits/semantic", "classifier", None)]


BACKBONE_ROOTS = {"mobilenetv2": "MobilenetV2/Conv", "xception65": "xception_65/entry_flow/conv1_1",
                  "mobilenet_edgetpu": "MobilenetEdgeTPU/Conv"}


def slots_for(config: dict) -> list[Slot]:
    """Every slot of a ``model_config``; ValueError for an architecture DeepLab's releases do not have."""
    if config["arch"] != "deeplabv3plus" or config["backbone"] not in BACKBONE_ROOTS:
        raise ValueError(f"name map: DeepLab's released weights are deeplabv3plus with backbone "
                         f"{' or '.join(BACKBONE_ROOTS)}, got arch {config['arch']!r}, backbone {config['backbone']!r}")
    if config["backbone"] == "mobilenetv2" and config["decoder"]:
        raise ValueError("name map: DeepLab's MobileNetV2 decoder reads another tensor than the builder's "
                         "(expanded_conv_2's depthwise output); use decoder=False, as the model zoo's MobileNetV2 "
                         "models do")
    if config["backbone"] == "mobilenet_edgetpu" and config["decoder"]:
        raise ValueError("name map: DeepLab's MobileNet-EdgeTPU models have no decoder; use decoder=False")
    backbone = {"mobilenetv2": mobilenetv2_slots, "xception65": xception65_slots,
                "mobilenet_edgetpu": lambda: mobilenet_edgetpu_slots(alpha=config["alpha"])}[config["backbone"]]()
    return backbone + head_slots(aspp=config["aspp"], decoder=config["decoder"], filters=config["head_filters"])


@dataclasses.dataclass
class Official:
    """Weights under official names: scope -> {"weights", "biases" | batch-norm names: array}."""

    tensors: dict
    folded: bool  # True: batch norm folded into each convolution (``biases``), as in a released .tflite
    source: str

    def scopes(self) -> set[str]:
        return set(self.tensors)


class NameMapError(ValueError):
    """Official weights that do not fit the model: the message names the first tensor and the shapes."""


def _kernel_shape(layer) -> tuple:
    kernel = layer.depthwise_kernel if isinstance(layer, keras.layers.DepthwiseConv2D) else layer.kernel
    return tuple(kernel.shape)


def _check(official: Official, slot: Slot, name: str, expected: tuple) -> np.ndarray:
    values = official.tensors.get(slot.scope, {})
    if name not in values:
        raise NameMapError(f"{official.source}: missing tensor {slot.scope}/{name} (expected shape {expected}) "
                           f"for layer {slot.layer!r}")
    array = np.asarray(values[name], np.float32)
    if tuple(array.shape) != tuple(expected):
        raise NameMapError(f"{official.source}: tensor {slot.scope}/{name} does not match layer {slot.layer!r}: "
                           f"expected shape {tuple(expected)}, found {tuple(array.shape)}")
    return array


def assign(model, official: Official, slots: list[Slot]) -> list[str]:
    """Put ``official`` into ``model``'s layers; returns the Keras layer names filled.

    Raises :class:`NameMapError` naming the first tensor that is missing or has another shape. Folded batch
    norm goes in as the convolution's kernel and a batch norm that adds the bias: gamma 1, beta the bias,
    moving mean 0, moving variance 1 - epsilon (see ``kerasseg.models.importing`` for why).
    """
    filled = []
    for slot in slots:
        layer = model.get_layer(slot.layer)
        kernel = slot.to_keras(_check(official, slot, "weights", _kernel_shape(layer)))
        channels = kernel.shape[-1] if not isinstance(layer, keras.layers.DepthwiseConv2D) else kernel.shape[2]
        if slot.batch_norm is None:
            layer.set_weights([kernel, _check(official, slot, "biases", (channels,))])
            filled.append(slot.layer)
            continue
        bn = model.get_layer(slot.batch_norm)
        if official.folded:
            bias = _check(official, slot, "biases", (channels,))
            stats = [np.ones_like(bias), bias, np.zeros_like(bias), np.full_like(bias, 1.0 - bn.epsilon)]
        else:
            stats = [_check(official, slot, name, (channels,)) for name in BATCH_NORM]
        layer.set_weights([kernel])
        bn.set_weights(stats)
        filled += [slot.layer, slot.batch_norm]
    return filled


def official_weights(model, slots: list[Slot]) -> dict:
    """The inverse of :func:`assign` for unfolded batch norm: ``{"scope/name": array}`` of ``model``'s weights."""
    out = {}
    for slot in slots:
        layer = model.get_layer(slot.layer)
        weights = layer.get_weights()
        out[f"{slot.scope}/weights"] = slot.to_official(weights[0])
        if slot.batch_norm is None:
            out[f"{slot.scope}/biases"] = weights[1]
            continue
        for name, value in zip(BATCH_NORM, model.get_layer(slot.batch_norm).get_weights()):
            out[f"{slot.scope}/BatchNorm/{name}"] = value
    return out
