"""The one place kerasseg imports Keras.

Every model is built with tf_keras (Keras 2): tensorflow-model-optimization
0.8.1 quantization-aware training rejects Keras 3 models. Import ``keras``
from here, never ``tensorflow.keras`` or ``keras`` directly.
"""
import os

# tfmot and tf.keras resolve to tf_keras only if this is set before TensorFlow loads.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

layers = keras.layers

__all__ = ["tf", "keras", "layers"]
