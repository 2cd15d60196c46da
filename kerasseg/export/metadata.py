"""The spec inside a ``.tflite`` file.

The spec's JSON is stored in a buffer referenced by a ``Model.metadata`` entry
named ``kerasseg_spec`` (TFLite flatbuffer schema), so one file carries its
labels, colours, input size and output kind. The edge runtime reads the same
entry with a flatbuffer parser and no TensorFlow.
"""
from __future__ import annotations

import os

import numpy as np
from tensorflow.lite.python import schema_py_generated as schema
from tensorflow.lite.tools import flatbuffer_utils

from kerasseg.artifact import Spec, SpecError

METADATA_NAME = "kerasseg_spec"


def _as_model(content: bytes | bytearray, *, source: str):
    try:
        model = flatbuffer_utils.convert_bytearray_to_object(bytearray(content))
    except Exception as err:  # the flatbuffer reader raises many types on garbage
        raise ValueError(f"{source}: not a valid TFLite flatbuffer ({type(err).__name__}: {err})") from None
    if not model.subgraphs:
        raise ValueError(f"{source}: TFLite model has no subgraph")
    return model


def read_tflite(path: str | os.PathLike) -> bytes:
    """Read a ``.tflite`` file, raising a clear error if it is missing."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no TFLite model at {path}")
    with open(path, "rb") as f:
        return f.read()


def embed_spec(content: bytes, spec: Spec) -> bytes:
    """Return ``content`` with ``spec`` stored as the ``kerasseg_spec`` metadata entry.

    An existing ``kerasseg_spec`` entry is replaced, never duplicated.
    """
    model = _as_model(content, source="embed_spec")
    payload = spec.to_json().encode("utf-8")
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(payload, dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    kept = [m for m in (model.metadata or []) if _name(m) != METADATA_NAME]
    model.metadata = kept + [entry]
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _name(entry) -> str:
    name = entry.name
    return name.decode("utf-8") if isinstance(name, bytes) else str(name)


def read_spec(source: bytes | str | os.PathLike) -> Spec:
    """The spec stored in a ``.tflite`` file (path) or its bytes."""
    label = "tflite bytes"
    if isinstance(source, (str, os.PathLike)):
        label = os.fspath(source)
        source = read_tflite(source)
    model = _as_model(source, source=label)
    for entry in model.metadata or []:
        if _name(entry) == METADATA_NAME:
            data = model.buffers[entry.buffer].data
            if data is None:
                raise SpecError(f"{label}: metadata {METADATA_NAME!r} points at an empty buffer")
            return Spec.from_json(bytes(np.asarray(data, dtype=np.uint8)), source=f"{label}:{METADATA_NAME}")
    names = [_name(m) for m in model.metadata or []]
    raise SpecError(f"{label}: no {METADATA_NAME!r} metadata entry (entries present: {names})")
