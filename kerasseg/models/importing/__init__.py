"""Import Google's released DeepLab weights into ``build_model``'s layers.

``import_model(SOURCE)`` reads a released ``.tflite`` (int8/uint8 or float, batch norm folded) or a DeepLab
model-zoo TF1 checkpoint (the downloaded ``.tar.gz``, its folder or the checkpoint prefix; batch norm unfolded),
infers the architecture from the tensors (backbone, depth multiplier, ASPP, decoder, classes; from a ``.tflite``
also its input size, output stride and resize alignment), builds it with ``build_model`` and fills it through
the one name map (``names.py``).

Folded batch norm: each convolution takes the folded kernel, and its batch norm the identity plus the folded
bias (gamma 1, beta = bias, moving mean 0, moving variance 1 - epsilon). The model then computes exactly what
the released one does, every layer keeps its trainable weights (kernel, gamma, beta), and the layer structure
stays the builder's, so export, QAT and the Edge TPU rebuild treat it as any trained model. A batch norm in
training mode normalises by the batch's statistics, which the identity form does not know: before fine-tuning,
``train.py --init-from`` re-estimates them on the training data (``kerasseg.training.init_from``) without
changing what the model computes in inference mode.
"""
from __future__ import annotations

import dataclasses
import hashlib
import os

from edge.artifact.spec import Alignment
from kerasseg.models.mobilenetv2 import MOBILENETV2_ALPHAS
from kerasseg.models.importing.names import (BACKBONE_ROOTS, NameMapError, Official, assign, official_weights,
                                             slots_for)

TFLITE_SUFFIX = ".tflite"
CHECKPOINT_OUTPUT_STRIDE = 16  # a checkpoint fixes no output stride; DeepLab evaluates its models at 8 or 16
MOBILENETV2_LAST = "MobilenetV2/expanded_conv_16/project"  # 320 x alpha channels


@dataclasses.dataclass
class Imported:
    """A Keras model filled from a released file, and what the file says about it."""

    model: object
    config: dict                 # the model_config (build_model arguments)
    input_size: tuple | None     # the released graph's input size (None: a checkpoint fixes none)
    source: dict                 # path, kind, sha256 (recorded in config.yaml)
    filled: list                 # Keras layer names filled
    unused: list                 # official scopes in the file that no layer took (checkpoints: e.g. optimizer)


def sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_official(path: str | os.PathLike):
    """(Official weights, tflite GraphFacts or None) of a ``.tflite`` file or a TF1 checkpoint."""
    path = os.fspath(path)
    if path.endswith(TFLITE_SUFFIX):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"source: no such file: {path}")
        from kerasseg.models.importing.tflite import read_tflite
        return read_tflite(path)
    from kerasseg.models.importing.checkpoint import read_checkpoint
    return read_checkpoint(path), None


def infer_config(official: Official, *, output_stride: int, alignment: Alignment = Alignment.ALIGN_CORNERS) -> dict:
    """The ``model_config`` the official weights fit; NameMapError when they are not DeepLab's."""
    from kerasseg.models import model_config

    scopes = official.scopes()
    backbones = [name for name, root in BACKBONE_ROOTS.items() if root in scopes]
    if not backbones:
        raise NameMapError(f"{official.source}: not a DeepLab model: no convolution scoped "
                           f"{' or '.join(map(repr, BACKBONE_ROOTS.values()))}; its first scopes are "
                           f"{sorted(scopes)[:3]}")
    for scope in ("logits/semantic", "aspp0", "image_pooling"):
        if "weights" not in official.tensors.get(scope, {}):
            raise NameMapError(f"{official.source}: not a DeepLab model: missing tensor {scope}/weights")
    options = {}
    if backbones[0] == "mobilenetv2":
        if "weights" not in official.tensors.get(MOBILENETV2_LAST, {}):
            raise NameMapError(f"{official.source}: missing tensor {MOBILENETV2_LAST}/weights")
        alpha = official.tensors[MOBILENETV2_LAST]["weights"].shape[-1] / 320
        if round(alpha, 2) not in MOBILENETV2_ALPHAS:
            raise NameMapError(f"{official.source}: tensor {MOBILENETV2_LAST}/weights has "
                               f"{official.tensors[MOBILENETV2_LAST]['weights'].shape[-1]} outputs, 320 x a depth "
                               f"multiplier in {MOBILENETV2_ALPHAS} expected")
        options = {"alpha": round(alpha, 2), "channel_rounding": "slim"}
    return model_config(arch="deeplabv3plus", backbone=backbones[0],
                        num_classes=int(official.tensors["logits/semantic"]["weights"].shape[-1]),
                        output_stride=output_stride, aspp="aspp1_depthwise" in scopes,
                        decoder="decoder/feature_projection0" in scopes,
                        align_corners=alignment is Alignment.ALIGN_CORNERS,
                        edgetpu_friendly=alignment is Alignment.LEGACY, **options)


def import_model(path: str | os.PathLike, *, output_stride: int | None = None) -> Imported:
    """Build the model a released file holds and fill it (see the module docstring).

    ``output_stride``: a ``.tflite`` fixes its own (a different value is an error); a checkpoint's default is 16.
    Raises NameMapError naming the first tensor that does not fit, FileNotFoundError, ValueError.
    """
    from kerasseg.models import build_model

    path = os.fspath(path)
    official, facts = read_official(path)
    if facts is not None and output_stride not in (None, facts.output_stride):
        raise ValueError(f"output_stride: {path} computes at output stride {facts.output_stride}, got "
                         f"{output_stride}")
    stride = facts.output_stride if facts else output_stride or CHECKPOINT_OUTPUT_STRIDE
    config = infer_config(official, output_stride=stride,
                          alignment=facts.alignment if facts else Alignment.ALIGN_CORNERS)
    slots = slots_for(config)
    unused = sorted(official.scopes() - {slot.scope for slot in slots})
    if facts is not None and unused:  # every convolution of a released graph must find its layer
        raise NameMapError(f"{path}: convolution {unused[0]!r} has no layer in build_model("
                           f"{', '.join(f'{k}={v!r}' for k, v in config.items())})")
    model = build_model(**config)
    filled = assign(model, official, slots)
    source = {"path": os.path.abspath(path), "kind": facts.kind if facts else "TF1 checkpoint",
              "sha256": sha256_of(path) if os.path.isfile(path) else None}
    return Imported(model=model, config=config, input_size=facts.input_size if facts else None, source=source,
                    filled=filled, unused=unused)


__all__ = ["Imported", "NameMapError", "Official", "import_model", "infer_config", "official_weights",
           "read_official", "slots_for"]
