"""Google's released DeepLab files (tests/data, see its SOURCES.md) and the session fixtures that import and
convert them once for every test of ``kerasseg.models.importing`` (tests/conftest.py registers the fixtures).
"""
from __future__ import annotations

import dataclasses
import os
import pathlib
import shutil

import cv2
import numpy as np
import pytest

DATA = pathlib.Path(__file__).resolve().parent / "data"
INT8 = DATA / "deeplabv3_mnv2_dm05_pascal_quant.tflite"  # Coral: depth 0.5, OS16, 513, uint8 weights
FLOAT257 = DATA / "deeplabv3_257_mv_gpu.tflite"  # TF Lite example: depth 0.5, OS8, 257, float
LABELS_FILE = DATA / "pascal_voc_segmentation_labels.txt"
PHOTOS = {"grace_hopper.bmp": 15, "cat.bmp": 8}  # photo -> its subject's VOC class (person, cat)
RELEASED = {"int8": INT8, "float257": FLOAT257}
# Google's DeepLab on MobileNet-EdgeTPU "slim" (depth 0.75, head 128), OS16, 513, Cityscapes' 19 classes, uint8
CITYSCAPES = DATA / "deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite"
CITYSCAPES_LABELS_FILE = DATA / "cityscapes_segmentation_labels.txt"  # Coral's: "background" + the 19 names
# convert.py's calibration images for the round trip: few, since calibration at 513 px dominates its time.
CALIBRATION_STEPS = 8


def photos_folder(root) -> str:
    """A folder holding the two photos (the images: dataset of convert.py, the input of predict.py)."""
    folder = pathlib.Path(root) / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    for name in PHOTOS:
        shutil.copy(DATA / name, folder / name)
    return str(folder)


def frames_at(size) -> dict:
    """Each photo stretched to ``size`` (height, width) as the edge runtime does: BGR, bilinear."""
    height, width = size
    return {name: cv2.resize(cv2.imread(str(DATA / name)), (width, height), interpolation=cv2.INTER_LINEAR)
            for name in PHOTOS}


def segment(model_path, frames: dict) -> dict:
    """Class maps of ``frames`` through the edge runtime's Segmenter."""
    from edge.segmenter import Segmenter

    segmenter = Segmenter.from_file(str(model_path), threads=1)
    return {name: np.asarray(segmenter.segment(frame), np.int64) for name, frame in frames.items()}


def noisy(frames: dict, seed: int) -> dict:
    """``frames`` with every pixel value moved by -1, 0 or +1 grey level at random: an invisible change."""
    rng = np.random.default_rng(seed)
    return {name: np.clip(frame.astype(np.int16) + rng.integers(-1, 2, frame.shape), 0, 255).astype(np.uint8)
            for name, frame in frames.items()}


def keras_class_maps(model, frames: dict) -> dict:
    return {name: np.argmax(np.asarray(model(frame[None, ..., ::-1].astype(np.float32), training=False))[0], -1)
            for name, frame in frames.items()}


def dominant(class_map, *, skip_background: bool = False) -> int:
    counts = np.bincount(np.ravel(class_map), minlength=21)
    if skip_background:
        counts[0] = 0
    return int(np.argmax(counts))


def write_official_checkpoint(prefix: str, weights: dict) -> str:
    """A TF1 (V2-format) checkpoint holding ``{name: array}`` under exactly those names, as DeepLab's are."""
    from kerasseg.backend import tf

    names = sorted(weights)
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[tf.constant(weights[n]) for n in names])
    return prefix


def edgetpu_compiled_copy(source, target) -> str:
    """``source`` as ``edgetpu_compiler`` leaves it (no compiler here): one ``edgetpu-custom-op`` from the input to
    the outputs in place of every operator, the CPU graph's tensors kept."""
    from tensorflow.lite.python import schema_py_generated as schema
    from tensorflow.lite.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(source))
    code = schema.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = schema.BuiltinOperator.CUSTOM
    code.customCode, code.version = "edgetpu-custom-op", 1
    graph, op = model.subgraphs[0], schema.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs, op.customOptions = 0, graph.inputs, graph.outputs, list(b"compiled")
    model.operatorCodes, graph.operators = [code], [op]
    flatbuffer_utils.write_model(model, str(target))
    return str(target)


@dataclasses.dataclass
class Imported:
    runs: dict  # "int8" / "float257" -> run directory written by python -m kerasseg import
    outputs: dict  # the same -> what the command printed
    photos: str  # the folder of the two photos


@pytest.fixture(scope="session")
def imported_runs(tmp_path_factory) -> Imported:
    """Both released files imported through ``python -m kerasseg import`` (in-process), once per session
    across workers (``made_once_in``: test_released.py and test_readme_commands.py may run in two)."""
    from shared_helpers import made_once_in

    root = made_once_in(tmp_path_factory, "imported", _import_released)
    return Imported(runs={name: str(root / name) for name in RELEASED},
                    outputs={name: (root / f"{name}.out").read_text() for name in RELEASED},
                    photos=str(root / "photos"))


def _import_released(root: pathlib.Path) -> None:
    import contextlib
    import io

    from kerasseg.__main__ import main

    for name, path in RELEASED.items():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["import", str(path), "--output", str(root / name)]) == 0
        (root / f"{name}.out").write_text(out.getvalue())
    photos_folder(root)


@pytest.fixture(scope="session")
def imported_int8_export(imported_runs, tmp_path_factory) -> str:
    """The int8 import re-exported by ``convert.py --int8`` (default head), calibrated on the two photos; once per
    session across workers."""
    from shared_helpers import made_once, shared_root
    from training_helpers import load_script

    run = imported_runs.runs["int8"]
    made_once(shared_root(tmp_path_factory), "imported_int8_export", lambda: _convert_int8(load_script("convert.py"),
                                                                                         run, imported_runs.photos))
    return os.path.join(run, "export", "deeplabv3plus_mobilenetv2_int8.tflite")


@dataclasses.dataclass
class CityscapesRun:
    path: str  # the run directory written by python -m kerasseg import
    output: str  # what the command printed
    seconds: float  # how long the import took


@pytest.fixture(scope="session")
def cityscapes_run(tmp_path_factory) -> CityscapesRun:
    """Google's MobileNet-EdgeTPU Cityscapes file imported through ``python -m kerasseg import``, once per session
    across workers (test_mobilenet_edgetpu.py and test_readme_commands.py may run in two)."""
    from shared_helpers import made_once_in

    root = made_once_in(tmp_path_factory, "cityscapes", _import_cityscapes)
    return CityscapesRun(path=str(root / "run"), output=(root / "run.out").read_text(),
                         seconds=float((root / "run.seconds").read_text()))


def _import_cityscapes(root: pathlib.Path) -> None:
    import contextlib
    import io
    import time

    from kerasseg.__main__ import main

    out, started = io.StringIO(), time.perf_counter()
    with contextlib.redirect_stdout(out):
        assert main(["import", str(CITYSCAPES), "--output", str(root / "run")]) == 0
    (root / "run.seconds").write_text(str(time.perf_counter() - started))
    (root / "run.out").write_text(out.getvalue())


def _convert_int8(convert, run: str, photos: str) -> None:
    assert convert.main(["--run", run, "--int8", "--dataset", f"images:{photos}",
                         "--calibration-steps", str(CALIBRATION_STEPS)]) == 0
