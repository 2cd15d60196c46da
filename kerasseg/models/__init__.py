"""The kerasseg model zoo: FCN-32s/16s/8s (VGG16), DeepLabv3(+) (MobileNetV2/V3, Xception-65, ResNet-50/101)
and LR-ASPP (MobileNetV3).

``build_model(arch=..., num_classes=..., ...)`` returns a tf_keras functional model
whose input "image" takes RGB pixels in [0, 255] and whose output "logits" is
float32 (batch, H, W, num_classes) at exactly the input's H and W.

Homes: ``registry.py`` (the architectures, the backbones and the one table of build options), ``blocks.py``
(the shared building blocks, the one inverted residual block), ``backbones.py``, ``mobilenetv2.py``,
``mobilenetv3.py``, the heads (``fcn.py``, ``deeplab.py``, ``lraspp.py``), ``layers.py`` (custom layers),
``weights.py`` (keras.applications weight files) and ``importing/`` (Google's released DeepLab weights).
"""
from kerasseg.models.counting import count_params_and_macs
from kerasseg.models.mobilenetv2 import MOBILENETV2_ALPHAS
from kerasseg.models.mobilenetv3 import MOBILENETV3_ALPHAS
from kerasseg.models.registry import (BACKBONE_OPTIONS, BACKBONES, MODELS, OPTIONS, add_option_flags, build_model,
                                      custom_objects, list_models, load_model, min_input_size, model_config,
                                      preprocessing_for)

__all__ = ["BACKBONE_OPTIONS", "BACKBONES", "MOBILENETV2_ALPHAS", "MOBILENETV3_ALPHAS", "MODELS", "OPTIONS",
           "add_option_flags", "build_model", "count_params_and_macs", "custom_objects", "list_models", "load_model",
           "min_input_size", "model_config", "preprocessing_for"]
