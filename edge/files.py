"""Atomic file writes, the one way the project writes a file (training, export and device): a reader never sees a
half-written file, and a crash never destroys the previous one. Plain Python, so the device can use it."""
from __future__ import annotations

import contextlib
import json
import os


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike):
    """Yield a temporary path beside ``path`` (same extension); it replaces ``path`` only if the block succeeds."""
    path = os.fspath(path)
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp-{os.getpid()}{ext}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_bytes(path: str | os.PathLike, content: bytes, *, durable: bool = True) -> str:
    """Write ``content`` to ``path`` atomically, and durably (flushed to the disk first) unless ``durable`` is
    False, as for a camera's per-frame files, where a sync per frame would cost more than the frame; returns
    ``path``."""
    path = os.fspath(path)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(content)
            if durable:
                f.flush()
                os.fsync(f.fileno())
    return path


def write_text(path: str | os.PathLike, text: str) -> str:
    return write_bytes(path, text.encode("utf-8"))


def write_json(path: str, data) -> str:
    return write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def write_yaml(path: str, data) -> str:
    import yaml

    return write_text(path, yaml.safe_dump(data, sort_keys=False))
