"""The classes of an imported model and its spec: the DeepLab model zoo's datasets (PASCAL VOC, Cityscapes),
with DeepLab's input sizes, or the names of a ``--labels`` file.
"""
from __future__ import annotations

from edge.artifact import Spec, default_colors, read_label_file
from edge.artifact.labels import CITYSCAPES_COLORS, CITYSCAPES_LABELS, VOC_LABELS

DEFAULT_INPUT_SIZE = (513, 513)  # DeepLab's PASCAL VOC crop, for a checkpoint (which fixes no size)
CITYSCAPES_INPUT_SIZE = (1025, 2049)  # DeepLab's Cityscapes evaluation crop


def known_labels(num_classes: int) -> tuple[tuple[str, ...], tuple, tuple[int, int]] | None:
    """(labels, colours, input size) of the DeepLab model zoo's dataset with ``num_classes`` classes, or None."""
    if num_classes == 21:
        return VOC_LABELS, default_colors(21), DEFAULT_INPUT_SIZE
    if num_classes == 19:
        return CITYSCAPES_LABELS, CITYSCAPES_COLORS, CITYSCAPES_INPUT_SIZE
    return None


def imported_spec(imported, *, labels_file=None, input_size=None) -> Spec:
    """The spec of an imported model: the source dataset's labels and colours, or ``labels_file``'s names."""
    from kerasseg.models import preprocessing_for

    num_classes = imported.config["num_classes"]
    known = known_labels(num_classes)
    if labels_file is not None:
        labels = read_label_file(labels_file)
        if len(labels) != num_classes:
            raise ValueError(f"--labels {labels_file}: {len(labels)} names (up to the first blank line), but the "
                             f"model has {num_classes} classes")
        colors = known[1] if known and tuple(labels) == tuple(known[0]) else default_colors(num_classes)
    elif known is None:
        raise ValueError(f"labels: the model has {num_classes} classes, which is neither PASCAL VOC (21) nor "
                         f"Cityscapes (19); give their names with --labels FILE (one a line)")
    else:
        labels, colors = known[0], known[1]
    size = input_size or imported.input_size or (known[2] if known else DEFAULT_INPUT_SIZE)
    pre = preprocessing_for(arch=imported.config["arch"], backbone=imported.config["backbone"])
    return Spec(labels=labels, colors=colors, input_size=size, mean=pre["mean"], std=pre["std"],
                channel_order=pre["channel_order"], output_kind="logits")
