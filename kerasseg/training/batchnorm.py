"""Batch-norm settings applied to a built model: moving-average momentum, statistics synchronised over replicas,
and the statistics of batch norms that came folded (a released model's) re-estimated on training data."""
from __future__ import annotations

import numpy as np

from kerasseg.backend import keras

BATCH_NORM_STEPS = 10  # training batches that re-estimate the statistics of folded batch norms


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


def folded_batch_norms(model) -> list:
    """Batch norms in the identity form a folded import gives them (gamma 1, mean 0, variance 1 - epsilon)."""
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.layers.BatchNormalization) and layer.weights:
            gamma, _, mean, variance = layer.get_weights()
            if np.all(gamma == 1) and np.all(mean == 0) and np.allclose(variance, 1 - layer.epsilon, rtol=0,
                                                                        atol=1e-7):
                found.append(layer)
    return found


def reestimate_batch_norm(model, batches, *, steps: int = BATCH_NORM_STEPS) -> int:
    """Give each folded batch norm the statistics of its input on ``steps`` batches, keeping what it computes.

    In inference mode a folded batch norm adds its bias (beta). In training mode it would normalise by the
    batch's statistics instead, and fine-tuning would start from another function. With the measured mean m
    and variance v: moving mean m, moving variance v, gamma sqrt(v + epsilon), beta + m. Inference computes
    the same, and training mode, whose batch statistics are close to m and v, computes it too.
    """
    layers = folded_batch_norms(model)
    if not layers:
        return 0
    probe = keras.Model(model.inputs, [layer.input for layer in layers])
    sums = [0.0] * len(layers)
    squares = [0.0] * len(layers)
    count = 0
    for images, _ in batches.take(steps):
        outputs = probe(images, training=False)
        outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
        for i, x in enumerate(outputs):
            x = np.asarray(x, np.float64).reshape(-1, x.shape[-1])
            sums[i] = sums[i] + x.mean(axis=0)
            squares[i] = squares[i] + (x ** 2).mean(axis=0)
        count += 1
    for layer, total, total_sq in zip(layers, sums, squares):
        mean, variance = total / count, np.maximum(total_sq / count - (total / count) ** 2, 0.0)
        _, beta, _, _ = layer.get_weights()
        layer.set_weights([np.sqrt(variance + layer.epsilon).astype(np.float32), (beta + mean).astype(np.float32),
                           mean.astype(np.float32), variance.astype(np.float32)])
    return len(layers)
