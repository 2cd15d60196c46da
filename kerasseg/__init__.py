"""kerasseg: semantic segmentation from GPU training to a camera on a Raspberry Pi or Coral Edge TPU.

Sub-packages, each importing only from those before it: ``backend`` (the one TensorFlow import), ``models``
(the builders, their registry and option table, Google's released weights), ``rundir`` (the run directory),
``data``, ``training``, ``export``; the device runtime, ``edge``, sits under them all
(``tests/test_import_floors.py``).
"""
import os

# Must precede any TensorFlow import so that tf.keras and tfmot use tf_keras (see kerasseg.backend).
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

__version__ = "0.1.0"
