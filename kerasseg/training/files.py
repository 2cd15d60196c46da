"""Atomic file writes: a reader never sees a half-written file, and a crash never destroys the previous one."""
from __future__ import annotations

import contextlib
import json
import os

import yaml


@contextlib.contextmanager
def atomic_path(path: str):
    """Yield a temporary path beside ``path`` (same extension); it replaces ``path`` only if the block succeeds."""
    root, ext = os.path.splitext(path)
    tmp = f"{root}.tmp-{os.getpid()}{ext}"
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def write_text(path: str, text: str) -> str:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    return path


def write_json(path: str, data) -> str:
    return write_text(path, json.dumps(data, indent=2, allow_nan=False) + "\n")


def write_yaml(path: str, data) -> str:
    return write_text(path, yaml.safe_dump(data, sort_keys=False))
