"""The training configuration: one dataclass, overridable from a YAML file and then from the command line.

Precedence, lowest first: the defaults below, the architecture's defaults (``ARCH_DEFAULTS``), the YAML
file, the command-line flags. ``resolve_config`` applies it; the result is written to ``config.yaml``
in the run directory, together with the exact ``build_model`` arguments under ``model``.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Any, Mapping

import yaml

from kerasseg.models.registry import OPTIONS

OPTIMIZERS = ("sgd", "adamw")
STRATEGIES = ("auto", "one_device", "mirrored", "multi_worker", "tpu")
CLASS_WEIGHTS = ("none", "auto")

# Paper settings for FCN (Long et al., 2015, section 4.3); the main job's settings for the others.
FCN_DEFAULTS = {"optimizer": "sgd", "learning_rate": 1e-4, "momentum": 0.9, "weight_decay": 5e-4,
                "warmup_steps": 0}
ARCH_DEFAULTS: dict[str, dict[str, Any]] = {"fcn32s": FCN_DEFAULTS, "fcn16s": FCN_DEFAULTS, "fcn8s": FCN_DEFAULTS}
# DeepLab: sized so that `python train.py --arch deeplabv3plus` (random weights, the built-in dataset) reaches
# val mIoU 0.9 in under 10 minutes on 2 CPU cores (the learning-rate measurements are in the README's quick start).
# A pretrained backbone is fine-tuned at PRETRAINED_LEARNING_RATE.
# bn_momentum 0.9: the backbones' 0.999 (keras.applications) leaves the moving statistics stale for thousands of
# steps, which a short run never reaches; validation then sees garbage.
DEEPLAB_DEFAULTS = {"optimizer": "adamw", "learning_rate": 2e-2, "weight_decay": 1e-4, "warmup_steps": 50,
                    "bn_momentum": 0.9}
PRETRAINED_LEARNING_RATE = 1e-3
# The MobileNetV2 width when the backbone is MobileNetV2 (the models' default backbone for DeepLab).
DEEPLAB_MOBILENETV2_ALPHA = 0.35


def _with_model_options(cls):
    """Give ``cls`` one field per option of the model registry's table (``OPTIONS``), after ``arch``, each
    defaulting to None: "not given", so that the arch, the YAML file and the flags can fill it."""
    notes = dict(cls.__annotations__)
    cls.__annotations__ = {"arch": notes.pop("arch"),
                           **{name: f"{option.type.__name__} | None" for name, option in OPTIONS.items()}, **notes}
    for name in OPTIONS:
        setattr(cls, name, None)
    return cls


@dataclasses.dataclass
@_with_model_options
class TrainConfig:
    """Everything a training run needs; field names are the flag and YAML key names.

    Besides these, one field per build option of the model registry (``OPTIONS``: backbone, output_stride,
    alpha, aspp, ...), None when not given.
    """

    arch: str = "deeplabv3plus"
    backbone_weights: str | None = None
    init_from: str | None = None  # a trained model to fine-tune (kerasseg.training.init_from)
    dataset: str = "synthetic"
    image_size: tuple[int, int] = (64, 64)
    scale_range: tuple[float, float] | None = None
    batch_size: int = 16
    epochs: int = 20
    steps_per_epoch: int | None = None
    learning_rate: float = 1e-3
    optimizer: str = "adamw"
    momentum: float = 0.9
    weight_decay: float = 1e-4
    warmup_steps: int = 0
    class_weights: str = "none"
    strategy: str = "auto"
    mixed_precision: bool = False
    sync_batch_norm: bool = False
    bn_momentum: float | None = None
    seed: int = 0
    val_examples: int = 8
    skip_bad_files: bool = False

    def __post_init__(self):
        self.image_size = normalize_image_size(self.image_size)
        if self.scale_range is not None:
            from kerasseg.data.pipeline import check_scale_range
            self.scale_range = check_scale_range(self.scale_range)
        self.validate()

    def validate(self) -> None:
        for name, choices in (("optimizer", OPTIMIZERS), ("strategy", STRATEGIES), ("class_weights", CLASS_WEIGHTS)):
            value = getattr(self, name)
            if value not in choices:
                raise ValueError(f"{name}: expected one of {choices}, got {value!r}")
        for name in ("batch_size", "epochs"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name}: expected a positive int, got {value!r}")
        if self.steps_per_epoch is not None and (not isinstance(self.steps_per_epoch, int) or self.steps_per_epoch < 1):
            raise ValueError(f"steps_per_epoch: expected a positive int or None, got {self.steps_per_epoch!r}")
        if not self.learning_rate > 0:
            raise ValueError(f"learning_rate: expected a positive number, got {self.learning_rate!r}")
        if self.weight_decay < 0 or not 0 <= self.momentum < 1:
            raise ValueError(f"weight_decay must be >= 0 and momentum in [0, 1), got {self.weight_decay}, {self.momentum}")
        if self.bn_momentum is not None and not 0 <= self.bn_momentum < 1:
            raise ValueError(f"bn_momentum: expected a value in [0, 1), got {self.bn_momentum!r}")
        if self.warmup_steps < 0:
            raise ValueError(f"warmup_steps: expected >= 0, got {self.warmup_steps}")

    def model_kwargs(self, *, num_classes: int) -> dict:
        """The exact keyword arguments this run passes to ``kerasseg.models.build_model``."""
        kwargs = {"arch": self.arch, "num_classes": int(num_classes), "backbone": self.backbone,
                  "output_stride": self.output_stride}
        for option in MODEL_OPTIONS:
            if getattr(self, option) is not None:
                kwargs[option] = getattr(self, option)
        return kwargs

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data["image_size"] = list(self.image_size)
        if self.scale_range is not None:
            data["scale_range"] = list(self.scale_range)
        return data


# Passed to build_model when set (backbone and output_stride always are).
MODEL_OPTIONS = tuple(name for name in OPTIONS if name not in ("backbone", "output_stride"))
FIELDS = tuple(f.name for f in dataclasses.fields(TrainConfig))


def normalize_image_size(value) -> tuple[int, int]:
    """``64`` or ``[64]`` -> ``(64, 64)``; ``[48, 64]`` -> ``(48, 64)`` as (height, width)."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        value = [value]
    try:
        size = [int(v) for v in value]
    except (TypeError, ValueError):
        raise ValueError(f"image_size: expected one int or [height, width], got {value!r}") from None
    if len(size) == 1:
        size = size * 2
    if len(size) != 2 or min(size) < 8:
        raise ValueError(f"image_size: expected one int or [height, width], each >= 8, got {value!r}")
    return (size[0], size[1])


def arch_defaults(arch: str, backbone: str | None = None, backbone_weights: str | None = None,
                  init_from: str | None = None) -> dict:
    """Defaults that depend on the architecture (FCN keeps its paper settings), backbone and initial weights.

    With ``init_from`` the model options come from that model, and the learning rate is the pretrained one.
    """
    if arch in ARCH_DEFAULTS:
        return dict(ARCH_DEFAULTS[arch])
    defaults = dict(DEEPLAB_DEFAULTS)
    if backbone_weights or init_from:
        defaults["learning_rate"] = PRETRAINED_LEARNING_RATE
    if (backbone == "mobilenetv2" or (backbone is None and arch == "deeplabv3plus")) and not init_from:
        defaults["alpha"] = DEEPLAB_MOBILENETV2_ALPHA
    return defaults


def read_yaml(path: str | os.PathLike) -> dict:
    """Read a YAML mapping of TrainConfig keys; unknown keys are an error."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        data = yaml.safe_load(f) or {}
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a YAML mapping of settings, got {type(data).__name__}")
    return data


def given_settings(*, overrides: Mapping[str, Any] | None = None, yaml_values: Mapping[str, Any] | None = None,
                   base: Mapping[str, Any] | None = None) -> dict:
    """The settings given, merged: ``base`` (a saved run's, when resuming) < ``yaml_values`` < ``overrides``.

    ``None`` values are "not given"; an unknown key is a ValueError naming where it came from.
    """
    given: dict[str, Any] = {}
    for source_name, source in (("saved config", base or {}), ("config file", yaml_values or {}),
                                ("arguments", overrides or {})):
        unknown = sorted(set(source) - set(FIELDS))
        if unknown:
            raise ValueError(f"{source_name}: unknown keys {unknown}; valid keys are {sorted(FIELDS)}")
        given.update({k: v for k, v in source.items() if v is not None})
    return given


def resolve_config(*, overrides: Mapping[str, Any] | None = None, yaml_values: Mapping[str, Any] | None = None,
                   base: Mapping[str, Any] | None = None, architecture: Mapping[str, Any] | None = None
                   ) -> TrainConfig:
    """Merge defaults < arch defaults < ``yaml_values`` < ``overrides`` (``None`` values are "not given").

    With ``base`` (a saved run's config, when resuming) it replaces the defaults and arch defaults. A new run
    that fine-tunes (``init_from``) takes its build arguments from that model: ``architecture``, which
    ``kerasseg.training.init_from.resolve_with_source`` reads from it.
    """
    given = given_settings(overrides=overrides, yaml_values=yaml_values, base=base)
    if given.get("init_from") and not base:  # the architecture comes from the model to fine-tune
        if architecture is None:
            raise ValueError(f"init_from {given['init_from']}: the build arguments come from that model; resolve "
                             f"the settings with kerasseg.training.init_from.resolve_with_source")
        given.update(architecture)
    values = {} if base else arch_defaults(given.get("arch", TrainConfig.arch), given.get("backbone"),
                                            given.get("backbone_weights"), given.get("init_from"))
    values.update(given)
    return TrainConfig(**values)
