"""Batch-norm settings applied to a built model: moving-average momentum, and statistics synchronised over replicas."""
from __future__ import annotations

from kerasseg.backend import keras


def _batch_norm_layers(model) -> list:
    return [layer for layer in model.submodules if isinstance(layer, keras.layers.BatchNormalization)]


def set_batch_norm_momentum(model, momentum: float) -> int:
    """Set the moving-average momentum of every BatchNormalization layer; returns how many."""
    layers = _batch_norm_layers(model)
    for layer in layers:
        layer.momentum = float(momentum)
    return len(layers)


def synchronize_batch_norm(model) -> int:
    """Make every BatchNormalization layer compute batch statistics over all replicas; returns how many."""
    layers = _batch_norm_layers(model)
    for layer in layers:
        layer.synchronized = True
        layer.fused = False
    return len(layers)
