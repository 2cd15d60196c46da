"""Parameter and multiply-add counts, from each layer's static shapes.

Counted: Conv2D, DepthwiseConv2D, SeparableConv2D, Conv2DTranspose and Dense
(one multiply-add per kernel tap per output value; a transposed convolution
scatters each input value over its kernel). Biases, batch norm, activations
(MobileNetV3's h-swish and h-sigmoid included), element-wise products (its
squeeze-excite and LR-ASPP gates), pooling and resizes are not counted (batch norm
folds into the convolution), as torchvision and the DeepLab model zoo count.
"""
from __future__ import annotations

import numpy as np

from kerasseg.backend import keras


def _hw(shape):
    return int(np.prod(shape[1:-1]))


def layer_macs(layer) -> int:
    """Multiply-adds of one call of ``layer`` for one image, from its static input and output shapes."""
    if not isinstance(layer, (keras.layers.Conv2D, keras.layers.DepthwiseConv2D, keras.layers.SeparableConv2D,
                              keras.layers.Conv2DTranspose, keras.layers.Dense)):
        return 0
    in_shape, out_shape = layer.input_shape, layer.output_shape
    if None in in_shape[1:] or None in out_shape[1:]:
        raise ValueError(f"count_params_and_macs: layer {layer.name!r} has a dynamic shape {out_shape}")
    in_c, out_c = in_shape[-1], out_shape[-1]
    if isinstance(layer, keras.layers.Dense):
        return _hw(in_shape) * in_c * out_c if len(in_shape) > 2 else in_c * out_c
    taps = int(np.prod(layer.kernel_size))
    if isinstance(layer, keras.layers.Conv2DTranspose):
        return _hw(in_shape) * in_c * taps * out_c
    if isinstance(layer, keras.layers.DepthwiseConv2D):
        return _hw(out_shape) * out_c * taps
    if isinstance(layer, keras.layers.SeparableConv2D):
        mid_c = in_c * layer.depth_multiplier
        return _hw(out_shape) * (mid_c * taps + mid_c * out_c)
    return _hw(out_shape) * out_c * taps * in_c // layer.groups


def _all_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        else:
            yield layer


def count_params_and_macs(model, *, input_shape) -> tuple[int, int]:
    """``(parameters, multiply-adds per image)`` of ``model`` at ``input_shape`` = (H, W, C).

    A model with a different or dynamic input size is cloned onto ``input_shape``
    (fresh weights, same layers) to read the shapes; the parameters are counted on ``model``.
    """
    input_shape = tuple(int(v) for v in input_shape)
    if len(input_shape) != 3:
        raise ValueError(f"input_shape: expected (height, width, channels), got {input_shape!r}")
    static = model
    if tuple(model.input_shape[1:]) != input_shape:
        static = keras.models.clone_model(model, input_tensors=keras.Input(shape=input_shape,
                                                                           name=model.input_names[0]))
    return int(model.count_params()), int(sum(layer_macs(layer) for layer in _all_layers(static)))
