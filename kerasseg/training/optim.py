"""Optimisers and the learning-rate schedule."""
from __future__ import annotations

from kerasseg.backend import keras, tf

OPTIMIZERS = ("sgd", "adamw")
# Batch-norm scales/offsets and biases are not decayed.
NO_DECAY_NAMES = ("bias", "gamma", "beta")


@keras.saving.register_keras_serializable(package="kerasseg")
class PolyWarmup(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up to ``learning_rate`` over ``warmup_steps``, then the "poly" decay of DeepLab
    (Chen et al., 2016, https://arxiv.org/abs/1606.00915): ``lr * (1 - t / T) ** power`` down to ``end_learning_rate``."""

    def __init__(self, *, learning_rate: float, total_steps: int, warmup_steps: int = 0,
                 power: float = 0.9, end_learning_rate: float = 0.0):
        if total_steps < 1:
            raise ValueError(f"total_steps: expected a positive int, got {total_steps}")
        if not 0 <= warmup_steps < total_steps:
            raise ValueError(f"warmup_steps: expected 0 <= warmup_steps < total_steps ({total_steps}), got {warmup_steps}")
        self.learning_rate = float(learning_rate)
        self.total_steps = int(total_steps)
        self.warmup_steps = int(warmup_steps)
        self.power = float(power)
        self.end_learning_rate = float(end_learning_rate)

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        decay_steps = float(self.total_steps - self.warmup_steps)
        progress = tf.clip_by_value((step - self.warmup_steps) / decay_steps, 0.0, 1.0)
        poly = (self.learning_rate - self.end_learning_rate) * (1.0 - progress) ** self.power + self.end_learning_rate
        if self.warmup_steps == 0:
            return poly
        warmup = self.learning_rate * (step + 1.0) / float(self.warmup_steps)
        return tf.where(step < self.warmup_steps, warmup, poly)

    def get_config(self):
        return {"learning_rate": self.learning_rate, "total_steps": self.total_steps,
                "warmup_steps": self.warmup_steps, "power": self.power,
                "end_learning_rate": self.end_learning_rate}


def build_optimizer(*, name: str, learning_rate, momentum: float = 0.9, weight_decay: float = 0.0,
                    mixed_float16: bool = False):
    """SGD with momentum (Nesterov off) or AdamW; both with decoupled weight decay that skips biases and BN.

    ``learning_rate`` is a float or a schedule. With ``mixed_float16`` the optimiser is wrapped in a
    ``LossScaleOptimizer``.
    """
    if name == "sgd":
        optimizer = keras.optimizers.SGD(learning_rate=learning_rate, momentum=momentum,
                                         weight_decay=weight_decay or None)
    elif name == "adamw":
        optimizer = keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=weight_decay)
    else:
        raise ValueError(f"optimizer: expected one of {OPTIMIZERS}, got {name!r}")
    if weight_decay:
        optimizer.exclude_from_weight_decay(var_names=list(NO_DECAY_NAMES))
    if mixed_float16:
        optimizer = keras.mixed_precision.LossScaleOptimizer(optimizer)
    return optimizer
