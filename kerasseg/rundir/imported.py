"""An imported model as a run directory, and the command that writes one (``python -m kerasseg import``).

::

    DIR/
      best.keras     the imported model
      spec.json      labels and colours of the source's dataset (or --labels), input size, normalisation
      config.yaml    train: no dataset, the input size; model: the build_model arguments;
                     derived: the labels; source: the file, its kind and its SHA-256

Reading the released file and filling the layers is ``kerasseg.models.importing``'s; writing the run goes
through ``open_run``, as a trained run's does.
"""
from __future__ import annotations

import argparse
import os
import time

from edge import console
from edge.artifact import Spec
from kerasseg.rundir.run import config_document, open_run

IMPORT_SEED = 0
COMMAND = """Import a released DeepLab model into the Keras builders and write it as a run directory.

    python -m kerasseg import deeplabv3_mnv2_dm05_pascal_quant.tflite --output runs/voc-dm05
    python -m kerasseg import deeplabv3_pascal_trainval_2018_01_04.tar.gz --output runs/voc-x65
    python -m kerasseg import model.tflite --output runs/mine --labels labels.txt

SOURCE: a released .tflite (int8/uint8 or float), a DeepLab model-zoo .tar.gz, the folder it unpacks
to, or a checkpoint prefix. DIR gets best.keras, spec.json and config.yaml; evaluate.py, predict.py,
convert.py and train.py --init-from take it as a trained run. Exit 2 on bad input, with nothing written.
"""

PROG = "python -m kerasseg import"


def parse_args(argv=None) -> argparse.Namespace:
    parser = console.ArgumentParser(prog=PROG, description=COMMAND,
                                    formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", metavar="SOURCE", help=".tflite, model-zoo .tar.gz, its folder or a checkpoint "
                                                         "prefix")
    parser.add_argument("--output", required=True, metavar="DIR", help="the run directory to write")
    parser.add_argument("--labels", metavar="FILE", help="class names, one a line up to the first blank line "
                                                         "(default: PASCAL VOC's for 21 classes, Cityscapes' for 19)")
    parser.add_argument("--output-stride", type=int, choices=(8, 16, 32), default=None,
                        help="a checkpoint's output stride (default 16); a .tflite has its own")
    parser.add_argument("--input-size", type=int, nargs=2, metavar=("HEIGHT", "WIDTH"), default=None,
                        help="the spec's input size, which convert.py exports at (default: the .tflite's; for a "
                             "checkpoint DeepLab's crop: 513 513 for VOC, 1025 2049 for Cityscapes)")
    console.add_log_level(parser)
    args = parser.parse_args(argv)
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    console.configure(args.log_level)
    return run(args)


def run(args: argparse.Namespace) -> int:
    """Import ``args.source`` into ``args.output``; 0, or 2 on bad input (nothing written)."""
    from edge.artifact import SpecError
    from kerasseg.models.importing import import_model
    from kerasseg.models.importing.labels import imported_spec

    started = time.perf_counter()
    try:
        imported = import_model(args.source, output_stride=args.output_stride)
        spec = imported_spec(imported, labels_file=args.labels, input_size=args.input_size)
        run = write_imported_run(imported, args.output, spec)
    except (ValueError, FileNotFoundError, FileExistsError, SpecError) as err:
        console.error(PROG, err)
        return 2
    config = imported.config
    print(f"Imported {imported.source['kind']} {args.source} in {time.perf_counter() - started:.1f} s: "
          f"{config['arch']} {config['backbone']}"
          + (f" alpha {config['alpha']}" if "alpha" in config else "")
          + f", output stride {config['output_stride']}, aspp {config['aspp']}, decoder {config['decoder']}, "
          f"{config['num_classes']} classes, {len(imported.filled)} layers filled"
          + (f", {len(imported.unused)} tensors left out" if imported.unused else ""))
    print(f"Run directory: {run.path} (input {spec.input_size[0]}x{spec.input_size[1]}, labels "
          f"{', '.join(spec.labels[:4])}, ...)")
    return 0


def run_config(imported, spec: Spec) -> dict:
    """The ``config.yaml`` of an imported run (the sections a trained run has, and ``source``)."""
    return config_document(train={"dataset": None, "image_size": list(spec.input_size), "seed": IMPORT_SEED},
                           model=dict(imported.config), derived={"labels": list(spec.labels)}, hardware={},
                           source={**imported.source, "layers_filled": len(imported.filled),
                                   "tensors_left_out": list(imported.unused)})


def write_imported_run(imported, output: str | os.PathLike, spec: Spec):
    """Write ``output`` as a run directory; refuses one that already holds a run. Returns the ``Run``."""
    output = os.fspath(output)
    if os.path.isfile(output):
        raise FileExistsError(f"--output {output}: is a file, expected a directory")
    run = open_run(output, config=run_config(imported, spec), spec=spec, resume=False)
    try:
        run.save_model(imported.model, which="best")
    except BaseException:
        run.discard()
        raise
    return run
