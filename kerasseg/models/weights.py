"""Backbone weights: keras.applications ImageNet files, or any HDF5 weights file, loaded by layer name."""
from __future__ import annotations

import os

import h5py
import numpy as np

from kerasseg.backend import keras

_KERAS_APPS = "https://storage.googleapis.com/tensorflow/keras-applications/"
# keras.applications' no-top MobileNetV3 files: md5 by (size, minimalistic, alpha).
_MOBILENETV3_MD5 = {
    ("large", False, 0.75): "40af19a13ebea4e2ee0c676887f69a2e",
    ("large", False, 1.0): "07fb09a5933dd0c8eaafa16978110389",
    ("large", True, 1.0): "ec5221f64a2f6d1ef965a614bdae7973",
    ("small", False, 0.75): "ebdb5cc8e0b497cd13a7c275d475c819",
    ("small", False, 1.0): "d3e8ec802a04aa4fc771ee12a9a9b836",
    ("small", True, 1.0): "cde8136e733e811080d9fcd8a252f7e4",
}


def imagenet_weights_url(backbone: str, *, alpha: float | None = None,
                         minimalistic: bool = False) -> tuple[str, str, str | None]:
    """``(file_name, url, md5)`` of keras.applications' ImageNet weights for ``backbone`` (no top except VGG16)."""
    if backbone in ("mobilenetv3_large", "mobilenetv3_small"):
        return _mobilenetv3_weights_url(backbone, alpha=float(alpha), minimalistic=minimalistic)
    if backbone == "mobilenetv2":
        name = f"mobilenet_v2_weights_tf_dim_ordering_tf_kernels_{float(alpha)}_224_no_top.h5"
        return name, _KERAS_APPS + "mobilenet_v2/" + name, None
    if backbone == "vgg16":  # with the top: FCN turns fc1/fc2 into fc6/fc7
        name = "vgg16_weights_tf_dim_ordering_tf_kernels.h5"
        return name, _KERAS_APPS + "vgg16/" + name, "64373286793e3c8b2b4e3219cbf3544b"
    if backbone in ("resnet50", "resnet101"):
        md5 = {"resnet50": "4d473c1dd8becc155b73f8504c6f6626", "resnet101": "88cf7a10940856eca736dc7b7e228a21"}
        name = f"{backbone}_weights_tf_dim_ordering_tf_kernels_notop.h5"
        return name, _KERAS_APPS + "resnet/" + name, md5[backbone]
    raise ValueError(f"backbone_weights='imagenet': keras.applications has no ImageNet weights for backbone "
                     f"{backbone!r} (available for mobilenetv2, mobilenetv3_large, mobilenetv3_small, vgg16, "
                     f"resnet50, resnet101); pass a path to an HDF5 weights file instead")


def _mobilenetv3_weights_url(backbone: str, *, alpha: float, minimalistic: bool) -> tuple[str, str, str]:
    size = backbone.rsplit("_", 1)[1]
    md5 = _MOBILENETV3_MD5.get((size, bool(minimalistic), alpha))
    if md5 is None:
        widths = sorted({a for (s, m, a) in _MOBILENETV3_MD5 if s == size and m == bool(minimalistic)})
        raise ValueError(f"backbone_weights='imagenet': keras.applications has {backbone} "
                         f"(minimalistic={bool(minimalistic)}) ImageNet weights for alpha {widths}, not {alpha}; "
                         f"pass a path to an HDF5 weights file instead")
    name = f"weights_mobilenet_v3_{size}{'_minimalistic' if minimalistic else ''}_224_{alpha}_float_no_top_v2.h5"
    return name, _KERAS_APPS + "mobilenet_v3/" + name, md5


def download_imagenet_weights(backbone: str, *, alpha: float | None = None, minimalistic: bool = False) -> str:
    """Fetch (or reuse from ~/.keras/models) the ImageNet weights file; a clear error when offline."""
    name, url, md5 = imagenet_weights_url(backbone, alpha=alpha, minimalistic=minimalistic)
    try:
        return keras.utils.get_file(name, url, cache_subdir="models", file_hash=md5)
    except Exception as err:  # get_file wraps network failures in a bare Exception
        raise RuntimeError(
            f"backbone_weights='imagenet': could not download {url} ({err}). Without network access, "
            f"copy {name} into ~/.keras/models/ or pass backbone_weights=<path to the .h5 file>") from None


def hdf5_layer_names(path: str) -> set[str]:
    """Layer names in a Keras HDF5 file written by ``save_weights`` or ``save`` (h5 format)."""
    if not os.path.isfile(path):
        raise ValueError(f"backbone_weights: no file at {path!r}")
    if not h5py.is_hdf5(path):
        raise ValueError(f"backbone_weights: {path!r} is not an HDF5 weights file; save one with "
                         f"model.save_weights('weights.h5')")
    with h5py.File(path, "r") as f:
        group = f["model_weights"] if "model_weights" in f else f
        names = group.attrs.get("layer_names")
        if names is None:
            raise ValueError(f"backbone_weights: {path!r} has no Keras layer_names attribute")
        return {n.decode("utf8") if isinstance(n, bytes) else str(n) for n in names}


def load_weights_by_name(model, path: str, *, layer_names: list[str]) -> None:
    """Load ``layer_names`` of ``model`` from the HDF5 file ``path``; every one must be in the file.

    Other layers of the model keep their values; extra layers in the file are ignored.
    """
    available = hdf5_layer_names(path)
    missing = [n for n in layer_names if n not in available]
    if missing:
        raise ValueError(f"backbone_weights: {path!r} lacks {len(missing)} of the backbone's "
                         f"{len(layer_names)} layers, e.g. {missing[:5]}")
    try:
        model.load_weights(path, by_name=True)
    except ValueError as err:
        raise ValueError(f"backbone_weights: {path!r} does not fit the backbone: {err}") from None


def _hdf5_layer_weights(path: str, layer_name: str) -> list[np.ndarray]:
    with h5py.File(path, "r") as f:
        group = (f["model_weights"] if "model_weights" in f else f)[layer_name]
        return [np.asarray(group[name]) for name in group.attrs["weight_names"]]


def fully_connected_as_convolution(kernel: np.ndarray, bias: np.ndarray, *, kernel_size: int, channels: int):
    """Dense weights over a flattened (k, k, C) map -> the equivalent k x k convolution's weights."""
    if kernel.shape[0] != kernel_size * kernel_size * channels:
        raise ValueError(f"fully_connected_as_convolution: kernel of shape {kernel.shape} does not take a "
                         f"flattened {kernel_size}x{kernel_size}x{channels} input")
    return [kernel.reshape(kernel_size, kernel_size, channels, kernel.shape[1]), bias]


def load_vgg16_classifier_as_fcn(model, path: str) -> bool:
    """Copy VGG16's fc1/fc2 (Dense) from ``path`` into FCN's fc6/fc7 (convolutions), as the FCN paper does.

    Returns False (and changes nothing) when the file has no fc1/fc2, e.g. a no-top file.
    """
    if not {"fc1", "fc2"} <= hdf5_layer_names(path):
        return False
    for dense, conv, size, channels in (("fc1", "fc6", 7, 512), ("fc2", "fc7", 1, 4096)):
        kernel, bias = _hdf5_layer_weights(path, dense)
        try:
            model.get_layer(conv).set_weights(
                fully_connected_as_convolution(kernel, bias, kernel_size=size, channels=channels))
        except ValueError as err:
            raise ValueError(f"backbone_weights: {dense} in {path!r} does not fit {conv}: {err}") from None
    return True
