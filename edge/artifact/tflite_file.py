"""The ``.tflite`` container: metadata entries, packed files and tensors, read and written without TensorFlow.

A ``Model.metadata`` entry names a buffer; kerasseg stores its spec as JSON in one named
``kerasseg_spec`` (and writes ``MODEL.spec.json`` beside the model), and the standard TFLite
Model Metadata in one named ``TFLITE_METADATA`` (see ``standard.py``), whose files follow
the flatbuffer as a zip archive. This module walks the TFLite flatbuffer with ``struct``
alone: the schema modules of TensorFlow and ai_edge_litert take ~0.26 s to import, too slow
for the device's start-up, and not every interpreter wheel ships one.

This is the one TFLite flatbuffer reader: the device's metadata code (``contents.py``, ``standard.py``), the
metadata writer (``writer.py``) and the graph reader of the training side (``tflite_graph.py``, for the importer)
all walk the file through :class:`FlatbufferReader` and the Model-level functions here (buffers, operator codes,
tensors).

Field numbers come from the TFLite schema (tensorflow/compiler/mlir/lite/schema/schema.fbs):
``Model { version:0, operator_codes:1, subgraphs:2, description:3, buffers:4,
metadata_buffer:5, metadata:6 }``, ``Metadata { name:0, buffer:1 }``,
``Buffer { data:0, offset:1, size:2 }``,
``OperatorCode { deprecated_builtin_code:0, custom_code:1, version:2, builtin_code:3 }``,
``SubGraph { tensors:0, inputs:1, outputs:2, operators:3 }``, ``Tensor { shape:0, type:1, buffer:2, name:3 }``.
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


class FlatbufferReader:
    """Just enough of the flatbuffers wire format to read tables, strings and vectors.

    Positions are absolute byte offsets into ``data``; a read past the end is a :class:`FlatbufferError`
    naming ``source``.
    """

    def __init__(self, data: bytes, source: str):
        self.data = data
        self.source = source

    def unpack(self, fmt: str, pos: int):
        """One little-endian ``struct`` value at ``pos``."""
        try:
            return struct.unpack_from("<" + fmt, self.data, pos)[0]
        except struct.error:
            raise FlatbufferError(f"{self.source}: truncated or corrupt flatbuffer (read past the end at {pos})") from None

    def root(self) -> int:
        return self.unpack("I", 0)

    def vtable_size(self, table: int) -> int:
        """The size in bytes of the table's vtable: 4 + 2 x the number of fields it was written with."""
        return self.unpack("H", table - self.unpack("i", table))

    def field(self, table: int, index: int) -> int | None:
        """Absolute position of field ``index`` of the table at ``table``, or None when absent."""
        vtable = table - self.unpack("i", table)
        slot = 4 + 2 * index
        if slot >= self.unpack("H", vtable):
            return None
        offset = self.unpack("H", vtable + slot)
        return table + offset if offset else None

    def scalar(self, table: int, index: int, fmt: str, default=0):
        pos = self.field(table, index)
        return default if pos is None else self.unpack(fmt, pos)

    def indirect(self, pos: int) -> int:
        return pos + self.unpack("I", pos)

    def vector(self, table: int, index: int) -> tuple[int, int]:
        """(start of elements, length) of a vector field; (0, 0) when absent."""
        pos = self.field(table, index)
        if pos is None:
            return 0, 0
        start = self.indirect(pos)
        length = self.unpack("I", start)
        if start + 4 + length > len(self.data):
            raise FlatbufferError(f"{self.source}: vector of {length} elements runs past the end of the file")
        return start + 4, length

    def ints(self, table: int, index: int, fmt: str = "i", size: int = 4) -> tuple:
        """A vector field of scalars (``fmt`` of ``size`` bytes each); () when absent."""
        start, length = self.vector(table, index)
        return tuple(self.unpack(fmt, start + size * i) for i in range(length))

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


def model_reader(data: bytes, source: str) -> tuple[FlatbufferReader, int]:
    """The reader of the TFLite flatbuffer ``data`` and the position of its Model table."""
    if len(data) < 8 or data[4:8] != FILE_IDENTIFIER:
        found = repr(data[4:8]) if len(data) >= 8 else f"{len(data)} bytes"
        raise FlatbufferError(
            f"model {source!r} is not a TFLite flatbuffer: expected file identifier {FILE_IDENTIFIER!r} "
            f"at bytes 4..8, found {found}")
    reader = FlatbufferReader(data, source)
    return reader, reader.root()


def _readmodel_reader(path: str) -> tuple[FlatbufferReader, int]:
    return model_reader(read_model_file(path), path)


def buffer_data(reader: FlatbufferReader, buffer: int) -> bytes:
    """The bytes of the Buffer table at ``buffer``: inside the flatbuffer, or (models over 2 GB) at its
    ``offset`` and ``size`` after it."""
    data = reader.bytes_field(buffer, 0)
    offset, size = reader.scalar(buffer, 1, "Q"), reader.scalar(buffer, 2, "Q")
    if not data and offset > 1:  # large models keep buffers after the flatbuffer
        data = bytes(reader.data[offset:offset + size])
    return data or b""


def _entries(reader: FlatbufferReader, model: int) -> dict[str, bytes]:
    buffers = reader.tables(model, 4)
    entries = {}
    for meta in reader.tables(model, 6):
        name = (reader.bytes_field(meta, 0) or b"").decode("utf-8", "replace")
        index = reader.scalar(meta, 1, "I")
        if index >= len(buffers):
            raise FlatbufferError(f"{reader.source}: metadata {name!r} points at buffer {index}, "
                                  f"but there are {len(buffers)}")
        entries[name] = buffer_data(reader, buffers[index])
    return entries


def read_metadata(path: str | os.PathLike) -> dict[str, bytes]:
    """All ``Model.metadata`` entries of a ``.tflite`` file, name -> buffer bytes."""
    return _entries(*_readmodel_reader(os.fspath(path)))


def model_entries(data: bytes, *, source: str) -> dict[str, bytes]:
    """``read_metadata`` for a model already in memory (``source`` names it in errors)."""
    return _entries(*model_reader(data, source))


# BuiltinOperator values for the operators a segmentation graph uses (others are named by number).
BUILTIN_OPERATORS = {0: "ADD", 1: "AVERAGE_POOL_2D", 2: "CONCATENATION", 3: "CONV_2D", 4: "DEPTHWISE_CONV_2D",
                     6: "DEQUANTIZE", 18: "MUL", 22: "RESHAPE", 23: "RESIZE_BILINEAR", 25: "SOFTMAX", 34: "PAD",
                     40: "MEAN", 41: "SUB", 49: "SPLIT", 56: "ARG_MAX", 97: "RESIZE_NEAREST_NEIGHBOR",
                     114: "QUANTIZE", 117: "HARD_SWISH", 150: "BATCH_MATMUL"}


@dataclasses.dataclass(frozen=True)
class OperatorCode:
    """One entry of ``Model.operator_codes``: a builtin operator, or a custom one by its name."""

    builtin: int
    custom: str | None

    @property
    def name(self) -> str:
        """The custom code, else the BuiltinOperator name (its number for one not in ``BUILTIN_OPERATORS``)."""
        return self.custom if self.custom else BUILTIN_OPERATORS.get(self.builtin, str(self.builtin))


def operator_codes(reader: FlatbufferReader, model: int) -> list[OperatorCode]:
    """The model's operator codes, in order (an operator's ``opcode_index`` points into them).

    The builtin code is the larger of the deprecated int8 field and the int32 one (schema 3a).
    """
    codes = []
    for code in reader.tables(model, 1):
        custom = reader.bytes_field(code, 1)
        codes.append(OperatorCode(builtin=max(reader.scalar(code, 0, "b"), reader.scalar(code, 3, "i")),
                                  custom=custom.decode("utf-8", "replace") if custom else None))
    return codes


def custom_ops(path: str | os.PathLike) -> list[str]:
    """Names of the custom operators a model uses (``edgetpu-custom-op`` after Edge TPU compilation)."""
    return [code.custom for code in operator_codes(*_readmodel_reader(os.fspath(path))) if code.custom]


# TFLite TensorType values (schema.fbs) -> numpy dtype names, for the types an image model uses.
TENSOR_TYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 7: "int16", 9: "int8"}


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """Shape and dtype name of a subgraph input or output, read from the flatbuffer."""

    shape: tuple[int, ...]
    dtype: str


def tensor_info(reader: FlatbufferReader, tensor: int) -> TensorInfo:
    """Shape and dtype name of the Tensor table at ``tensor``."""
    code = reader.scalar(tensor, 1, "b")
    return TensorInfo(shape=reader.ints(tensor, 0), dtype=TENSOR_TYPES.get(code, f"tensor type {code}"))


def first_subgraph(reader: FlatbufferReader, model: int) -> int:
    """The SubGraph table the interpreter runs; :class:`FlatbufferError` when the model has none."""
    subgraphs = reader.tables(model, 2)
    if not subgraphs:
        raise FlatbufferError(f"{reader.source}: the model has no subgraph")
    return subgraphs[0]


def io_tensors(content: bytes, *, source: str) -> tuple[list[TensorInfo], list[TensorInfo]]:
    """(inputs, outputs) of the model's first subgraph."""
    reader, model = model_reader(content, source)
    graph = first_subgraph(reader, model)
    tensors = reader.tables(graph, 0)
    return ([tensor_info(reader, tensors[i]) for i in reader.ints(graph, 1)],
            [tensor_info(reader, tensors[i]) for i in reader.ints(graph, 2)])


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


__all__ = ["BUILTIN_OPERATORS", "MODEL_FIELDS", "SPEC_METADATA_NAME", "TENSOR_TYPES", "FlatbufferError",
           "FlatbufferReader", "OperatorCode", "TensorInfo", "associated_files", "buffer_data", "custom_ops",
           "first_subgraph", "io_tensors", "model_entries", "model_reader", "operator_codes", "read_metadata",
           "read_model_file", "spec_path_beside", "split_archive", "tensor_info"]
