"""The ``.tflite`` container: metadata entries, packed files and tensors, read and written without TensorFlow.

A ``Model.metadata`` entry names a buffer; kerasseg stores its spec as JSON in one named
``kerasseg_spec`` (and writes ``MODEL.spec.json`` beside the model), and the standard TFLite
Model Metadata in one named ``TFLITE_METADATA`` (see ``standard.py``), whose files follow
the flatbuffer as a zip archive. This module walks the TFLite flatbuffer with ``struct``
alone: the schema modules of TensorFlow and ai_edge_litert take ~0.26 s to import, too slow
for the device's start-up, and not every interpreter wheel ships one.

Field numbers come from the TFLite schema (tensorflow/compiler/mlir/lite/schema/schema.fbs):
``Model { version:0, operator_codes:1, subgraphs:2, description:3, buffers:4,
metadata_buffer:5, metadata:6 }``, ``Metadata { name:0, buffer:1 }``,
``Buffer { data:0, offset:1, size:2 }``, ``OperatorCode { custom_code:1 }``.
"""
from __future__ import annotations

import dataclasses
import io
import os
import struct

SPEC_METADATA_NAME = "kerasseg_spec"
SPEC_SUFFIX = ".spec.json"
FILE_IDENTIFIER = b"TFL3"
# The fields of the TFLite Model table, in schema order (field index = position).
MODEL_FIELDS = ("version", "operator_codes", "subgraphs", "description", "buffers", "metadata_buffer", "metadata",
                "signature_defs")


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


def read_model_file(path: str | os.PathLike) -> bytes:
    """The bytes of a ``.tflite`` file; :class:`FlatbufferError` naming the file when it cannot be read."""
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as err:
        raise FlatbufferError(f"model: cannot read {os.fspath(path)!r} ({err.strerror})") from None


def model_reader(data: bytes, source: str) -> tuple[_Reader, int]:
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        found = repr(data[4:8]) if len(data) >= 8 else f"{len(data)} bytes"
        raise FlatbufferError(
            f"model {source!r} is not a TFLite flatbuffer: expected file identifier {FILE_IDENTIFIER!r} "
            f"at bytes 4..8, found {found}")
    reader = _Reader(data, source)
    return reader, reader.root()


def _readmodel_reader(path: str) -> tuple[_Reader, int]:
    return model_reader(read_model_file(path), path)


def _entries(reader: _Reader, model: int) -> dict[str, bytes]:
    buffers = reader.tables(model, 4)
    entries = {}
    for meta in reader.tables(model, 6):
        name = (reader.bytes_field(meta, 0) or b"").decode("utf-8", "replace")
        index = reader.scalar(meta, 1, "I")
        if index >= len(buffers):
            raise FlatbufferError(f"{reader.source}: metadata {name!r} points at buffer {index}, "
                                  f"but there are {len(buffers)}")
        buffer = buffers[index]
        data = reader.bytes_field(buffer, 0)
        offset, size = reader.scalar(buffer, 1, "Q"), reader.scalar(buffer, 2, "Q")
        if not data and offset > 1:  # large models keep buffers after the flatbuffer
            data = bytes(reader.data[offset:offset + size])
        entries[name] = data or b""
    return entries


def read_metadata(path: str | os.PathLike) -> dict[str, bytes]:
    """All ``Model.metadata`` entries of a ``.tflite`` file, name -> buffer bytes."""
    return _entries(*_readmodel_reader(os.fspath(path)))


def model_entries(data: bytes, *, source: str) -> dict[str, bytes]:
    """``read_metadata`` for a model already in memory (``source`` names it in errors)."""
    return _entries(*model_reader(data, source))


def custom_ops(path: str | os.PathLike) -> list[str]:
    """Names of the custom operators a model uses (``edgetpu-custom-op`` after Edge TPU compilation)."""
    path = os.fspath(path)
    reader, model = _readmodel_reader(path)
    names = []
    for code in reader.tables(model, 1):
        custom = reader.bytes_field(code, 1)
        if custom:
            names.append(custom.decode("utf-8", "replace"))
    return names


# TFLite TensorType values (schema.fbs) -> numpy dtype names, for the types an image model uses.
TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8"}


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """Shape and dtype name of a subgraph input or output, read from the flatbuffer."""

    shape: tuple[int, ...]
    dtype: str


def io_tensors(content: bytes, *, source: str) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """(inputs, outputs) of the model's first subgraph.

    Fields: ``SubGraph { tensors:0, inputs:1, outputs:2 }``, ``Tensor { shape:0, type:1 }``.
    """
    reader, model = model_reader(content, source)
    subgraphs = reader.tables(model, 2)
    if not subgraphs:
        raise FlatbufferError(f"{source}: the model has no subgraph")
    graph = subgraphs[0]
    tensors = reader.tables(graph, 0)

    def describe(index_field: int) -> list[TensorInfo]:
        start, length = reader.vector(graph, index_field)
        infos = []
        for i in range(length):
            tensor = tensors[reader._unpack("i", start + 4 * i)]
            shape_start, rank = reader.vector(tensor, 0)
            shape = tuple(reader._unpack("i", shape_start + 4 * k) for k in range(rank))
            code = reader.scalar(tensor, 1, "b")
            infos.append(TensorInfo(shape=shape, dtype=TENSOR_TYPES.get(code, f"tensor type {code}")))
        return infos

    return describe(1), describe(2)


def _archive(data: bytes):
    """The zip archive appended to the flatbuffer (the associated files), or None."""
    if data.rfind(b"PK\x05\x06", max(0, len(data) - 65557)) < 0:  # no end-of-central-directory record
        return None
    import zipfile  # only for models that carry files

    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile:  # the signature occurred by chance inside the model's weights, or a broken archive
        return None


def split_archive(content: bytes, *, source: str) -> tuple[bytes, dict[str, bytes]]:
    """(the flatbuffer, the files packed after it as a zip archive)."""
    archive = _archive(content)
    if archive is None:
        return content, {}
    try:
        with archive:
            start = min((info.header_offset for info in archive.infolist()), default=len(content))
            return content[:start], {name: archive.read(name) for name in archive.namelist()}
    except (ValueError, OSError, EOFError) as err:  # zipfile.BadZipFile is a ValueError
        raise FlatbufferError(f"{source}: the associated files appended to the model are corrupt ({err})") from None


def associated_files(content: bytes, *, source: str) -> dict[str, bytes]:
    """The files packed after the flatbuffer as a zip archive (TFLite Model Metadata's associated files)."""
    return split_archive(content, source=source)[1]


def spec_path_beside(model_path: str | os.PathLike) -> str:
    """``dir/MODEL.spec.json`` for ``dir/MODEL.tflite``."""
    root, _ = os.path.splitext(os.fspath(model_path))
    return root + SPEC_SUFFIX


__all__ = ["MODEL_FIELDS", "SPEC_METADATA_NAME", "FlatbufferError", "TensorInfo", "associated_files", "custom_ops",
           "io_tensors", "model_entries", "model_reader", "read_metadata", "read_model_file", "spec_path_beside",
           "split_archive"]
