"""What a ``.tflite`` artifact carries besides its graph: our spec and the standard metadata.

Every kerasseg artifact holds both, derived from the one :class:`Spec`:

- ``kerasseg_spec``: the spec as JSON (labels, colours, input size, the normalisation the
  graph applies, output kind, ...), which kerasseg reads;
- ``TFLITE_METADATA`` (+ ``labels.txt`` packed after the model): the standard TFLite Model
  Metadata, which MediaPipe, the LiteRT Task Library and Android tooling read. Our models
  normalise inside the graph, so it states mean 0 and std 1 (feed raw pixels).

:func:`check_agreement` refuses an artifact whose two descriptions contradict each other.
``edge.artifact.writer`` writes both; this module only reads, so the device never compiles the writer.
"""
from __future__ import annotations

import dataclasses
import os

from edge.artifact.spec import Spec, SpecError
from edge.artifact.standard import STANDARD_METADATA_NAME, StandardMetadata, parse_segmenter_metadata
from edge.artifact.tflite_file import (SPEC_METADATA_NAME, associated_files, model_entries, read_model_file,
                                       spec_path_beside)

RAW_PIXELS = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # (mean, std) of "feed the pixels as they are"


class MetadataMismatch(SpecError):
    """A spec and standard metadata that contradict each other inside one artifact."""


@dataclasses.dataclass(frozen=True)
class ArtifactMetadata:
    """The spec and the standard metadata of one model, each with where it came from (None: absent)."""

    spec: Spec | None = None
    spec_source: str | None = None
    standard: StandardMetadata | None = None
    standard_source: str | None = None


def read_artifact(model_path: str | os.PathLike) -> ArtifactMetadata:
    """The spec (embedded, else ``MODEL.spec.json`` beside the model) and the standard metadata of a model.

    A spec or standard metadata that is present but malformed raises (:class:`SpecError`,
    :class:`MetadataError`) rather than being skipped.
    """
    model_path = os.fspath(model_path)
    content = read_model_file(model_path)
    entries = model_entries(content, source=model_path)
    spec = spec_source = standard = standard_source = None
    if SPEC_METADATA_NAME in entries:
        spec_source = f"{model_path} (metadata {SPEC_METADATA_NAME!r})"
        spec = Spec.from_json(entries[SPEC_METADATA_NAME], source=spec_source)
    elif os.path.exists(spec_path_beside(model_path)):
        spec_source = spec_path_beside(model_path)
        spec = Spec.load(spec_source)
    if STANDARD_METADATA_NAME in entries:
        standard_source = f"{model_path} (metadata {STANDARD_METADATA_NAME!r})"
        files = associated_files(content, source=model_path)
        standard = parse_segmenter_metadata(entries[STANDARD_METADATA_NAME], files, source=standard_source)
    return ArtifactMetadata(spec=spec, spec_source=spec_source, standard=standard, standard_source=standard_source)


def load_spec(model_path: str | os.PathLike) -> tuple[Spec | None, str | None]:
    """The model's spec and where it came from, or ``(None, None)`` for a foreign model."""
    found = read_artifact(model_path)
    return found.spec, found.spec_source


def check_agreement(spec: Spec, standard: StandardMetadata, *, where: str) -> None:
    """Raise :class:`MetadataMismatch` naming every field where ``standard`` contradicts ``spec``.

    ``where`` names the model file. Fields the standard metadata does not state are not compared.
    """
    problems = []
    if standard.labels is not None and tuple(standard.labels) != tuple(spec.labels):
        problems.append(f"labels: spec has {list(spec.labels)}, standard metadata has {list(standard.labels)}")
    if standard.mean is not None and standard.normalisation() != RAW_PIXELS:
        mean, std = standard.normalisation()
        problems.append(f"normalisation: spec says the graph normalises (mean {list(spec.mean)}, std "
                        f"{list(spec.std)}) and takes raw pixels, standard metadata says to feed "
                        f"(pixel - {list(mean)}) / {list(std)}")
    if standard.output_kind is not None and standard.output_kind != spec.output_kind:
        problems.append(f"output kind: spec says {spec.output_kind!r}, standard metadata says "
                        f"{standard.output_kind!r} (activation {standard.activation!r})")
    if problems:
        raise MetadataMismatch(f"model {where}: its spec and its standard metadata contradict each other: "
                               + "; ".join(problems))


__all__ = ["ArtifactMetadata", "MetadataMismatch", "RAW_PIXELS", "check_agreement", "load_spec", "read_artifact"]
