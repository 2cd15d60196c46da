"""Quantization-aware fine-tuning with tensorflow-model-optimization.

tfmot's default 8-bit scheme knows the standard convolution, pooling,
concatenation and add layers, and folds batch normalisation into the
convolution before it. Segmentation models also normalise pixels, resize
feature maps to a reference tensor and crop; tfmot has no configuration for
those and refuses the model. :func:`quantize_config_for` gives each such layer
one: layers that compute new values (normalise, resize, rescale) get their
output quantized, exactly as TFLite will run them in int8; layers that only
move values (crops, reshapes) pass their already quantized input through.
MobileNetV3's h-swish and h-sigmoid run as several int8 ops (ADD + RELU6, MUL):
each intermediate tensor int8 keeps gets a range of its own (``DECOMPOSED``). Any
other layer tfmot cannot handle is an error naming it: nothing is left float
silently.

tfmot starts every activation range at [-6, 6] and moves it by a moving average with
decay 0.999, so a few hundred fine-tuning steps leave the ranges near [-6, 6]: harmless
after ReLU6 (MobileNetV2), but it clips MobileNetV3's h-swish activations and wastes
most of the levels of its [0, 1] gates. ``fine_tune`` therefore first sets the ranges
(those inside h-swish and h-sigmoid too) from ``RANGE_WARMUP_BATCHES`` training batches
(:func:`warm_up_ranges`).

Kernels above ``PER_TENSOR_ABOVE`` weights (FCN's fc6 and fc7) get one weight
range per tensor rather than per output channel, which the TFLite converter can
fold. The model's input is quantized with a fixed [0, 255] range, so the converted
model's uint8 input has scale 1 and zero point 0 and a device feeds raw pixels.
"""
from __future__ import annotations

import contextlib

import numpy as np
import tensorflow_model_optimization as tfmot

from kerasseg.backend import keras, tf

_quantizers = tfmot.quantization.keras.quantizers
from tensorflow_model_optimization.python.core.quantization.keras import quant_ops as _quant_ops  # noqa: E402
from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (  # noqa: E402
    default_8bit_quantize_registry as _registry_module)
from tensorflow_model_optimization.python.core.quantization.keras.graph_transformations import (  # noqa: E402
    model_transformer as _model_transformer)

QAT_LEARNING_RATE = 3e-5  # DeepLab's fine-tuning rate for quantization-aware training
# Kernels above this many weights get one weight range per tensor instead of per output channel: the TFLite
# converter leaves the per-channel fake-quant of huge kernels (FCN's fc6, 7x7x512x4096) unfolded and fails.
PER_TENSOR_ABOVE = 8_000_000
# Range warm-up: batches run in training mode with a moving-average decay of RANGE_WARMUP_DECAY instead of 0.999, so
# the ranges end at the data's (the initial [-6, 6] keeps a weight of 0.5 ** 8 = 0.4%).
RANGE_WARMUP_BATCHES = 8
RANGE_WARMUP_DECAY = 0.5


class OutputQuantizeConfig(tfmot.quantization.keras.QuantizeConfig):
    """Quantize a weightless layer's output to 8 bits with a moving-average range."""

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [_quantizers.MovingAverageQuantizer(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)]

    def get_config(self):
        return {}


class PassThroughQuantizeConfig(OutputQuantizeConfig):
    """A layer that only moves values (crop, reshape): its int8 input is its int8 output."""

    def get_output_quantizers(self, layer):
        return []


class _NamedRangeQuantizer(_quantizers.MovingAverageQuantizer):
    """tfmot's moving-average quantizer for an activation hook, its range variables named after the hook
    (``gate_min``, ``product_max``; tfmot names every activation's ``post_activation_min``, which would repeat
    within a layer)."""

    def __init__(self, hook: str):
        super().__init__(num_bits=8, per_axis=False, symmetric=False, narrow_range=False)
        self.name = hook.removesuffix("_activation")

    def build(self, tensor_shape, name, layer):
        return super().build(tensor_shape, self.name, layer)


class DecomposedQuantizeConfig(OutputQuantizeConfig):
    """An activation TFLite runs as several int8 ops (h-swish, h-sigmoid): each identity hook its call applies
    to an intermediate int8 tensor (the layer's ``INT8_TENSORS``) is quantized there, as tfmot quantizes a
    layer's activation: over the range the function fixes, else a moving-average range of its own. The output
    gets a range too when ``output``."""

    def __init__(self, output=True):
        self.output = bool(output)

    def get_activations_and_quantizers(self, layer):
        return [(getattr(layer, hook), FixedRangeQuantizer(*known) if known else _NamedRangeQuantizer(hook))
                for hook, known in layer.INT8_TENSORS.items()]

    def set_quantize_activations(self, layer, quantize_activations):
        for hook, activation in zip(layer.INT8_TENSORS, quantize_activations):
            setattr(layer, hook, activation)

    def get_output_quantizers(self, layer):
        return super().get_output_quantizers(layer) if self.output else []

    def get_config(self):
        return {"output": self.output}


class FixedRangeQuantizer(_quantizers.Quantizer):
    """Fake-quantize to 8 bits over a fixed range (the model input's [0, 255], h-swish's gate [0, 6])."""

    def __init__(self, minimum: float = 0.0, maximum: float = 255.0):
        self.minimum = float(minimum)
        self.maximum = float(maximum)

    def build(self, tensor_shape, name, layer):
        return {}

    def __call__(self, inputs, training, weights, **kwargs):
        return tf.quantization.fake_quant_with_min_max_args(inputs, min=self.minimum, max=self.maximum, num_bits=8)

    def get_config(self):
        return {"minimum": self.minimum, "maximum": self.maximum}

    def __eq__(self, other):
        return isinstance(other, FixedRangeQuantizer) and self.get_config() == other.get_config()

    def __ne__(self, other):
        return not self == other


# Layers tfmot has no configuration for, by class name: what QAT does with each.
OUTPUT_QUANTIZED = (
    "Rescaling",          # keras preprocessing; TFLite runs it as MUL + ADD in int8
    "Normalization",      # keras preprocessing
    "Resizing",           # keras preprocessing resize
    "Normalize",          # kerasseg.models.layers: (pixel - mean) / std inside the graph
    "PixelNormalization",
    "ResizeLike",         # kerasseg.models.layers: resize to a reference tensor's size
    "ResizeToReference",
    "ResizeTo",
    "ImagePooling",
    "Multiply",           # keras: the squeeze-excite and LR-ASPP gates (MUL); tfmot's registry lacks it
)
# Activations TFLite runs as several int8 ops (kerasseg.models.blocks; their hooks and ranges are the layers'
# INT8_TENSORS): whether the output has a range of its own.
DECOMPOSED = {
    # ADD + RELU6 (the gate), MUL (the product), MUL by 1/6. The converter folds the last into the convolution
    # after it, so the int8 tensor is the product's; where it cannot (two readers), calibration sets its range.
    "HardSwish": False,
    # The squeeze-excite gate: ADD + RELU6, then MUL by 1/6 into the gate's [0, 1] output.
    "HardSigmoid": True,
}
PASS_THROUGH = (
    "CropLike",           # kerasseg.models.layers: crop to a reference tensor's size
    "CropToReference",
    "Crop",
    "Identity",
)


def quantize_config_for(layer):
    """Our QuantizeConfig for a layer tfmot does not know, or None."""
    name = type(layer).__name__
    if name in DECOMPOSED:
        return DecomposedQuantizeConfig(DECOMPOSED[name])
    if name in OUTPUT_QUANTIZED:
        return OutputQuantizeConfig()
    if name in PASS_THROUGH:
        return PassThroughQuantizeConfig()
    return None


def _large_kernel_config(layer):
    """Per-tensor weight quantization for a huge Conv2D/Dense kernel (see ``PER_TENSOR_ABOVE``), else None."""
    if type(layer) not in (keras.layers.Conv2D, keras.layers.Dense) or not layer.built:
        return None
    if int(np.prod(layer.kernel.shape)) <= PER_TENSOR_ABOVE:
        return None
    return _registry_module.Default8BitQuantizeConfig(["kernel"], ["activation"], False)


def scope():
    """The custom objects tfmot needs to rebuild and load a quantization-aware model."""
    objects = {"OutputQuantizeConfig": OutputQuantizeConfig, "PassThroughQuantizeConfig": PassThroughQuantizeConfig,
               "DecomposedQuantizeConfig": DecomposedQuantizeConfig, "FixedRangeQuantizer": FixedRangeQuantizer}
    with contextlib.suppress(ImportError):
        from kerasseg.models import custom_objects
        objects.update(custom_objects())
    return tfmot.quantization.keras.quantize_scope(objects)


def coverage(model) -> dict:
    """How QAT treats each layer of ``model``: ``{"tfmot": [...], "output": [...], "pass_through": [...],
    "unsupported": [...]}`` (layer names). ``unsupported`` must be empty for QAT to run."""
    registry = _registry_module.Default8BitQuantizeRegistry()
    groups = {"tfmot": [], "output": [], "pass_through": [], "unsupported": []}
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        config = quantize_config_for(layer)
        if isinstance(config, PassThroughQuantizeConfig):
            groups["pass_through"].append(layer.name)
        elif config is not None:
            groups["output"].append(layer.name)
        elif registry.supports(layer) or _folded_batch_norm(model, layer):
            groups["tfmot"].append(layer.name)
        else:
            groups["unsupported"].append(f"{layer.name} ({type(layer).__name__})")
    return groups


def _folded_batch_norm(model, layer) -> bool:
    """A BatchNormalization right after a convolution: tfmot folds it into that convolution."""
    if not isinstance(layer, keras.layers.BatchNormalization):
        return False
    inbound = layer._inbound_nodes[0].inbound_layers if layer._inbound_nodes else None
    return isinstance(inbound, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D))


def quantize_aware(model):
    """A quantization-aware copy of ``model`` (weights copied) covering every layer; see the module doc."""
    groups = coverage(model)
    if groups["unsupported"]:
        raise ValueError(
            f"model {model.name!r}: quantization-aware training has no configuration for layers "
            f"{groups['unsupported']}; add a QuantizeConfig in kerasseg/export/qat.py or rebuild them from "
            f"supported layers")
    annotate = tfmot.quantization.keras.quantize_annotate_layer

    large = {layer.name: _large_kernel_config(layer) for layer in model.layers}

    def clone(layer):
        config = quantize_config_for(layer) or large.get(layer.name)
        copy = layer.__class__.from_config(layer.get_config())
        if isinstance(layer, keras.layers.InputLayer):
            return copy
        return annotate(copy, quantize_config=config) if config is not None else annotate(copy)

    with scope(), _inputs_in_order():
        annotated = keras.models.clone_model(model, clone_function=clone)
        annotated.set_weights(model.get_weights())
        quantized = tfmot.quantization.keras.quantize_apply(annotated)
    _check_input_order(model, quantized)
    _fix_input_range(quantized)
    return quantized


@contextlib.contextmanager
def _inputs_in_order():
    """While inside, tfmot's ModelTransformer finds a layer's inputs in the layer's own order.

    tfmot 0.8 looks them up in the model's layer order (tensorflow/model-optimization#1179, #1061), so a
    Concatenate whose first input was built after another came out of ``quantize_apply`` with its inputs
    reordered: DeepLab's ``[aspp0, ..., image pooling]`` became ``[image pooling, aspp0, ...]``, and the
    quantization-aware copy computed something else than the model it copied.
    """
    transformer = _model_transformer.ModelTransformer
    original = transformer._get_layers

    def get_layers(self, layer_names):
        by_name = {layer["config"]["name"]: layer for layer in self._config["layers"]}
        return [by_name[name] for name in layer_names if name in by_name]

    transformer._get_layers = get_layers
    try:
        yield
    finally:
        transformer._get_layers = original


def _inbound_names(layer, prefix: str = "") -> list[str]:
    inbound = layer._inbound_nodes[0].inbound_layers if layer._inbound_nodes else []
    names = [other.name for other in (inbound if isinstance(inbound, list) else [inbound])]
    return [name[len(prefix):] if name.startswith(prefix) else name for name in names]


def _check_input_order(model, quantized) -> None:
    """Every layer with several inputs takes them in the same order in the quantization-aware copy (inputs that
    tfmot replaced, such as the image by its quantizer, aside)."""
    copies = {layer.name: layer for layer in quantized.layers}
    for layer in model.layers:
        copy, names = copies.get("quant_" + layer.name), _inbound_names(layer)
        if copy is None or len(names) < 2:
            continue
        copied = _inbound_names(copy, "quant_")
        if [n for n in copied if n in names] != [n for n in names if n in copied]:
            raise RuntimeError(f"qat: tfmot reordered the inputs of layer {layer.name!r}: {names} became {copied}")


def _fix_input_range(model) -> None:
    """Pin the input quantizer's range to [0, 255]: raw pixels map to uint8 with scale 1, zero point 0."""
    input_quantizers = [layer for layer in model.layers
                        if type(layer).__name__ == "QuantizeLayer"
                        and isinstance(layer._inbound_nodes[0].inbound_layers, keras.layers.InputLayer)]
    if not input_quantizers:
        raise ValueError(f"model {model.name!r}: tfmot added no quantizer after the input")
    for layer in input_quantizers:
        for weight in layer.weights:
            if weight.name.endswith("_min:0") or weight.name.endswith("min:0"):
                weight.assign(0.0)
            elif weight.name.endswith("_max:0") or weight.name.endswith("max:0"):
                weight.assign(255.0)


def _is_range(variable) -> bool:
    return variable.name.endswith(("_min:0", "_max:0"))


@contextlib.contextmanager
def _moving_average_decay(decay: float):
    """tfmot's MovingAverageQuantizer updates its ranges with ``decay`` instead of its fixed 0.999, while inside."""
    original = _quantizers.MovingAverageQuantizer.__call__

    def call(self, inputs, training, weights, **kwargs):
        return _quant_ops.MovingAvgQuantize(inputs, weights["min_var"], weights["max_var"], ema_decay=decay,
                                            is_training=training, num_bits=self.num_bits, per_channel=self.per_axis,
                                            symmetric=self.symmetric, narrow_range=self.narrow_range)

    _quantizers.MovingAverageQuantizer.__call__ = call
    try:
        yield
    finally:
        _quantizers.MovingAverageQuantizer.__call__ = original


def warm_up_ranges(model, batches, *, steps: int = RANGE_WARMUP_BATCHES) -> int:
    """Set the activation ranges of the quantization-aware ``model`` from ``steps`` batches of (image, mask).

    Only the ranges change: every other variable (batch-norm statistics included) is restored, and the
    input range stays [0, 255]. Returns the number of batches run (0 for a model without ranges).
    """
    if not any(_is_range(v) for v in model.variables):
        return 0
    kept = [(v, v.numpy()) for v in model.variables if not _is_range(v)]
    seen = 0
    with _moving_average_decay(RANGE_WARMUP_DECAY):
        for images, _ in batches:
            model(images, training=True)
            seen += 1
            if seen >= steps:
                break
    for variable, value in kept:
        variable.assign(value)
    _fix_input_range(model)
    return seen


def fine_tune(model, batches, *, steps: int, learning_rate: float = QAT_LEARNING_RATE, ignore_label: int = 255):
    """Warm up the ranges of the quantization-aware ``model`` (see :func:`warm_up_ranges`), then train it for
    ``steps`` batches of (image, mask); returns the final loss."""
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"qat_steps: expected a positive int, got {steps!r}")
    warm_up_ranges(model, batches)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=ignore_label)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    model.optimizer.build(model.trainable_variables)  # slots made now: fit's first step would trace twice to make them
    history = model.fit(batches, steps_per_epoch=steps, epochs=1, verbose=0)
    losses = history.history.get("loss")
    if not losses:
        raise ValueError("qat: the training pipeline yielded no batch")
    return float(losses[-1])
