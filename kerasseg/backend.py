"""The one place kerasseg imports Keras (and TensorFlow).

Every model is built with tf_keras (Keras 2): tensorflow-model-optimization
0.8.1 quantization-aware training rejects Keras 3 models. Import ``keras``
from here, never ``tensorflow.keras`` or ``keras`` directly.

TensorFlow's start-up lines (absl, oneDNN, CUDA) are held back here, in
``edge.console.native_output``; ``--log-level DEBUG`` or ``KERASSEG_LOG_LEVEL=DEBUG`` shows them.
"""
import os

from edge import console

# tfmot and tf.keras resolve to tf_keras only if this is set before TensorFlow loads.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
console.tensorflow_environment()

with console.native_output():
    import tensorflow as tf  # noqa: E402
    import tf_keras as keras  # noqa: E402

    tf.config.list_physical_devices()  # TensorFlow looks for CUDA now, inside the filter, not at the first op

layers = keras.layers

__all__ = ["tf", "keras", "layers"]
