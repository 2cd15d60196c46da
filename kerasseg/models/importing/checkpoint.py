"""DeepLab model-zoo TF1 checkpoints -> :class:`Official` weights (batch norm unfolded).

A source is the downloaded ``.tar.gz`` (its checkpoint is extracted to a temporary folder and read with
``tf.train.load_checkpoint``), the folder it unpacks to, or the checkpoint prefix (``.../model.ckpt``).
Variables are ``SCOPE/weights`` (``SCOPE/depthwise_weights``), ``SCOPE/biases`` and
``SCOPE/BatchNorm/{gamma,beta,moving_mean,moving_variance}``; anything else (``global_step``, optimizer
slots such as ``.../weights/Momentum``) is left out.
"""
from __future__ import annotations

import glob
import os
import tarfile
import tempfile
import zlib

from kerasseg.models.importing.names import BATCH_NORM, Official

ARCHIVE_SUFFIXES = (".tar.gz", ".tgz", ".tar")
_LEAVES = {"weights": "weights", "depthwise_weights": "weights", "biases": "biases"}


def _prefix_in(folder: str, source: str) -> str:
    """The one checkpoint prefix in ``folder`` (a ``PREFIX.index`` file)."""
    indexes = sorted(glob.glob(os.path.join(folder, "**", "*.index"), recursive=True))
    if len(indexes) != 1:
        raise ValueError(f"source {source}: expected one TF1 checkpoint (a .index file) inside, found "
                         f"{len(indexes)}{': ' + ', '.join(map(os.path.basename, indexes)) if indexes else ''}")
    return indexes[0][: -len(".index")]


def _extract(archive: str, folder: str) -> str:
    """Extract the checkpoint files of a model-zoo archive into ``folder``; their prefix."""
    try:
        with tarfile.open(archive, "r:*") as tar:
            members = tar.getmembers()  # reads the whole archive: a truncated one fails here
            wanted = [m for m in members if m.isfile() and (".ckpt" in m.name or m.name.endswith(".index")
                                                           or ".data-" in m.name)]
            tar.extractall(folder, members=wanted, filter="data")
    except (tarfile.TarError, EOFError, zlib.error, OSError) as err:
        raise ValueError(f"source {archive}: not a readable .tar.gz, truncated or corrupt "
                         f"({type(err).__name__}: {err})") from None
    return _prefix_in(folder, archive)


def _read(prefix: str, source: str) -> Official:
    from kerasseg.backend import tf

    try:
        reader = tf.train.load_checkpoint(prefix)
        names = sorted(reader.get_variable_to_shape_map())
        tensors = {}
        for name in names:
            scope, _, leaf = name.rpartition("/")
            if leaf in _LEAVES and scope:
                tensors.setdefault(scope, {})[_LEAVES[leaf]] = reader.get_tensor(name)
            elif leaf in BATCH_NORM and scope.endswith("/BatchNorm"):
                tensors.setdefault(scope[: -len("/BatchNorm")], {})[leaf] = reader.get_tensor(name)
    except (tf.errors.OpError, ValueError) as err:
        raise ValueError(f"source {source}: not a readable TF1 checkpoint ({str(err).splitlines()[0][:200]})") \
            from None
    return Official(tensors=tensors, folded=False, source=source)


def read_checkpoint(path: str) -> Official:
    """The weights of a model-zoo ``.tar.gz``, its folder or a checkpoint prefix, under official names."""
    if path.endswith(ARCHIVE_SUFFIXES):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"source: no such file: {path}")
        with tempfile.TemporaryDirectory(prefix="kerasseg-checkpoint-") as folder:
            return _read(_extract(path, folder), path)
    if os.path.isdir(path):
        if os.path.isfile(os.path.join(path, "config.yaml")):
            raise ValueError(f"source {path}: a kerasseg run directory, no TF1 checkpoint; evaluate.py, predict.py, "
                             f"convert.py and train.py --init-from take it as it is")
        return _read(_prefix_in(path, path), path)
    if os.path.isfile(path + ".index"):
        return _read(path, path)
    raise FileNotFoundError(f"source: {path} is neither a .tflite file, a model-zoo .tar.gz, a folder holding "
                            f"a checkpoint nor a checkpoint prefix (no {path}.index)")
