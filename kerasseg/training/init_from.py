"""``train.py --init-from SOURCE``: fine-tune a trained model, its architecture taken from the source.

SOURCE is a released ``.tflite``, a DeepLab model-zoo checkpoint (``.tar.gz``, folder or prefix), a run
directory (``best.keras``) or a ``.keras`` file with the ``config.yaml`` of its run beside it.
``resolve_architecture`` fills the build arguments from it (a flag that contradicts it is an error);
``initialize`` copies every layer whose weights fit, keeps the classifier only when the classes are the
same, logs what was and was not loaded, and re-estimates the statistics of folded batch norms.
"""
from __future__ import annotations

import dataclasses
import functools
import logging
import os

from kerasseg.training.batchnorm import BATCH_NORM_STEPS, reestimate_batch_norm

# Build arguments the weights fix: a flag may not contradict them. The others (output_stride, dropout,
# edgetpu_friendly) come from the source unless a flag sets them.
FIXED_BY_WEIGHTS = ("arch", "backbone", "alpha", "channel_rounding", "minimalistic", "aspp", "decoder")
FROM_SOURCE = FIXED_BY_WEIGHTS + ("output_stride", "dropout", "edgetpu_friendly", "align_corners")
CLASSIFIER = "classifier"
MAX_NAMED = 5  # layers not loaded that the summary names; DEBUG names them all, and the loaded ones
_log = logging.getLogger(__name__)


@dataclasses.dataclass(frozen=True)
class InitSource:
    """A trained model to start from: its build arguments, class names (None: unknown) and Keras model."""

    path: str
    kind: str
    model_kwargs: dict
    labels: tuple | None
    model: object


@functools.lru_cache(maxsize=2)
def open_init_source(path: str) -> InitSource:
    """Read SOURCE (see the module docstring); ValueError / FileNotFoundError naming it when it cannot be used."""
    from kerasseg.models.importing import import_model
    from kerasseg.models.importing.rundir import known_labels
    from kerasseg.training.trained import open_trained

    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "config.yaml")) or path.endswith(".keras"):
        trained = open_trained(path)
        if trained.model_kwargs is None:
            raise ValueError(f"--init-from {path}: no config.yaml of its run beside it, so its build arguments "
                             f"are unknown; give its run directory")
        return InitSource(path, "kerasseg run", dict(trained.model_kwargs), tuple(trained.spec.labels),
                          trained.model)
    try:
        imported = import_model(path)
    except (ValueError, FileNotFoundError) as err:
        raise type(err)(f"--init-from: {err}") from None
    known = known_labels(imported.config["num_classes"])
    return InitSource(path, imported.source["kind"], dict(imported.config), known[0] if known else None,
                      imported.model)


def resolve_architecture(given: dict, path: str) -> dict:
    """The build arguments of ``given`` (the settings the user gave) completed from ``path``'s model."""
    source = open_init_source(os.fspath(path))
    if given.get("backbone_weights"):
        raise ValueError(f"--backbone-weights: contradicts --init-from {path}, which sets every weight")
    out = {}
    for key in FROM_SOURCE:
        if key not in source.model_kwargs:
            continue
        wanted = given.get(key)
        if key in FIXED_BY_WEIGHTS and wanted is not None and wanted != source.model_kwargs[key]:
            raise ValueError(f"--{key.replace('_', '-')}: {wanted!r} contradicts --init-from {path}, whose model "
                             f"has {key}={source.model_kwargs[key]!r}")
        out[key] = source.model_kwargs[key] if wanted is None else wanted
    return out


def copy_weights(model, source: InitSource, labels, *, log=print) -> tuple[list, list]:
    """Copy every layer of ``source.model`` whose weights fit ``model``'s; (loaded, not loaded with why)."""
    same_classes = source.labels is None or tuple(source.labels) == tuple(labels)
    loaded, skipped = [], []
    for layer in model.layers:
        if not layer.weights:
            continue
        try:
            weights = source.model.get_layer(layer.name).get_weights()
        except ValueError:
            skipped.append(f"{layer.name} (not in the source)")
            continue
        shapes = [w.shape for w in weights], [tuple(w.shape) for w in layer.weights]
        if layer.name == CLASSIFIER and not (same_classes and shapes[0] == shapes[1]):
            why = "other classes" if len(labels) == source.model_kwargs["num_classes"] else \
                f"{source.model_kwargs['num_classes']} classes in the source, {len(labels)} here"
            skipped.append(f"{layer.name} (re-initialised: {why})")
        elif shapes[0] != shapes[1]:
            skipped.append(f"{layer.name} (shapes {shapes[0]} in the source, {shapes[1]} here)")
        else:
            layer.set_weights(weights)
            loaded.append(layer.name)
    shown = skipped[:MAX_NAMED] + ([f"and {len(skipped) - MAX_NAMED} more"] if len(skipped) > MAX_NAMED else [])
    log(f"--init-from {source.path} ({source.kind}): loaded {len(loaded)} of {len(loaded) + len(skipped)} layers "
        f"with weights; not loaded ({len(skipped)}): " + ("; ".join(shown) or "none")
        + (" (--log-level DEBUG lists every layer)" if len(loaded) + len(skipped) > MAX_NAMED else ""))
    _log.debug("--init-from: loaded (%d): %s", len(loaded), ", ".join(loaded))
    if len(skipped) > MAX_NAMED:
        _log.debug("--init-from: not loaded (%d): %s", len(skipped), "; ".join(skipped))
    return loaded, skipped


def initialize(model, setup, *, log=print) -> None:
    """Fill ``model`` from ``setup.config.init_from`` (see the module docstring) before the first step."""
    source = open_init_source(os.fspath(setup.config.init_from))
    copy_weights(model, source, setup.spec.labels, log=log)
    count = reestimate_batch_norm(model, setup.pipeline("train"))
    if count:
        log(f"--init-from: {count} batch norms came folded; their statistics were re-estimated on "
            f"{BATCH_NORM_STEPS} training batches (what the model computes is unchanged)")
