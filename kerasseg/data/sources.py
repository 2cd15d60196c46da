"""``open_dataset``: a dataset URI to a :class:`DatasetSource`.

URIs are ``SCHEME[:ARGUMENT][?key=value&key=value]``:

- ``synthetic`` (default), ``synthetic:N`` (N train images), options ``train``,
  ``val``, ``size`` (side in pixels, or HxW; default 64) and ``seed``;
- ``voc:PATH``: a PASCAL VOC directory (VOCdevkit/VOC2012 or one that holds it);
- ``folder:PATH``: ``images/`` and ``masks/`` paired by stem; option ``val_fraction``;
- ``tfds:NAME`` for NAME in oxford_iiit_pet, scene_parse150, cityscapes; options
  ``data_dir`` and ``manual_dir`` (Cityscapes' downloaded zips), ``download`` (0/1).
"""
from __future__ import annotations

from kerasseg.data.base import DatasetSource, parse_options

SCHEMES = ("synthetic", "voc", "folder", "tfds")
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
    if scheme == "voc":
        from kerasseg.data.files import VocSource
        parse_options(query, allowed={}, where=f"dataset {uri!r}")
        return VocSource(argument, skip_bad_files=skip_bad_files)
    if scheme == "folder":
        from kerasseg.data.files import FolderSource
        options = parse_options(query, allowed={"val_fraction": float}, where=f"dataset {uri!r}")
        return FolderSource(argument, seed=seed, skip_bad_files=skip_bad_files, **options)
    from kerasseg.data.tfds_sources import open_tfds
    options = parse_options(query, allowed={"data_dir": str, "manual_dir": str, "download": int},
                            where=f"dataset {uri!r}")
    return open_tfds(argument, **options)


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
