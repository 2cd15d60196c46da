"""What a ``.tflite`` artifact carries besides its graph: our spec and the standard metadata.

Every kerasseg artifact holds both, derived from the one :class:`Spec`:

- ``kerasseg_spec``: the spec as JSON (labels, colours, input size, the normalisation the
  graph applies, output kind, ...), which kerasseg reads;
- ``TFLITE_METADATA`` (+ ``labels.txt`` packed after the model): the standard TFLite Model
  Metadata, which MediaPipe, the LiteRT Task Library and Android tooling read. Our models
  normalise inside the graph, so it states mean 0 and std 1 (feed raw pixels).

:func:`check_agreement` refuses an artifact whose two descriptions contradict each other.
"""
from __future__ import annotations

import dataclasses
import os

from kerasseg.artifact.spec import Spec, SpecError
from kerasseg.artifact.standard import (STANDARD_METADATA_NAME, MetadataError, StandardMetadata,
                                        parse_segmenter_metadata, segmenter_metadata)
from kerasseg.artifact.tflite_file import (SPEC_METADATA_NAME, associated_files, io_tensors, model_entries,
                                           read_model_file, spec_path_beside, with_metadata)

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


def embed_metadata(content: bytes, *, labels, output_kind: str, mean=(0.0,), std=(1.0,), spec: Spec | None = None,
                   name: str = "segmenter", description: str = "", source: str = "model") -> bytes:
    """``content`` with standard image-segmenter metadata (and ``spec``'s entry when given).

    ``mean``/``std`` are what a client must apply to float inputs. Input dtype, input size and
    output channels are read from the model's tensors.
    """
    inputs, outputs = io_tensors(content, source=source)
    if len(inputs) != 1 or len(outputs) != 1:
        raise MetadataError(f"{source}: an image segmenter has one input and one output, this model has "
                            f"{len(inputs)} and {len(outputs)}")
    image, scores = inputs[0], outputs[0]
    input_size = tuple(image.shape[1:3]) if len(image.shape) == 4 else None
    channels = scores.shape[-1] if len(scores.shape) == 4 else 1
    payload, files = segmenter_metadata(labels=labels, output_kind=output_kind, input_dtype=image.dtype,
                                        channels=channels, mean=mean, std=std, input_size=input_size, name=name,
                                        description=description)
    entries = {STANDARD_METADATA_NAME: payload}
    if spec is not None:
        entries[SPEC_METADATA_NAME] = spec.to_json().encode("utf-8")
    return with_metadata(content, entries, files=files, source=source)


def embed_spec(content: bytes, spec: Spec) -> bytes:
    """A kerasseg artifact: ``content`` with ``spec`` and the standard metadata derived from it."""
    return embed_metadata(content, labels=spec.labels, output_kind=spec.output_kind, mean=RAW_PIXELS[0],
                          std=RAW_PIXELS[1], spec=spec, name="kerasseg segmenter", source="embed_spec",
                          description=f"semantic segmentation, {spec.num_classes} classes, takes raw RGB pixels "
                                      f"(normalised inside the graph)")


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


__all__ = ["ArtifactMetadata", "MetadataMismatch", "RAW_PIXELS", "check_agreement", "embed_metadata", "embed_spec",
           "load_spec", "read_artifact"]
