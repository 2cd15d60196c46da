"""``train.py --init-from SOURCE``: fine-tune a trained model, its architecture taken from the source.

SOURCE is a released ``.tflite``, a DeepLab model-zoo checkpoint (``.tar.gz``, folder or prefix), a run
directory (``best.keras``) or a ``.keras`` file with the ``config.yaml`` of its run beside it.
``resolve_with_source`` opens it once (through ``kerasseg.rundir`` or the importer) and fills the build arguments
from it (``resolve_architecture``: a flag that contradicts it is an error); ``train(config, init_source=...)``
takes the opened source on to ``initialize``, which copies every layer whose weights fit, keeps the classifier
only when the classes are the same, logs what was and was not loaded, and re-estimates the statistics of folded
batch norms.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Mapping

from kerasseg.models.registry import OPTIONS
from kerasseg.rundir import CONFIG_FILENAME
from kerasseg.training.batchnorm import BATCH_NORM_STEPS, reestimate_batch_norm
from kerasseg.training.config import TrainConfig, given_settings, resolve_config

# Build arguments the weights fix (the arch and the registry's options marked so): a flag may not contradict
# them. The others (output_stride, dropout, edgetpu_friendly, ...) come from the source unless a flag sets them.
FIXED_BY_WEIGHTS = ("arch",) + tuple(name for name, option in OPTIONS.items() if option.fixed_by_weights)
FROM_SOURCE = FIXED_BY_WEIGHTS + tuple(name for name, option in OPTIONS.items() if not option.fixed_by_weights)
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


def open_init_source(path: str | os.PathLike) -> InitSource:
    """Read SOURCE (see the module docstring); ValueError / FileNotFoundError naming it when it cannot be used."""
    from kerasseg.models.importing import import_model
    from kerasseg.models.importing.labels import known_labels
    from kerasseg.rundir import open_trained

    path = os.fspath(path)
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, CONFIG_FILENAME)) or path.endswith(".keras"):
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


def resolve_with_source(*, overrides: Mapping[str, Any] | None = None, yaml_values: Mapping[str, Any] | None = None,
                        base: Mapping[str, Any] | None = None) -> tuple[TrainConfig, InitSource | None]:
    """``resolve_config``, and the model to fine-tune when a new run names one (``init_from``): opened once here,
    it completes the build arguments, and goes on to ``train(config, init_source=...)``."""
    given = given_settings(overrides=overrides, yaml_values=yaml_values, base=base)
    if base or not given.get("init_from"):
        return resolve_config(overrides=overrides, yaml_values=yaml_values, base=base), None
    source = open_init_source(given["init_from"])
    architecture = resolve_architecture(given, source)
    return resolve_config(overrides=overrides, yaml_values=yaml_values, architecture=architecture), source


def resolve_architecture(given: dict, source: InitSource) -> dict:
    """The build arguments of ``given`` (the settings the user gave) completed from ``source``'s model."""
    path = source.path
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


def initialize(model, setup, *, source: InitSource | None = None, log=print) -> None:
    """Fill ``model`` from ``source``, else from ``setup.config.init_from`` opened now (see the module docstring),
    before the first step."""
    source = source if source is not None else open_init_source(setup.config.init_from)
    copy_weights(model, source, setup.spec.labels, log=log)
    count = reestimate_batch_norm(model, setup.pipeline("train"))
    if count:
        log(f"--init-from: {count} batch norms came folded; their statistics were re-estimated on "
            f"{BATCH_NORM_STEPS} training batches (what the model computes is unchanged)")
