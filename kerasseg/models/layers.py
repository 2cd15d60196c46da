"""The few custom layers kerasseg models use, and the bilinear initializer.

Each layer is one small tensor operation so that it quantizes and converts
plainly; ``get_config`` returns exactly the constructor arguments.

- ``Normalize``: raw RGB pixels -> the backbone's input scale (reverse + a 1x1 depthwise convolution).
- ``ResizeToReference``: resize ``x`` to the spatial size of ``reference``
  (one ``ResizeBilinear`` / ``ResizeNearestNeighbor`` op, in one of ``RESIZE_ALIGNMENTS``).
- ``CropToReference``: keep the top-left ``reference``-sized window of ``x``
  (one ``StridedSlice``), as FCN crops its upsampled scores.
- ``BilinearUpsampling``: an initializer for ``Conv2DTranspose`` kernels.
"""
from __future__ import annotations

import numpy as np

from edge.artifact.spec import RESIZE_ALIGNMENTS, Alignment
from kerasseg.backend import keras, tf

CHANNEL_ORDERS = ("rgb", "bgr")
INTERPOLATIONS = ("bilinear", "nearest")
# Where a resize puts the pixel centres (edge.artifact's Alignment, so a spec carries it as it is):
#   half_pixel     TF2 and OpenCV (half_pixel_centers=True), the default
#   legacy         TF1 without half-pixel centres (align_corners=False): the form the Edge TPU compiler maps
#   align_corners  TF1's align_corners=True: corner pixels coincide (DeepLab's released graphs and checkpoints)

_register = keras.saving.register_keras_serializable(package="kerasseg")


def _static_spatial_shape(x, reference):
    """(batch, H_ref, W_ref, C_x) with whatever is statically known."""
    return tf.TensorShape([x.shape[0], reference.shape[1], reference.shape[2], x.shape[-1]])


@_register
class Normalize(keras.layers.Layer):
    """``(pixel - mean) / std`` per RGB channel, then reverse to BGR if asked.

    ``mean`` and ``std`` are given in RGB order, in pixel units (0..255).
    The input may be uint8 or float; the output has the layer's compute dtype.
    The multiply-add is a 1x1 depthwise convolution with a bias: in an int8 ``.tflite`` it is one
    DEPTHWISE_CONV_2D, where MUL + ADD over the full-size input cost about as much
    as the rest of a DeepLab MobileNetV2 depth 0.5 at 513x513 (benchmarks/bench_released.py).
    """

    def __init__(self, *, mean, std, channel_order="rgb", **kwargs):
        super().__init__(**kwargs)
        mean, std = tuple(float(v) for v in mean), tuple(float(v) for v in std)
        if len(mean) != 3 or len(std) != 3:
            raise ValueError(f"Normalize: mean and std need 3 values each, got mean={mean} std={std}")
        if min(std) <= 0:
            raise ValueError(f"Normalize: std must be positive, got {std}")
        if channel_order not in CHANNEL_ORDERS:
            raise ValueError(f"Normalize: channel_order must be one of {CHANNEL_ORDERS}, got {channel_order!r}")
        self.mean, self.std, self.channel_order = mean, std, channel_order
        scale = np.array([1.0 / s for s in std], np.float32)
        offset = np.array([-m / s for m, s in zip(mean, std)], np.float32)
        if channel_order == "bgr":  # reverse first, so the constants are reversed too
            scale, offset = scale[::-1].copy(), offset[::-1].copy()
        self._scale, self._offset = scale, offset

    def call(self, inputs):
        x = tf.cast(inputs, self.compute_dtype)
        if self.channel_order == "bgr":
            x = tf.reverse(x, axis=[-1])
        scale = tf.constant(self._scale.reshape(1, 1, 3, 1), self.compute_dtype)
        return tf.nn.bias_add(tf.nn.depthwise_conv2d(x, scale, strides=[1, 1, 1, 1], padding="VALID"),
                              tf.constant(self._offset, self.compute_dtype))

    def compute_output_shape(self, input_shape):
        return tf.TensorShape(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update(mean=list(self.mean), std=list(self.std), channel_order=self.channel_order)
        return config


def resize_alignment(*, edgetpu_friendly: bool = False, align_corners: bool = False) -> Alignment:
    """The alignment of a head's resizes from its model options (one of ``RESIZE_ALIGNMENTS``).

    ``align_corners`` wins: the Edge TPU compiler maps TF1's ``align_corners=True`` resizes too.
    """
    if align_corners:
        return Alignment.ALIGN_CORNERS
    return Alignment.LEGACY if edgetpu_friendly else Alignment.HALF_PIXEL


@_register
class ResizeToReference(keras.layers.Layer):
    """Resize ``x`` to the height and width of ``reference``: ``layer([x, reference])``.

    ``half_pixel_centers=False`` gives the legacy TF1 alignment (no half-pixel offset), the form the
    Edge TPU compiler maps; ``align_corners=True`` (with ``half_pixel_centers=False``) gives TF1's
    corner-aligned resize. ``alignment`` names the result (one of ``RESIZE_ALIGNMENTS``).
    """

    def __init__(self, *, interpolation="bilinear", half_pixel_centers=True, align_corners=False, **kwargs):
        super().__init__(**kwargs)
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"ResizeToReference: interpolation must be one of {INTERPOLATIONS}, "
                             f"got {interpolation!r}")
        if half_pixel_centers and align_corners:
            raise ValueError("ResizeToReference: align_corners=True needs half_pixel_centers=False "
                             "(TensorFlow's resize takes one or the other)")
        self.interpolation = interpolation
        self.half_pixel_centers = bool(half_pixel_centers)
        self.align_corners = bool(align_corners)

    @classmethod
    def aligned(cls, alignment: Alignment | str, **kwargs) -> "ResizeToReference":
        """A resize with the named alignment (one of ``RESIZE_ALIGNMENTS``)."""
        if alignment not in RESIZE_ALIGNMENTS:
            raise ValueError(f"ResizeToReference: alignment must be one of {[str(a) for a in RESIZE_ALIGNMENTS]}, "
                             f"got {alignment!r}")
        return cls(**Alignment.parse(alignment).resize_flags(), **kwargs)

    @property
    def alignment(self) -> Alignment:
        return Alignment.of_resize(align_corners=self.align_corners, half_pixel_centers=self.half_pixel_centers)

    def call(self, inputs):
        x, reference = inputs
        size = tf.shape(reference)[1:3]
        op = tf.raw_ops.ResizeBilinear if self.interpolation == "bilinear" else tf.raw_ops.ResizeNearestNeighbor
        out = op(images=x, size=size, align_corners=self.align_corners, half_pixel_centers=self.half_pixel_centers)
        out = tf.cast(out, self.compute_dtype)
        out.set_shape(_static_spatial_shape(x, reference))
        return out

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = (tf.TensorShape(s) for s in input_shape)
        return tf.TensorShape([x_shape[0], ref_shape[1], ref_shape[2], x_shape[-1]])

    def get_config(self):
        config = super().get_config()
        config.update(interpolation=self.interpolation, half_pixel_centers=self.half_pixel_centers,
                      align_corners=self.align_corners)
        return config


@_register
class CropToReference(keras.layers.Layer):
    """Keep the top-left window of ``x`` with ``reference``'s height and width: ``layer([x, reference])``.

    ``x`` must be at least as large as ``reference``.
    """

    def call(self, inputs):
        x, reference = inputs
        size = tf.shape(reference)
        out = x[:, : size[1], : size[2], :]
        out.set_shape(_static_spatial_shape(x, reference))
        return out

    def compute_output_shape(self, input_shape):
        x_shape, ref_shape = (tf.TensorShape(s) for s in input_shape)
        return tf.TensorShape([x_shape[0], ref_shape[1], ref_shape[2], x_shape[-1]])


def bilinear_kernel(size: int, channels: int) -> np.ndarray:
    """A ``(size, size, channels, channels)`` kernel that upsamples each channel bilinearly.

    With ``size = 2 * factor``, stride ``factor`` and ``padding="same"``, a
    ``Conv2DTranspose`` with this kernel places input pixel ``i`` at output
    coordinate ``(i + 0.5) * factor - 0.5`` (half-pixel centres).
    """
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    taps = 1.0 - np.abs(np.arange(size) - center) / factor
    kernel_2d = np.outer(taps, taps).astype(np.float32)
    kernel = np.zeros((size, size, channels, channels), np.float32)
    for c in range(channels):
        kernel[:, :, c, c] = kernel_2d
    return kernel


@_register
class BilinearUpsampling(keras.initializers.Initializer):
    """Initializer for a square ``Conv2DTranspose`` kernel with equal input and output channels."""

    def __call__(self, shape, dtype=None, **kwargs):
        kh, kw, out_c, in_c = shape
        if kh != kw or out_c != in_c:
            raise ValueError(f"BilinearUpsampling: needs a square kernel with equal in/out channels, got {shape}")
        return tf.constant(bilinear_kernel(int(kh), int(in_c)), dtype=dtype or tf.float32)

    def get_config(self):
        return {}


CUSTOM_OBJECTS = {
    "Normalize": Normalize,
    "ResizeToReference": ResizeToReference,
    "CropToReference": CropToReference,
    "BilinearUpsampling": BilinearUpsampling,
}
