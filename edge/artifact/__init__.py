"""The artifact contract: the spec, and what a ``.tflite`` file carries besides its graph.

Plain Python and numpy, no TensorFlow: the training side writes artifacts through
this package and the edge runtime reads them through it, so there is one format,
one reader, one writer and one name for each metadata entry (``kerasseg_spec``,
``TFLITE_METADATA``, ``SEGMENTER_METADATA``). It sits under every other package, kerasseg's included:

- ``spec.py``: the spec, and ``Alignment``, the one vocabulary of where a coarser map's pixels lie.
- ``tflite_file.py``: the one TFLite flatbuffer reader (metadata, buffers, operator codes, tensors);
  ``tflite_graph.py``: the whole graph through it, for the importer of released models.
- ``standard.py`` and ``contents.py``: the standard TFLite Model Metadata, and what an artifact carries.
- ``writer.py``: the metadata writer (training side only). ``labels.py``: VOC's and Cityscapes' classes.
"""
from edge.artifact.contents import (RAW_PIXELS, ArtifactMetadata, MetadataMismatch, check_agreement, load_spec,
                                    read_artifact)
from edge.artifact.spec import (CHANNEL_ORDERS, IGNORE_LABEL, OUTPUT_ALIGNMENTS, OUTPUT_KINDS, RESIZE_ALIGNMENTS,
                                RESIZE_MODES, SPEC_FILENAME, Alignment, Spec, SpecError, default_colors, parse_size)
from edge.artifact.standard import (LABELS_FILENAME, SEGMENTER_OPTIONS_NAME, STANDARD_METADATA_NAME,
                                    MetadataError, StandardMetadata, read_label_file)
from edge.artifact.tflite_file import (SPEC_METADATA_NAME, FlatbufferError, custom_ops, read_metadata,
                                       spec_path_beside)

WRITERS = ("embed_metadata", "embed_spec")  # from edge.artifact.writer, imported on first use: the device only reads


def __getattr__(name: str):
    if name in WRITERS:
        from edge.artifact import writer
        return getattr(writer, name)
    raise AttributeError(f"module 'edge.artifact' has no attribute {name!r}")


__all__ = ["CHANNEL_ORDERS", "IGNORE_LABEL", "LABELS_FILENAME", "OUTPUT_ALIGNMENTS", "OUTPUT_KINDS", "RAW_PIXELS",
           "RESIZE_ALIGNMENTS", "RESIZE_MODES", "Alignment", "SEGMENTER_OPTIONS_NAME", "SPEC_FILENAME", "SPEC_METADATA_NAME", "STANDARD_METADATA_NAME",
           "ArtifactMetadata", "FlatbufferError", "MetadataError", "MetadataMismatch", "Spec", "SpecError",
           "StandardMetadata", "check_agreement", "custom_ops", "default_colors", "embed_metadata", "embed_spec",
           "load_spec", "parse_size", "read_artifact", "read_label_file", "read_metadata", "spec_path_beside"]
