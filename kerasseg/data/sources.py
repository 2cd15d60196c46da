"""``open_dataset``: a dataset URI to a :class:`DatasetSource`.

URIs are ``SCHEME[:ARGUMENT][?key=value&key=value]``:

- ``synthetic`` (default), ``synthetic:N`` (N train images), options ``train``,
  ``val``, ``size`` (side in pixels, or HxW; default 64) and ``seed``;
- ``voc:PATH``: a PASCAL VOC directory (VOCdevkit/VOC2012 or one that holds it), or the VOC-style
  export of an annotation tool (labelme, CVAT); options ``val_fraction`` (used when there are no
  train/val lists) and ``colormap`` (a ``name:R,G,B`` file for colour masks);
- ``folder:PATH``: ``images/`` and ``masks/`` paired by stem; options ``val_fraction`` and ``colormap``;
- ``coco:PATH``: COCO segmentation JSON (a dataset-hub export, the COCO layout or one JSON file);
  options ``val_fraction`` (for one file) and ``annotations`` (instances or stuff);
- ``ade20k:PATH``: ADE20K SceneParsing (``ADEChallengeData2016``);
- ``images:PATH``: a folder of images without masks, for ``convert.py``'s calibration and parity only;
- ``tfds:NAME`` for NAME in oxford_iiit_pet, scene_parse150, cityscapes; options
  ``data_dir`` and ``manual_dir`` (Cityscapes' downloaded zips), ``download`` (0/1).
"""
from __future__ import annotations

import os
import sys

from kerasseg.data.base import DatasetSource, parse_options
from kerasseg.rundir.run import CONFIG_FILENAME

SCHEMES = ("synthetic", "voc", "folder", "coco", "ade20k", "images", "tfds")
FILE_OPTIONS = {"val_fraction": float, "colormap": str}
DEFAULT_URI = "synthetic"


def open_dataset(uri: str = DEFAULT_URI, *, seed: int = 0, skip_bad_files: bool = False) -> DatasetSource:
    """Open the dataset named by ``uri`` (see the module docstring).

    ``seed`` fixes whatever the dataset draws at random: the synthetic images
    (unless the URI sets ``seed``) and a folder dataset's train/val split.
    With ``skip_bad_files`` a file that fails to load is skipped and recorded in
    ``source.bad_files`` instead of stopping the pipeline.
    """
    if not isinstance(uri, str) or not uri:
        raise ValueError(f"dataset: expected a URI such as 'synthetic' or 'voc:PATH', got {uri!r}; "
                         f"valid schemes are {SCHEMES}")
    base, _, query = uri.partition("?")
    scheme, _, argument = base.partition(":")
    if scheme not in SCHEMES:
        raise ValueError(f"dataset: unknown scheme {scheme!r} in {uri!r}; valid schemes are {SCHEMES} "
                         f"(e.g. 'synthetic', 'voc:PATH', 'folder:PATH', 'tfds:oxford_iiit_pet')")
    if scheme == "synthetic":
        return _open_synthetic(uri, argument, query, seed)
    if not argument:
        raise ValueError(f"dataset: {uri!r} needs an argument after '{scheme}:' "
                         f"({'a dataset name' if scheme == 'tfds' else 'a directory'})")
    where = f"dataset {uri!r}"
    if scheme in ("voc", "folder"):
        from kerasseg.data.files import FolderSource, VocSource
        options = parse_options(query, allowed=FILE_OPTIONS, where=where)
        kind = VocSource if scheme == "voc" else FolderSource
        return _noted(kind(argument, seed=seed, skip_bad_files=skip_bad_files, **options))
    if scheme == "coco":
        from kerasseg.data.coco import CocoSource
        options = parse_options(query, allowed={"val_fraction": float, "annotations": str}, where=where)
        return _noted(CocoSource(argument, seed=seed, skip_bad_files=skip_bad_files, **options))
    if scheme == "images":
        from kerasseg.data.files import ImageSource
        parse_options(query, allowed={}, where=where)
        return ImageSource(argument, skip_bad_files=skip_bad_files)
    if scheme == "ade20k":
        from kerasseg.data.files import Ade20kSource
        parse_options(query, allowed={}, where=where)
        return Ade20kSource(argument, skip_bad_files=skip_bad_files)
    from kerasseg.data.tfds_sources import open_tfds
    options = parse_options(query, allowed={"data_dir": str, "manual_dir": str, "download": int},
                            where=f"dataset {uri!r}")
    return open_tfds(argument, **options)


def with_options(uri: str, *, val_fraction: float | None = None, colormap: str | None = None) -> str:
    """``uri`` with the given options merged into its query string (None leaves an option as it is).

    The options then travel with the dataset URI, e.g. into ``config.yaml``; ``colormap`` is made absolute.
    """
    options = {"val_fraction": val_fraction, "colormap": os.path.abspath(colormap) if colormap else None}
    options = {k: v for k, v in options.items() if v is not None}
    if not options:
        return uri
    base, _, query = uri.partition("?")
    if base.partition(":")[0] not in ("voc", "folder", "coco") or (
            "colormap" in options and base.startswith("coco")):
        raise ValueError(f"dataset {uri!r}: {' and '.join(sorted(options))} apply to voc:, folder: and coco: "
                         f"datasets (colormap to voc: and folder: only)")
    if any(c in str(v) for v in options.values() for c in "&?"):
        raise ValueError(f"dataset options: a value may not hold '&' or '?', got {options}")
    kept = [item for item in query.split("&") if item and item.partition("=")[0] not in options]
    return base + "?" + "&".join(kept + [f"{k}={v}" for k, v in options.items()])


def _noted(source: DatasetSource) -> DatasetSource:
    """Say in one line when the source made its own train/val split."""
    if source.split_note:
        print(source.split_note, file=sys.stderr)
    return source


def _open_synthetic(uri, argument, query, seed):
    from kerasseg.data.synthetic import DEFAULT_SIZE, SyntheticSource
    options = parse_options(query, allowed={"train": int, "val": int, "size": str, "seed": int},
                            where=f"dataset {uri!r}")
    if argument:
        try:
            options["train"] = int(argument)
        except ValueError:
            raise ValueError(f"dataset {uri!r}: 'synthetic:N' takes a number of train images, got {argument!r}") \
                from None
    size = options.pop("size", "x".join(map(str, DEFAULT_SIZE)))
    try:
        height, _, width = size.lower().partition("x")
        size = (int(height), int(width or height))
    except ValueError:
        raise ValueError(f"dataset {uri!r}: size must be N or HxW, got {size!r}") from None
    return SyntheticSource(num_train=options.get("train", 1000), num_val=options.get("val", 200), size=size,
                           seed=options.get("seed", seed))


def open_data(trained, uri: str | None = None, *, masks: bool = True):
    """Open the dataset ``uri`` (default: the one the model trained on) with the run's seed, for a
    ``kerasseg.rundir.Trained`` model (``evaluate.py``, ``convert.py``'s calibration and parity).

    A folder of images without masks (``images:PATH``) takes the model's classes; with ``masks`` (evaluation)
    it is refused. Raises ValueError when no dataset is known, or when its classes are not the spec's.
    """
    uri = uri or trained.dataset
    if not uri:
        where = (f"its run {trained.run.path} names no dataset (an imported model)" if trained.run else
                 f"it has no run directory ({CONFIG_FILENAME} beside it) naming its data")
        raise ValueError(f"--dataset: required for model {trained.model_path}: {where}; images:FOLDER takes a "
                         f"folder of your own images for convert.py's calibration and parity")
    source = open_dataset(uri, seed=trained.seed)
    if not source.labelled:
        if masks:
            raise ValueError(f"--dataset {uri}: images without masks; this needs a dataset with masks "
                             f"(voc:, folder:, coco:, ...)")
        source.labels, source.colors = trained.spec.labels, trained.spec.colors
    if tuple(source.labels) != tuple(trained.spec.labels):
        raise ValueError(f"--dataset {uri}: its classes {list(source.labels)} differ from the model's "
                         f"{list(trained.spec.labels)}")
    return source
