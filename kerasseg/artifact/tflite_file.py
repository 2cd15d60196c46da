"""Read a kerasseg spec from a ``.tflite`` file, without TensorFlow.

The export step stores ``Spec.to_dict()`` as UTF-8 JSON in a ``Model.metadata``
entry named ``kerasseg_spec`` and also writes ``MODEL.spec.json`` beside the
model. This module walks the TFLite flatbuffer with ``struct`` alone (the
schema module is not shipped by every interpreter wheel), so it runs
wherever the interpreter runs.

Field numbers come from the TFLite schema (tensorflow/compiler/mlir/lite/schema/schema.fbs):
``Model { version:0, operator_codes:1, subgraphs:2, description:3, buffers:4,
metadata_buffer:5, metadata:6 }``, ``Metadata { name:0, buffer:1 }``,
``Buffer { data:0, offset:1, size:2 }``, ``OperatorCode { custom_code:1 }``.
"""
from __future__ import annotations

import os
import struct

from kerasseg.artifact.spec import Spec, SpecError

SPEC_METADATA_NAME = "kerasseg_spec"
SPEC_SUFFIX = ".spec.json"
FILE_IDENTIFIER = b"TFL3"


class FlatbufferError(ValueError):
    """Bytes that are not a well-formed TFLite flatbuffer."""


class _Reader:
    """Just enough of the flatbuffers wire format to read tables, strings and vectors."""

    def __init__(self, data: bytes, source: str):
        self.data = data
        self.source = source

    def _unpack(self, fmt: str, pos: int):
        try:
            return struct.unpack_from("<" + fmt, self.data, pos)[0]
        except struct.error:
            raise FlatbufferError(f"{self.source}: truncated or corrupt flatbuffer (read past the end at {pos})") from None

    def root(self) -> int:
        return self._unpack("I", 0)

    def field(self, table: int, index: int) -> int | None:
        """Absolute position of field ``index`` of the table at ``table``, or None when absent."""
        vtable = table - self._unpack("i", table)
        vtable_size = self._unpack("H", vtable)
        slot = 4 + 2 * index
        if slot >= vtable_size:
            return None
        offset = self._unpack("H", vtable + slot)
        return table + offset if offset else None

    def scalar(self, table: int, index: int, fmt: str, default=0):
        pos = self.field(table, index)
        return default if pos is None else self._unpack(fmt, pos)

    def indirect(self, pos: int) -> int:
        return pos + self._unpack("I", pos)

    def vector(self, table: int, index: int) -> tuple[int, int]:
        """(start of elements, length) of a vector field; (0, 0) when absent."""
        pos = self.field(table, index)
        if pos is None:
            return 0, 0
        start = self.indirect(pos)
        length = self._unpack("I", start)
        if start + 4 + length > len(self.data):
            raise FlatbufferError(f"{self.source}: vector of {length} elements runs past the end of the file")
        return start + 4, length

    def tables(self, table: int, index: int) -> list[int]:
        start, length = self.vector(table, index)
        return [self.indirect(start + 4 * i) for i in range(length)]

    def bytes_field(self, table: int, index: int) -> bytes | None:
        if self.field(table, index) is None:
            return None
        start, length = self.vector(table, index)
        return bytes(self.data[start:start + length])


def _read_model(path: str) -> tuple[_Reader, int]:
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as err:
        raise FlatbufferError(f"model: cannot read {path!r} ({err.strerror})") from None
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        found = repr(data[4:8]) if len(data) >= 8 else f"{len(data)} bytes"
        raise FlatbufferError(
            f"model {path!r} is not a TFLite flatbuffer: expected file identifier {FILE_IDENTIFIER!r} "
            f"at bytes 4..8, found {found}")
    reader = _Reader(data, path)
    return reader, reader.root()


def read_metadata(path: str | os.PathLike) -> dict[str, bytes]:
    """All ``Model.metadata`` entries of a ``.tflite`` file, name -> buffer bytes."""
    path = os.fspath(path)
    reader, model = _read_model(path)
    buffers = reader.tables(model, 4)
    entries = {}
    for meta in reader.tables(model, 6):
        name = (reader.bytes_field(meta, 0) or b"").decode("utf-8", "replace")
        index = reader.scalar(meta, 1, "I")
        if index >= len(buffers):
            raise FlatbufferError(f"{path}: metadata {name!r} points at buffer {index}, but there are {len(buffers)}")
        buffer = buffers[index]
        data = reader.bytes_field(buffer, 0)
        offset, size = reader.scalar(buffer, 1, "Q"), reader.scalar(buffer, 2, "Q")
        if not data and offset > 1:  # large models keep buffers after the flatbuffer
            data = bytes(reader.data[offset:offset + size])
        entries[name] = data or b""
    return entries


def custom_ops(path: str | os.PathLike) -> list[str]:
    """Names of the custom operators a model uses (``edgetpu-custom-op`` after Edge TPU compilation)."""
    path = os.fspath(path)
    reader, model = _read_model(path)
    names = []
    for code in reader.tables(model, 1):
        custom = reader.bytes_field(code, 1)
        if custom:
            names.append(custom.decode("utf-8", "replace"))
    return names


def spec_path_beside(model_path: str | os.PathLike) -> str:
    """``dir/MODEL.spec.json`` for ``dir/MODEL.tflite``."""
    root, _ = os.path.splitext(os.fspath(model_path))
    return root + SPEC_SUFFIX


def load_spec(model_path: str | os.PathLike) -> tuple[Spec | None, str | None]:
    """The model's spec and where it came from, or ``(None, None)`` for a foreign model.

    The entry embedded in the model wins over the JSON file beside it. A spec
    that is present but malformed raises :class:`SpecError` rather than being
    skipped.
    """
    model_path = os.fspath(model_path)
    entries = read_metadata(model_path)
    if SPEC_METADATA_NAME in entries:
        where = f"{model_path} (metadata {SPEC_METADATA_NAME!r})"
        return Spec.from_json(entries[SPEC_METADATA_NAME], source=where), where
    beside = spec_path_beside(model_path)
    if os.path.exists(beside):
        return Spec.load(beside), beside
    return None, None


__all__ = ["SPEC_METADATA_NAME", "FlatbufferError", "SpecError", "custom_ops", "load_spec", "read_metadata",
           "spec_path_beside"]
