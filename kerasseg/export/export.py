"""From a trained model (a run directory or a ``.keras`` file) to checked ``.tflite`` artifacts.

For each requested :class:`Mode` and :class:`Head` (where the graph ends, see
``kerasseg.export.heads``) ``export`` writes into ``OUT/`` (default: ``export/`` in the run directory, or
beside the model file)::

    NAME_MODE.tflite          the model ending in the mode's default head, with the spec inside
                              (metadata "kerasseg_spec")
    NAME_MODE_HEAD.tflite     the same for any other head ('-' in its name becomes '_')
    NAME_MODE[_HEAD].spec.json      the same spec beside it
    NAME_MODE[_HEAD].parity.json    Keras float vs the device (edge.segmenter)
    NAME_edgetpu[_HEAD].report.json (edgetpu) the op-by-op Edge TPU report / compiler log

An artifact whose mIoU drop exceeds ``max_drop`` is written as NAME_MODE[_HEAD].FAILED.*
instead (never under the good name), and is not given to the Edge TPU compiler.

Every target is checked before any work starts, so an existing file is never
overwritten silently, and each file is written to a temporary name and moved
into place, so a failure leaves nothing half-written.
"""
from __future__ import annotations

import dataclasses
import os
from typing import Callable, Sequence

from kerasseg.export import edgetpu as edgetpu_lib
from kerasseg.export import qat, tflite
from kerasseg.export.heads import Head, cut
from kerasseg.export import parity as parity_lib
from kerasseg.export.modes import Mode
from kerasseg.export.parity import ParityReport, parity_report
from edge.artifact import embed_spec
from kerasseg.data import build_pipeline
from edge.files import write_bytes
from kerasseg.training.batchnorm import reestimate_batch_norm
from kerasseg.data.sources import open_data
from kerasseg.rundir import Trained

DEFAULT_CALIBRATION_STEPS = 100
DEFAULT_QAT_STEPS = 200
DEFAULT_MAX_DROP = 2.0
QAT_BATCH_SIZE = 8
PARITY_BATCH_SIZE = 8
# The head each target gets when none is asked for; the mode's file keeps its plain name NAME_MODE.tflite.
# Measured in the README's "Heads" section: the CPU invoke is cheapest at the native resolution, and on
# an Edge TPU the native head keeps ARG_MAX (unsupported) and large bilinear resizes off the graph and
# sends a map 1/stride^2 the size over USB.
DEFAULT_HEADS = {"cpu": Head.NATIVE, "edgetpu": Head.NATIVE}


@dataclasses.dataclass
class ExportResult:
    mode: Mode
    head: Head
    path: str
    parity: ParityReport
    edgetpu: dict | None = None


def default_head(mode: Mode) -> Head:
    """The head ``mode``'s target gets by default (see ``DEFAULT_HEADS``)."""
    return DEFAULT_HEADS["edgetpu" if mode is Mode.EDGETPU else "cpu"]


def target_paths(out_dir: str, name: str, mode: Mode, head: Head | None = None) -> dict[str, str]:
    """The files of model ``name``'s artifact in ``out_dir``; ``head`` None (or the mode's default) keeps the
    plain NAME_MODE name."""
    head = default_head(mode) if head is None else head
    suffix = "" if head is default_head(mode) else "_" + head.filename_suffix
    stem = os.path.join(out_dir, f"{name}_{mode.filename_suffix}{suffix}")
    paths = {"tflite": stem + ".tflite", "spec": stem + ".spec.json", "parity": stem + ".parity.json"}
    if mode is Mode.EDGETPU:
        paths["report"] = stem + ".report.json"
    return paths


def _check_targets(out_dir: str, name: str, plan: Sequence[tuple[Mode, Head]], *, overwrite: bool) -> None:
    if overwrite:
        return
    existing = [p for mode, head in plan for paths in (target_paths(out_dir, name, mode, head),)
                for p in [*paths.values(), *parity_lib.failed_paths(paths).values()] if os.path.exists(p)]
    if existing:
        raise FileExistsError(f"export: would overwrite {existing}; pass --overwrite to replace them")


def _check_data(trained: Trained, dataset: str | None, modes: Sequence[Mode], *, edgetpu_finetune_steps: int = 0):
    """Open the dataset (``dataset``, else the model's) and check that its classes are the model's, and that
    it has masks if a mode trains."""
    if (dataset or trained.dataset) is None:
        needing = [m.value for m in modes if m.needs_training_data]
        raise ValueError(f"dataset: modes {needing or [m.value for m in modes]} need the model's data (training "
                         f"images for calibration/QAT, validation images for the parity report), but none is "
                         f"known; pass --dataset URI or export from a run directory")
    source = open_data(trained, dataset, masks=False)
    trains = [mode.value for mode in modes if mode is Mode.QAT or (mode is Mode.EDGETPU and edgetpu_finetune_steps)]
    if not source.labelled and trains:
        raise ValueError(f"--dataset {source.name}: images without masks calibrate and check parity, but {trains} "
                         f"train{'s' if len(trains) == 1 else ''} and need masks (voc:, folder:, ...; for the Edge "
                         f"TPU rebuild, --edgetpu-finetune-steps 0 trains nothing)")
    return source


def _require_build_arguments(trained: Trained) -> None:
    if trained.model_kwargs is None:
        raise ValueError(f"edgetpu: model {trained.model_path} has no build arguments (config.yaml beside it) to "
                         f"rebuild it Edge-TPU-friendly; export from its run directory")


def rebuild(trained: Trained, *, input_size, edgetpu_friendly: bool = False):
    """The model rebuilt at a static (H, W) input (and Edge-TPU-friendly if asked), weights copied.

    Raises ValueError, naming the size, when the architecture cannot take it.
    """
    height, width = input_size
    if edgetpu_friendly:
        _require_build_arguments(trained)
    if trained.model_kwargs is None:
        return trained.model
    from kerasseg.models import build_model
    kwargs = dict(trained.model_kwargs)
    if edgetpu_friendly:
        kwargs["edgetpu_friendly"] = True
    kwargs.pop("input_shape", None)
    try:
        model = build_model(**kwargs, input_shape=(height, width, 3))
    except ValueError as err:
        raise ValueError(f"input_size: {height}x{width} does not fit this model: {err}") from None
    model.set_weights(trained.model.get_weights())
    return model


def check_options(modes: Sequence[Mode | str], *, calibration_steps: int, qat_steps: int,
                  heads: Sequence[Head | str] | None = None,
                  edgetpu_finetune_steps: int | None = None) -> list[tuple[Mode, Head]]:
    """The (mode, head) of each artifact: every head for every mode, or each mode's default head.

    Raises ValueError on a step count a mode cannot use, or on a head a mode cannot end in.
    """
    modes = list(dict.fromkeys(Mode.parse(m) for m in modes))
    if not modes:
        raise ValueError(f"modes: choose at least one of {[m.value for m in Mode]}")
    if any(m.needs_calibration for m in modes) and (not isinstance(calibration_steps, int) or calibration_steps < 1):
        raise ValueError(f"calibration_steps: must be a positive int, got {calibration_steps!r}")
    if Mode.QAT in modes and (not isinstance(qat_steps, int) or qat_steps < 1):
        raise ValueError(f"qat_steps: must be a positive int, got {qat_steps!r}")
    if edgetpu_finetune_steps is not None and (not isinstance(edgetpu_finetune_steps, int)
                                               or edgetpu_finetune_steps < 0):
        raise ValueError(f"edgetpu_finetune_steps: must be an int >= 0, got {edgetpu_finetune_steps!r}")
    if heads is None:
        return [(mode, default_head(mode)) for mode in modes]
    heads = list(dict.fromkeys(Head.parse(h) for h in heads))
    if not heads:
        raise ValueError(f"head: choose at least one of {[h.value for h in Head]}")
    if Mode.EDGETPU in modes and any(h.ids for h in heads):
        raise ValueError(f"head: {[h.value for h in heads if h.ids]} cannot go with edgetpu: the Edge TPU does "
                         f"not run ARG_MAX; valid heads for edgetpu are {[h.value for h in Head if not h.ids]}")
    return [(mode, head) for mode in modes for head in heads]


def export(trained: Trained, modes: Sequence[Mode | str], *, dataset: str | None = None, out_dir: str | None = None,
           heads: Sequence[Head | str] | None = None, input_size=None,
           calibration_steps: int = DEFAULT_CALIBRATION_STEPS, qat_steps: int = DEFAULT_QAT_STEPS,
           max_drop: float = DEFAULT_MAX_DROP, overwrite: bool = False, parity_images: int | None = None,
           edgetpu_finetune_steps: int | None = None, log: Callable[[str], None] = print) -> list[ExportResult]:
    """Convert ``trained`` in each mode, ending in each head (None: the mode's default), check each
    artifact's parity on ``dataset`` (None: the one it trained on), write everything into ``out_dir``
    (None: ``export/`` in its folder); see the module doc.

    ``edgetpu_finetune_steps`` fine-tunes the Edge-TPU-friendly rebuild before it is quantized (None:
    ``edgetpu.REALIGN_STEPS`` when the model has half-pixel resizes and an Edge TPU head is ``full``, else 0).
    Without fine-tuning, a native Edge TPU head keeps the trained alignment in its spec, so the device upsamples
    as the weights expect.
    """
    plan = check_options(modes, calibration_steps=calibration_steps, qat_steps=qat_steps, heads=heads,
                         edgetpu_finetune_steps=edgetpu_finetune_steps)
    modes = list(dict.fromkeys(mode for mode, _ in plan))
    realigned = bool(edgetpu_lib.half_pixel_resizes(trained.model))
    if edgetpu_finetune_steps is None:
        edgetpu_finetune_steps = edgetpu_lib.REALIGN_STEPS if realigned and (Mode.EDGETPU, Head.FULL) in plan else 0
    input_size = tflite.check_input_size(input_size or trained.train_size or trained.spec.input_size)
    if Mode.EDGETPU in modes:
        _require_build_arguments(trained)
    out_dir = os.path.join(trained.folder, "export") if out_dir is None else out_dir
    _check_targets(out_dir, trained.model.name, plan, overwrite=overwrite)
    data = _check_data(trained, dataset, modes, edgetpu_finetune_steps=edgetpu_finetune_steps)
    static = rebuild(trained, input_size=input_size)
    tflite.serving_function(static, input_size=input_size)  # fails early, naming the size, if it cannot trace
    for head in dict.fromkeys(head for _, head in plan):
        cut(static, head)  # fails early, naming the head and the valid choices, if the model cannot end there

    def calibration():
        batches = build_pipeline(data, split="train", image_size=input_size, batch_size=1, training=True,
                                 seed=trained.seed).as_numpy_iterator()
        return tflite.calibration_images(batches, steps=calibration_steps)

    checker = _ParityCheck(trained, static, data, input_size=input_size, max_drop=max_drop,
                           max_images=parity_images, log=log)
    os.makedirs(out_dir, exist_ok=True)
    results = []
    for mode in modes:
        finetune_steps = edgetpu_finetune_steps if mode is Mode.EDGETPU else 0
        model = _mode_model(trained, data, static, mode, input_size=input_size, finetune_steps=finetune_steps,
                            qat_steps=qat_steps, log=log)
        for head in (h for m, h in plan if m is mode):
            log(f"[{mode.value}/{head.value}] converting at {input_size[0]}x{input_size[1]}")
            content, spec = _convert(trained, model, static, mode, head, input_size=input_size,
                                     calibration=calibration, finetune_steps=finetune_steps)
            report = checker.check(content, mode, head)
            report.finetune_steps = finetune_steps
            if not report.passed:  # only a failure has a diagnosis and a hint
                checker.explain(report, spec, results, realigned=realigned and mode is Mode.EDGETPU)
            paths = parity_lib.outcome_paths(target_paths(out_dir, trained.model.name, mode, head),
                                             passed=report.passed)
            results.append(_write_artifact(content, spec, report, paths, mode=mode, head=head, overwrite=overwrite,
                                           log=log))
    return results


@dataclasses.dataclass
class _ParityCheck:
    """The parity report of each artifact on the validation images at ``input_size``, and on failure, where it
    lost its points (``parity.diagnose``)."""

    trained: Trained
    static: object  # the float Keras model at input_size
    data: object  # the dataset source
    input_size: tuple
    max_drop: float
    max_images: int | None
    log: Callable[[str], None]

    def validation(self):
        return build_pipeline(self.data, split="val", image_size=self.input_size, batch_size=PARITY_BATCH_SIZE,
                              training=False).as_numpy_iterator()

    def check(self, content: bytes, mode: Mode, head: Head) -> ParityReport:
        return parity_report(parity_lib.with_head_output(self.static, head), content, self.validation(),
                             mode=mode.value, head=head, max_drop=self.max_drop, max_images=self.max_images,
                             labelled=self.data.labelled)

    def explain(self, report: ParityReport, spec, results: list, *, realigned: bool) -> None:
        """Set the failed ``report``'s diagnosis and hint, measuring the float32 export with the same head for a
        quantized mode: this export's own if it made one, else one converted now (not written)."""
        mode, head = Mode.parse(report.mode), Head.parse(report.head)
        reference = None
        if mode is not Mode.FLOAT32:
            reference = next((r.parity for r in results if r.mode is Mode.FLOAT32 and r.head is head), None)
        if mode is not Mode.FLOAT32 and reference is None:
            self.log(f"[float32/{head.value}] converting (not written), to find where the failed artifact lost "
                     f"its points")
            content, _ = _convert(self.trained, self.static, self.static, Mode.FLOAT32, head,
                                  input_size=self.input_size, calibration=None, finetune_steps=0)
            reference = self.check(content, Mode.FLOAT32, head)
        report.diagnosis = parity_lib.diagnose(report, spec, float32=reference)
        report.failure_hint = parity_lib.failure_hint(report, finetune_steps=report.finetune_steps,
                                                      realigned=realigned)


def _write_artifact(content: bytes, spec, report: ParityReport, paths: dict, *, mode: Mode, head: Head,
                    overwrite: bool, log) -> ExportResult:
    """Write the ``.tflite``, its spec and parity report (and for edgetpu, the op report) to ``paths``."""
    write_bytes(paths["tflite"], content)
    spec.save(paths["spec"])
    report.save(paths["parity"])
    log(report.format())
    result = ExportResult(mode=mode, head=head, path=paths["tflite"], parity=report)
    if mode is Mode.EDGETPU:
        result.edgetpu = _edgetpu_report(content, paths, overwrite=overwrite, run_compiler=report.passed, log=log)
    log(f"[{mode.value}/{head.value}] wrote {paths['tflite']}")
    return result


def _mode_model(trained: Trained, data, static, mode: Mode, *, input_size, finetune_steps: int, qat_steps: int,
                log):
    """The Keras model that ``mode`` converts: the static model, its Edge-TPU-friendly rebuild (fine-tuned
    ``finetune_steps``), or its quantization-aware fine-tuned copy."""
    if mode is Mode.QAT:
        return _quantization_aware(trained, data, static, input_size=input_size, qat_steps=qat_steps, log=log)
    if mode is not Mode.EDGETPU:
        return static
    model = rebuild(trained, input_size=input_size, edgetpu_friendly=True)
    if finetune_steps:
        loss = edgetpu_lib.realign(model, _training_batches(trained, data, input_size), steps=finetune_steps,
                                   ignore_label=trained.spec.ignore_label)
        log(f"[edgetpu] fine-tuned the legacy-aligned rebuild {finetune_steps} steps at lr "
            f"{edgetpu_lib.REALIGN_LEARNING_RATE:g}; last loss {loss:.4f}")
    return model


def _convert(trained: Trained, model, static, mode: Mode, head: Head, *, input_size, calibration,
             finetune_steps: int):
    """The ``.tflite`` bytes of ``model`` ending in ``head``, with their spec embedded; and that spec."""
    ending, fields = cut(model, head)
    if mode is Mode.EDGETPU and not finetune_steps and fields["output_stride"] > 1:
        # The rebuild's last resize is legacy, but the device upsamples as the weights were trained.
        fields["output_alignment"] = cut(static, head)[1]["output_alignment"]
    spec = trained.spec.replace(input_size=input_size, **fields)
    content = embed_spec(tflite.convert(ending, mode=mode, input_size=input_size, calibration=calibration), spec)
    if mode.full_integer:
        floats = tflite.float_ops(content)
        if floats:
            raise RuntimeError(f"[{mode.value}] the converter left float ops in a full-integer model: {floats}")
    return content, spec


def _quantization_aware(trained: Trained, data, static, *, input_size, qat_steps: int, log):
    """Fine-tune a quantization-aware copy of the static model on the training pipeline at ``input_size``.

    Batch norms that came folded (an imported model's) first get their statistics from the training data, as
    ``train.py --init-from`` gives them: fine-tuning runs them in training mode.
    """
    folded = reestimate_batch_norm(static, _training_batches(trained, data, input_size))
    if folded:
        log(f"[qat] {folded} batch norms came folded; their statistics were re-estimated on the training data")
    quantized = qat.quantize_aware(static)
    loss = qat.fine_tune(quantized, _training_batches(trained, data, input_size), steps=qat_steps,
                         ignore_label=trained.spec.ignore_label)
    log(f"[qat] fine-tuned {qat_steps} steps at lr {qat.QAT_LEARNING_RATE:g}; last loss {loss:.4f}")
    return quantized


def _training_batches(trained: Trained, data, input_size):
    return build_pipeline(data, split="train", image_size=input_size, batch_size=QAT_BATCH_SIZE, training=True,
                          seed=trained.seed)


def _edgetpu_report(content: bytes, paths: dict, *, overwrite: bool, run_compiler: bool, log) -> dict:
    report = edgetpu_lib.analyze(content, name=os.path.basename(paths["tflite"]))
    if run_compiler:
        report.compiler = edgetpu_lib.compile_model(paths["tflite"], out_dir=os.path.dirname(paths["tflite"]),
                                                    overwrite=overwrite)
    else:
        report.compiler = {"available": False, "message": "not compiled: the artifact failed its parity report"}
        stale = edgetpu_lib.compiled_path(paths["tflite"].replace(parity_lib.FAILED_TAG, ""))
        if os.path.exists(stale):  # compiled from an earlier, good export: no longer this model
            os.remove(stale)
    report.save(paths["report"])
    log(report.summary(paths["report"]))  # the op-by-op table is in the report file (and report.format())
    return report.to_dict()
