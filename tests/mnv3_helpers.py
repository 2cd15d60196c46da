"""The LR-ASPP MobileNetV3-Small run that the MobileNetV3 pipeline tests share (fixture ``mnv3_run`` in conftest).

train.py trains it at 64x64 on the built-in synthetic data (a subprocess, as a user runs it); then the
library's ``export`` (what convert.py calls) writes its int8, QAT and Edge TPU artifacts, each ending in the
default head (native, stride 8), with their parity reports.
"""
from __future__ import annotations

import dataclasses
import pathlib

from shared_helpers import run_python  # noqa: F401 (the pipeline tests import it from here)

SIZE = 64
CLASSES = 5  # the synthetic dataset's background and four shapes
DATASET = f"synthetic:64?val=16&size={SIZE}"
# About 0.5 val mIoU after 120 steps: trained enough for quantization to have class boundaries to keep.
TRAIN_FLAGS = ["--arch", "lraspp", "--backbone", "mobilenetv3_small", "--dataset", DATASET, "--image-size", str(SIZE),
               "--epochs", "1", "--steps-per-epoch", "120", "--batch-size", "8", "--warmup-steps", "10",
               "--learning-rate", "0.01", "--quiet"]
MODES = ("int8", "qat", "edgetpu")
NAME = "lraspp_mobilenetv3_small"


@dataclasses.dataclass
class Mnv3Run:
    run_dir: pathlib.Path
    results: dict  # mode value -> kerasseg.export.export.ExportResult
    log: list


def train_and_export(folder: pathlib.Path) -> Mnv3Run:
    """Train through train.py, then export int8, QAT (10 steps) and Edge TPU with 16 parity images.

    32 calibration images: with 8, this weakly trained model's int8 drop ranged from -5.9 to +5.3 points over
    training seeds (the ranges of h-swish and the gates vary with the few augmented images); with 32 it was
    -0.3 to +1.0 over four seeds."""
    from kerasseg.export.export import export
    from kerasseg.training.trained import open_trained

    run_dir = folder / "run"
    run_python("train.py", *TRAIN_FLAGS, "--output-dir", run_dir)
    log = []
    results = export(open_trained(str(run_dir)), MODES, calibration_steps=32, qat_steps=10, parity_images=16,
                     log=log.append)
    return Mnv3Run(run_dir=run_dir, results={r.mode.value: r for r in results}, log=log)
