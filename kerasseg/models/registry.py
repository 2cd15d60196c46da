"""The model registry and ``build_model``: one validated entry point for every architecture."""
from __future__ import annotations

import argparse
import dataclasses
import numbers
import os
from typing import Callable

from kerasseg.backend import keras
from kerasseg.models.backbones import resnet50, resnet101, vgg16, xception65
from kerasseg.models.blocks import CUSTOM_OBJECTS as BLOCK_OBJECTS
from kerasseg.models.deeplab import ASPP_FILTERS, deeplab_head
from kerasseg.models.fcn import FCN_VARIANTS, fcn_head
from kerasseg.models.layers import CUSTOM_OBJECTS, Normalize
from kerasseg.models.lraspp import lraspp_head
from kerasseg.models.mobilenet_edgetpu import MOBILENET_EDGETPU_ALPHAS, mobilenet_edgetpu
from kerasseg.models.mobilenetv2 import MOBILENETV2_ALPHAS, MOBILENETV2_CHANNEL_ROUNDINGS, mobilenetv2
from kerasseg.models.mobilenetv3 import MOBILENETV3_ALPHAS, mobilenetv3_large, mobilenetv3_small
from kerasseg.models.weights import (download_imagenet_weights, hdf5_layer_names, load_vgg16_classifier_as_fcn,
                                      load_weights_by_name)

CAFFE_MEAN_RGB = (123.68, 116.779, 103.939)  # keras.applications "caffe" mode, RGB order


@dataclasses.dataclass(frozen=True)
class Backbone:
    """A backbone builder with its normalisation and ImageNet weight files."""

    name: str
    build: Callable
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    channel_order: str
    output_strides: tuple[int, ...]
    paper: str


BACKBONES: dict[str, Backbone] = {
    "vgg16": Backbone("vgg16", vgg16, CAFFE_MEAN_RGB, (1.0, 1.0, 1.0), "bgr", (32,),
                      "https://arxiv.org/abs/1409.1556"),
    "mobilenetv2": Backbone("mobilenetv2", mobilenetv2, (127.5,) * 3, (127.5,) * 3, "rgb", (8, 16, 32),
                            "https://arxiv.org/abs/1801.04381"),
    "mobilenetv3_large": Backbone("mobilenetv3_large", mobilenetv3_large, (127.5,) * 3, (127.5,) * 3, "rgb",
                                  (8, 16, 32), "https://arxiv.org/abs/1905.02244"),
    "mobilenetv3_small": Backbone("mobilenetv3_small", mobilenetv3_small, (127.5,) * 3, (127.5,) * 3, "rgb",
                                  (8, 16, 32), "https://arxiv.org/abs/1905.02244"),
    "mobilenet_edgetpu": Backbone("mobilenet_edgetpu", mobilenet_edgetpu, (127.5,) * 3, (127.5,) * 3, "rgb",
                                  (8, 16, 32), "https://arxiv.org/abs/2003.02838"),
    "xception65": Backbone("xception65", xception65, (127.5,) * 3, (127.5,) * 3, "rgb", (8, 16, 32),
                           "https://arxiv.org/abs/1802.02611"),
    "resnet50": Backbone("resnet50", resnet50, CAFFE_MEAN_RGB, (1.0, 1.0, 1.0), "bgr", (8, 16, 32),
                         "https://arxiv.org/abs/1512.03385"),
    "resnet101": Backbone("resnet101", resnet101, CAFFE_MEAN_RGB, (1.0, 1.0, 1.0), "bgr", (8, 16, 32),
                          "https://arxiv.org/abs/1512.03385"),
}


@dataclasses.dataclass(frozen=True)
class Option:
    """One ``build_model`` keyword besides ``arch`` and ``num_classes``. The training config's fields, the
    rules of ``train.py --init-from`` and the flags of ``train.py`` and ``python -m kerasseg.models`` are
    derived from this table (``OPTIONS``)."""

    name: str
    type: type
    default: object            # None for backbone and output_stride: the arch's (Arch below)
    help: str
    fixed_by_weights: bool     # trained weights fix it: --init-from refuses a flag that contradicts them
    choices: tuple | None = None
    training_flag: bool = True  # False: released weights set it (python -m kerasseg import), not train.py


OPTIONS: dict[str, Option] = {option.name: option for option in (
    Option("backbone", str, None, "the feature extractor", True, tuple(sorted(BACKBONES))),
    Option("output_stride", int, None, "DeepLab and LR-ASPP: 8, 16 or 32; FCN is fixed at 32", False,
           (8, 16, 32)),
    Option("alpha", float, 1.0, f"width multiplier: MobileNetV2 one of {MOBILENETV2_ALPHAS}, MobileNetV3 one of "
                                f"{MOBILENETV3_ALPHAS}, MobileNet-EdgeTPU one of {MOBILENET_EDGETPU_ALPHAS} (0.75: "
                                f"Google's 'slim' DeepLab)", True,
           tuple(sorted(set(MOBILENETV2_ALPHAS + MOBILENETV3_ALPHAS + MOBILENET_EDGETPU_ALPHAS)))),
    Option("aspp", bool, True, "True: ASPP with 1x1, three atrous separable 3x3 and image pooling; False: 1x1 and "
                               "image pooling only", True),
    Option("decoder", bool, True, "True: DeepLabv3+ decoder on stride-4 features; False: DeepLabv3 (classifier at "
                                  "the output stride)", True),
    Option("edgetpu_friendly", bool, False, "True: every resize uses half_pixel_centers=False (what the Edge TPU "
                                            "compiler maps); dilations are equal in x and y in every model. FCN has "
                                            "no resize, so nothing changes there", False),
    Option("align_corners", bool, False, "True: every resize uses TF1's align_corners=True, as DeepLab's released "
                                         "graphs and checkpoints do (the Edge TPU compiler maps it too); wins over "
                                         "edgetpu_friendly", False, training_flag=False),
    Option("channel_rounding", str, "keras", f"MobileNetV2 channels x alpha, one of {MOBILENETV2_CHANNEL_ROUNDINGS}: "
                                             f"'keras' as keras.applications (its ImageNet weights), 'slim' as "
                                             f"DeepLab's TF-slim MobileNetV2", True, MOBILENETV2_CHANNEL_ROUNDINGS,
           training_flag=False),
    Option("minimalistic", bool, False, "MobileNetV3 without squeeze-excite and h-swish, 3x3 kernels only (the "
                                        "Edge-TPU-friendly variant)", True),
    Option("head_filters", int, ASPP_FILTERS, "DeepLab's head width: the filters of each ASPP branch, the image "
                                              "pooling and their projection (Google's MobileNet-EdgeTPU 'slim' "
                                              "DeepLab: 128)", True),
    Option("dropout", float, None, "dropout rate in [0, 1): after fc6 and fc7 (FCN), after the ASPP projection "
                                   "(DeepLab)", False),
)}


def _options(*names, **defaults) -> dict:
    """``name -> default`` for the table's options ``names``, with an arch's own ``defaults`` where it has one."""
    return {name: defaults.get(name, OPTIONS[name].default) for name in names}


# Options each backbone adds to its arch's options, with defaults.
BACKBONE_OPTIONS = {"mobilenetv2": _options("alpha", "channel_rounding"),
                    "mobilenetv3_large": _options("alpha", "minimalistic"),
                    "mobilenetv3_small": _options("alpha", "minimalistic"),
                    "mobilenet_edgetpu": _options("alpha")}
# The widths each backbone with an ``alpha`` option accepts.
ALPHAS = {"mobilenetv2": MOBILENETV2_ALPHAS, "mobilenetv3_large": MOBILENETV3_ALPHAS,
          "mobilenetv3_small": MOBILENETV3_ALPHAS, "mobilenet_edgetpu": MOBILENET_EDGETPU_ALPHAS}


def add_option_flags(parser, *, training=False, notes=None, underscores=False) -> None:
    """One ``--flag`` per option of the table (default None: not given), on an argparse parser or group.

    ``training``: only the options ``train.py`` takes. ``notes``: option name -> its default in words, where
    the table has none or the caller's differs.
    ``underscores``: also accept ``--output_stride`` for ``--output-stride`` (not for the on/off flags).
    """
    for option in OPTIONS.values():
        if training and not option.training_flag:
            continue
        flag = ["--" + option.name.replace("_", "-")]
        if underscores and "_" in option.name and option.type is not bool:
            flag.append("--" + option.name)
        default = (notes or {}).get(option.name, option.default)
        if isinstance(default, bool):
            default = "on" if default else "off"
        help_text = option.help + ("" if default is None else f" (default: {default})")
        if option.type is bool:
            parser.add_argument(*flag, dest=option.name, action=argparse.BooleanOptionalAction, default=None,
                                help=help_text)
        else:
            parser.add_argument(*flag, dest=option.name, type=option.type, choices=option.choices, default=None,
                                help=help_text)


@dataclasses.dataclass(frozen=True)
class Arch:
    """A registered architecture: its head, backbones and keyword options (name -> default)."""

    name: str
    head: Callable  # head(image, features, *, num_classes, output_stride, **options) -> logits tensor
    backbones: tuple[str, ...]
    output_strides: tuple[int, ...]
    default_output_stride: int
    options: dict
    paper: str
    description: str


def _fcn(arch):
    def head(image, features, *, num_classes, output_stride, dropout, edgetpu_friendly):
        del output_stride, edgetpu_friendly  # FCN is fixed at stride 32 and has no resize to change
        return fcn_head(image, features, arch=arch, num_classes=num_classes, dropout=dropout)
    return Arch(arch, head, ("vgg16",), (32,), 32, _options("dropout", "edgetpu_friendly", dropout=0.5),
                "https://arxiv.org/abs/1411.4038",
                f"FCN with {'/'.join(map(str, FCN_VARIANTS[arch]))}x learned-from-bilinear upsampling")


MODELS: dict[str, Arch] = {arch: _fcn(arch) for arch in FCN_VARIANTS}
MODELS["deeplabv3plus"] = Arch(
    "deeplabv3plus", deeplab_head,
    ("mobilenetv2", "xception65", "resnet50", "resnet101", "mobilenetv3_large", "mobilenetv3_small",
     "mobilenet_edgetpu"), (8, 16, 32), 16,
    _options("aspp", "decoder", "dropout", "edgetpu_friendly", "align_corners", "head_filters", dropout=0.1),
    "https://arxiv.org/abs/1802.02611",
    "DeepLabv3+ (decoder=False: DeepLabv3; aspp=False, decoder=False: the DeepLab MobileNetV2 head)")
MODELS["lraspp"] = Arch(
    "lraspp", lraspp_head, ("mobilenetv3_large", "mobilenetv3_small", "mobilenet_edgetpu"), (8, 16, 32), 16,
    _options("edgetpu_friendly"),
    "https://arxiv.org/abs/1905.02244", "Lite R-ASPP of MobileNetV3: gated 1x1 on the deepest features + stride-8 skip")

def list_models() -> list[str]:
    """Registered arch names."""
    return sorted(MODELS)


def _choice(parameter, value, choices):
    if value not in choices:
        raise ValueError(f"{parameter}: got {value!r}; valid choices are {list(choices)}")
    return value


def _check_option(name, value, backbone):
    option = OPTIONS[name]
    if option.type is bool:
        if not isinstance(value, bool):
            raise ValueError(f"{name}: expected True or False, got {value!r}")
    elif name == "dropout":
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
            raise ValueError(f"dropout: expected a rate in [0, 1), got {value!r}")
        value = float(value)
    elif name == "alpha":
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or float(value) not in ALPHAS[backbone]:
            raise ValueError(f"alpha: got {value!r}; valid choices for {backbone} are {list(ALPHAS[backbone])}")
        value = float(value)
    elif option.type is int:
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
            raise ValueError(f"{name}: expected a positive integer, got {value!r}")
        value = int(value)
    elif option.choices is not None:
        _choice(name, value, option.choices)
    return value


def model_config(*, arch, num_classes, backbone=None, output_stride=None, **options) -> dict:
    """Validate the arguments of ``build_model`` and fill in defaults.

    The result holds everything that decides the layer structure (not the input
    shape, not the initial weights); it is JSON-serialisable and
    ``build_model(**model_config(...), input_shape=...)`` rebuilds the same layers.
    """
    entry = MODELS[_choice("arch", arch, list_models())]
    if isinstance(num_classes, bool) or not isinstance(num_classes, numbers.Integral) or num_classes < 2:
        raise ValueError(f"num_classes: expected an integer >= 2, got {num_classes!r}")
    backbone = entry.backbones[0] if backbone is None else backbone
    _choice(f"backbone (for arch {arch!r})", backbone, entry.backbones)
    output_stride = entry.default_output_stride if output_stride is None else output_stride
    _choice(f"output_stride (for arch {arch!r})", output_stride, entry.output_strides)
    defaults = {**entry.options, **BACKBONE_OPTIONS.get(backbone, {})}
    for name in options:
        if name not in defaults:
            raise ValueError(f"option {name!r} does not apply to arch {arch!r} with backbone {backbone!r}; "
                             f"its options are {sorted(defaults)}")
    resolved = {name: _check_option(name, options.get(name, default), backbone) for name, default in defaults.items()}
    return dict(arch=arch, num_classes=int(num_classes), backbone=backbone, output_stride=int(output_stride),
                **resolved)


def min_input_size(*, arch, output_stride=None) -> int:
    """The smallest height or width an arch accepts: one pixel at its coarsest stride."""
    entry = MODELS[_choice("arch", arch, list_models())]
    return max(entry.output_strides) if output_stride is None else int(output_stride)


def _check_input_shape(input_shape, minimum):
    shape = tuple(input_shape)
    if len(shape) != 3 or shape[2] != 3:
        raise ValueError(f"input_shape: expected (height, width, 3) with None for a dynamic side, got {input_shape!r}")
    for side, value in zip(("height", "width"), shape[:2]):
        if value is not None and (not isinstance(value, numbers.Integral) or value < minimum):
            raise ValueError(f"input_shape: {side} {value!r} is too small; this model needs at least {minimum} "
                             f"pixels (or None), got {input_shape!r}")
    return shape


def preprocessing_for(*, arch, backbone=None) -> dict:
    """The normalisation inside the model: ``dict(mean=(r, g, b), std=(r, g, b), channel_order=...)``.

    Pixel units. The model computes ``(pixel - mean) / std`` per RGB channel, then
    reverses the channels when ``channel_order == "bgr"`` (keras.applications "caffe" mode).
    """
    entry = MODELS[_choice("arch", arch, list_models())]
    backbone = entry.backbones[0] if backbone is None else backbone
    spec = BACKBONES[_choice(f"backbone (for arch {arch!r})", backbone, entry.backbones)]
    return dict(mean=spec.mean, std=spec.std, channel_order=spec.channel_order)


def build_model(*, arch, num_classes, backbone=None, output_stride=None, input_shape=(None, None, 3),
                backbone_weights=None, **options):
    """Build a segmentation model: input "image" (RGB, 0..255), output "logits" (B, H, W, num_classes), float32.

    ``arch``: one of ``list_models()``. ``backbone``: default is the arch's first.
    ``output_stride``: 8, 16 (default) or 32 for DeepLab; FCN is fixed at 32.
    ``backbone_weights``: None (random), "imagenet" (keras.applications file, downloaded once)
    or a path to an HDF5 weights file whose layer names match the backbone's. For FCN, a file
    with VGG16's fc1/fc2 (the full keras.applications VGG16) also initialises fc6/fc7.
    ``options``: see ``OPTIONS``; an option the arch does not have raises ValueError.
    The layers (and the order of ``get_weights()``) do not depend on ``input_shape``.
    """
    config = model_config(arch=arch, num_classes=num_classes, backbone=backbone, output_stride=output_stride,
                          **options)
    shape = _check_input_shape(input_shape, min_input_size(arch=arch, output_stride=config["output_stride"]))
    entry, spec = MODELS[config["arch"]], BACKBONES[config["backbone"]]
    backbone_options = {k: config[k] for k in BACKBONE_OPTIONS.get(config["backbone"], {})}
    weights_path = _resolve_backbone_weights(backbone_weights, config["backbone"], backbone_options)
    head_options = {k: config[k] for k in entry.options}

    image = keras.Input(shape=shape, name="image")
    x = Normalize(mean=spec.mean, std=spec.std, channel_order=spec.channel_order, name="normalize")(image)
    features = spec.build(x, output_stride=config["output_stride"], **backbone_options)
    logits = entry.head(image, features, num_classes=config["num_classes"], output_stride=config["output_stride"],
                        **head_options)
    model = keras.Model(image, logits, name=f"{config['arch']}_{config['backbone']}")

    if weights_path is not None:
        names = [layer.name for layer in keras.Model(image, features).layers if layer.weights]
        load_weights_by_name(model, weights_path, layer_names=names)
        if config["arch"] in FCN_VARIANTS:
            load_vgg16_classifier_as_fcn(model, weights_path)
    return model


def _resolve_backbone_weights(backbone_weights, backbone, options):
    """The HDF5 file to load (checked before any layer is built), or None."""
    if backbone_weights is None:
        return None
    if not isinstance(backbone_weights, (str, os.PathLike)):
        raise ValueError(f"backbone_weights: expected None, 'imagenet' or a file path, got {backbone_weights!r}")
    if backbone_weights == "imagenet":
        if options.get("channel_rounding") == "slim":
            raise ValueError("backbone_weights='imagenet': keras.applications' MobileNetV2 files have "
                             "channel_rounding='keras' widths, got channel_rounding='slim'")
        return download_imagenet_weights(backbone, alpha=options.get("alpha"),
                                         minimalistic=options.get("minimalistic", False))
    path = os.fspath(backbone_weights)
    hdf5_layer_names(path)  # raises on a missing or non-HDF5 file
    return path


def custom_objects() -> dict:
    """The custom layers and initializer, for ``keras.models.load_model``."""
    return {**CUSTOM_OBJECTS, **BLOCK_OBJECTS}


ZIP_MAGIC, HDF5_MAGIC, TFLITE_MAGIC = b"PK\x03\x04", b"\x89HDF\r\n\x1a\n", b"TFL3"


class ModelFileError(ValueError):
    """A file given as a Keras model that is not one."""


def model_file_problem(path) -> str | None:
    """Why ``path`` is not a Keras model file, in words (None when it looks like one: a ``.keras`` zip archive
    holding ``config.json``, an HDF5 ``.h5`` file or a SavedModel folder). Reads a few bytes, loads nothing."""
    import zipfile

    path = os.fspath(path)
    if os.path.isdir(path):
        return None if os.path.isfile(os.path.join(path, "saved_model.pb")) else "a folder without saved_model.pb"
    if not os.path.isfile(path):
        return "no such file"
    with open(path, "rb") as file:
        head = file.read(8)
    if head.startswith(HDF5_MAGIC):
        return None
    if head.startswith(ZIP_MAGIC):
        try:
            with zipfile.ZipFile(path) as archive:
                names = set(archive.namelist())
        except zipfile.BadZipFile:
            return "a damaged zip archive"
        return None if "config.json" in names else "a zip archive without the config.json of a Keras model"
    if head[4:8] == TFLITE_MAGIC:
        return "a TFLite model (python -m edge runs it; convert.py and predict.py take the .keras it came from)"
    if not head:
        return "empty"
    if all(32 <= byte < 127 or byte in b"\t\r\n" for byte in head):
        return "a text file"
    return f"a file starting with the bytes {head!r}"


def load_model(path):
    """Load a ``.keras`` (or SavedModel/h5) kerasseg model without its optimizer state.

    Raises ModelFileError (a ValueError) saying what the file is when it is not a Keras model file.
    """
    problem = model_file_problem(path)
    if problem is not None:
        raise ModelFileError(f"{os.fspath(path)} is not a Keras model file (a .keras zip archive, an .h5 file or a "
                         f"SavedModel folder): it is {problem}")
    return keras.models.load_model(path, custom_objects=custom_objects(), compile=False)
