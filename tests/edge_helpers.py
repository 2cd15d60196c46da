"""Tiny .tflite segmentation models for the edge tests (tests/conftest.py makes them once per session).

Every model reads raw RGB pixels (0..255) and scores class c by colour
channel c: class 0 "red", 1 "green", 2 "blue". So a red frame segments as 0,
a blue one as 2, and tests can predict every pixel. The input is 24x32
(height != width, so a swapped size shows up).
"""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys

import cv2
import numpy as np

from edge.files import write_bytes

H, W = 24, 32
LABELS = ("red", "green", "blue")
# BGR frames (OpenCV order) and the class each one segments as.
RED, GREEN, BLUE = (0, 0, 255), (0, 255, 0), (255, 0, 0)


@dataclasses.dataclass
class Models:
    root: str
    float32: str  # (1, H, W, 3) float scores
    uint8: str  # uint8 in, uint8 scores out
    int8: str  # int8 in, int8 scores out
    probability: str  # (1, H, W, 1) float, P(class 1) = red / 255
    probability_uint8: str  # the same, uint8 in and out
    class_ids: str  # (1, H, W) int32 ids
    classifier: str  # (1, 10): not a segmentation model
    spec_embedded: str  # float32 model with a kerasseg_spec metadata entry
    artifact: str  # uint8 model as export writes it: spec + standard TFLite Model Metadata + labels.txt
    float32_bytes: bytes = b""


def _keras_models():
    from kerasseg.backend import keras, tf

    inputs = keras.Input((H, W, 3), batch_size=1)
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    identity = keras.layers.Conv2D(3, 1, use_bias=False, kernel_initializer=keras.initializers.Constant(np.eye(3).reshape(1, 1, 3, 3)),
                                   name="scores")
    scores = identity(x)
    scores_model = keras.Model(inputs, scores)
    red = keras.layers.Conv2D(1, 1, use_bias=False, kernel_initializer=keras.initializers.Constant(np.array([1.0, 0.0, 0.0]).reshape(1, 1, 3, 1)))
    probability_model = keras.Model(inputs, red(x))
    ids = keras.layers.Lambda(lambda s: tf.cast(tf.argmax(s, axis=-1), tf.int32))(scores)
    ids_model = keras.Model(inputs, ids)
    pooled = keras.layers.GlobalAveragePooling2D()(scores)
    classifier = keras.Model(inputs, keras.layers.Dense(10)(pooled))
    return tf, scores_model, probability_model, ids_model, classifier


def _convert(tf, model, *, quantize: str | None = None) -> bytes:
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if quantize:
        rng = np.random.default_rng(0)

        def representative():
            for _ in range(8):
                yield [rng.integers(0, 256, (1, H, W, 3)).astype(np.float32)]
            for color in ((255, 0, 0), (0, 255, 0), (0, 0, 255), (0, 0, 0), (255, 255, 255)):
                yield [np.broadcast_to(np.float32(color), (1, H, W, 3)).copy()]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        dtype = {"uint8": tf.uint8, "int8": tf.int8}[quantize]
        converter.inference_input_type = dtype
        converter.inference_output_type = dtype
    return converter.convert()


def embed_metadata(model: bytes, name: str, data: bytes) -> bytes:
    """Add a ``Model.metadata`` entry (name -> new buffer) to a .tflite flatbuffer, with TF's own schema."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    tree = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(data, np.uint8)
    tree.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = name
    entry.buffer = len(tree.buffers) - 1
    tree.metadata = (tree.metadata or []) + [entry]
    builder = flatbuffers.Builder(len(model) + len(data) + 1024)
    builder.Finish(tree.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def spec_for_tiny(**changes):
    from edge.artifact import Spec

    fields = dict(labels=LABELS, input_size=(H, W), mean=(0, 0, 0), std=(255, 255, 255))
    fields.update(changes)
    return Spec(**fields)


def make_models(root: str) -> Models:
    os.makedirs(root, exist_ok=True)
    tf, scores_model, probability_model, ids_model, classifier = _keras_models()
    blobs = {
        "float32": _convert(tf, scores_model),
        "uint8": _convert(tf, scores_model, quantize="uint8"),
        "int8": _convert(tf, scores_model, quantize="int8"),
        "probability": _convert(tf, probability_model),
        "probability_uint8": _convert(tf, probability_model, quantize="uint8"),
        "class_ids": _convert(tf, ids_model),
        "classifier": _convert(tf, classifier),
    }
    blobs["spec_embedded"] = embed_metadata(blobs["float32"], "kerasseg_spec",
                                            spec_for_tiny().to_json().encode("utf-8"))
    from edge.artifact import embed_spec
    blobs["artifact"] = embed_spec(blobs["uint8"], spec_for_tiny())
    paths = {name: write_bytes(os.path.join(root, f"{name}.tflite"), blob) for name, blob in blobs.items()}
    return Models(root=root, float32_bytes=blobs["float32"], **paths)


def stripe_edges(width: int) -> tuple[int, int]:
    """Column where green starts and where blue starts (multiples of 8 when width is, so resizing keeps them)."""
    return width // 4, width * 5 // 8


def stripes_frame(height: int = 48, width: int = 64) -> np.ndarray:
    """A BGR frame: red, then green, then blue vertical stripes."""
    frame = np.zeros((height, width, 3), np.uint8)
    a, b = stripe_edges(width)
    frame[:, :a] = RED
    frame[:, a:b] = GREEN
    frame[:, b:] = BLUE
    return frame


def expected_stripes(height: int = 48, width: int = 64) -> np.ndarray:
    ids = np.zeros((height, width), np.uint8)
    a, b = stripe_edges(width)
    ids[:, a:b] = 1
    ids[:, b:] = 2
    return ids


def write_video(path: str, *, frames: int, height: int = 48, width: int = 64, fps: float = 10.0) -> str:
    """An MJPG .avi of ``frames`` stripe frames (a moving grey bar keeps frames distinct)."""
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), fps, (width, height))
    assert writer.isOpened(), f"cannot write {path}"
    for i in range(frames):
        frame = stripes_frame(height, width)
        frame[: height // 8, (i * 3) % width: (i * 3) % width + 2] = 128
        writer.write(frame)
    writer.release()
    return path


def read_video(path) -> list[np.ndarray]:
    """Every frame of a video file, decoded (BGR)."""
    capture = cv2.VideoCapture(str(path))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    return frames


def run_edge(*args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    """``python -m edge ARGS`` in a subprocess from the repository root."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    full_env = dict(os.environ, **(env or {}))
    full_env["PYTHONPATH"] = root + os.pathsep + full_env.get("PYTHONPATH", "")
    return subprocess.run([sys.executable, "-m", "edge", *args], cwd=root, capture_output=True, text=True,
                          timeout=timeout, env=full_env)


# Native-head models: the same colour scores, averaged over 4x4 blocks, so the output is the
# classifier-resolution map ceil(input / 4) a side. 26x30 is not a multiple of 4, so the three
# output alignments place that map differently.
NATIVE_STRIDE = 4
NH, NW = 26, 30
NATIVE_OUT = (-(-NH // NATIVE_STRIDE), -(-NW // NATIVE_STRIDE))


@dataclasses.dataclass
class NativeModels:
    float32: str  # (1, 7, 8, 3) float scores
    uint8: str  # uint8 in, uint8 scores out (as full-integer artifacts are)
    ids: str  # (1, 7, 8) uint8 class ids (an ARG_MAX head)


def spec_for_native(**changes):
    fields = dict(input_size=(NH, NW), output_stride=NATIVE_STRIDE, output_alignment="half_pixel")
    fields.update(changes)
    return spec_for_tiny(**fields)


def make_native_models(root: str) -> NativeModels:
    from kerasseg.backend import keras, tf

    inputs = keras.Input((NH, NW, 3), batch_size=1)
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.AveragePooling2D(NATIVE_STRIDE, strides=NATIVE_STRIDE, padding="same")(x)
    scores = keras.layers.Conv2D(3, 1, use_bias=False, name="scores",
                                 kernel_initializer=keras.initializers.Constant(np.eye(3).reshape(1, 1, 3, 3)))(x)
    ids = keras.layers.Lambda(lambda s: tf.cast(tf.argmax(s, axis=-1), tf.uint8))(scores)
    scores_model, ids_model = keras.Model(inputs, scores), keras.Model(inputs, ids)
    os.makedirs(root, exist_ok=True)
    paths = {}
    for name, model, quantize in (("float32", scores_model, None), ("uint8", scores_model, "uint8"),
                                  ("ids", ids_model, None)):
        converter = tf.lite.TFLiteConverter.from_keras_model(model)
        if quantize:
            rng = np.random.default_rng(0)
            converter.optimizations = [tf.lite.Optimize.DEFAULT]
            converter.representative_dataset = lambda: (
                [rng.integers(0, 256, (1, NH, NW, 3)).astype(np.float32)] for _ in range(8))
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            converter.inference_input_type = converter.inference_output_type = tf.uint8
        paths[name] = write_bytes(os.path.join(root, f"native_{name}.tflite"), converter.convert())
    return NativeModels(**paths)

