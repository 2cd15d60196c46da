"""kerasseg: semantic segmentation from GPU training to a camera on a Raspberry Pi or Coral Edge TPU."""
import os

# Must precede any TensorFlow import so that tf.keras and tfmot use tf_keras (see kerasseg.backend).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"
