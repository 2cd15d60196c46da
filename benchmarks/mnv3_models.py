"""The artifacts bench_mobilenetv3.py times, built in a subprocess so that the timing process never imports TensorFlow.

    python benchmarks/mnv3_models.py OUT_DIR --runs NAME=RUN_DIR ... --sizes 513 257 [--profile-size 513]

- For each trained run (``NAME`` one of ``MODELS``) and size: ``kerasseg.export.export`` (what convert.py runs) at
  that input size, int8, ending in the default CPU head, calibrated on the run's training images, with its parity
  report on 4 val images. Trained weights give the class maps a real scene gives, so the device's post-processing
  costs what it would (random weights give noisy maps whose upsampling costs more).
- ``--profile-size``: each of those artifacts at that size split into one model per op (benchmarks/op_profile.py),
  for the per-op profile.
- ``models.json``: each file's path, parameters and multiply-adds (``count_params_and_macs`` on the Keras model
  converted), its TFLite ops, and the parity drop; the per-op files of each model.
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = {
    "lraspp_large": dict(arch="lraspp", backbone="mobilenetv3_large"),
    "lraspp_large_min": dict(arch="lraspp", backbone="mobilenetv3_large", minimalistic=True),
    "lraspp_small": dict(arch="lraspp", backbone="mobilenetv3_small"),
    "lraspp_small_min": dict(arch="lraspp", backbone="mobilenetv3_small", minimalistic=True),
    # The DeepLab MobileNetV2 mobile head (1x1 + image pooling, no decoder, OS16) of the released Coral/TF models.
    "deeplab_mnv2": dict(arch="deeplabv3plus", backbone="mobilenetv2", alpha=1.0, aspp=False, decoder=False),
    # The same head on MobileNet-EdgeTPU (its head as wide as deeplab_mnv2's, 256), and Google's "slim" Cityscapes
    # configuration (depth 0.75, a 128-filter head).
    "deeplab_edgetpu": dict(arch="deeplabv3plus", backbone="mobilenet_edgetpu", alpha=1.0, aspp=False, decoder=False),
    "deeplab_edgetpu_slim": dict(arch="deeplabv3plus", backbone="mobilenet_edgetpu", alpha=0.75, head_filters=128,
                                 aspp=False, decoder=False),
}
SMOKE_MODELS = ("lraspp_small", "deeplab_mnv2")  # the quick run: a goal row in 2 training runs


def _ops(content: bytes) -> dict:
    from kerasseg.export import edgetpu
    return dict(collections.Counter(op.op for op in edgetpu.analyze(content).ops))


def export_run(out_dir: str, name: str, run_dir: str, size: int) -> dict:
    """The trained run converted at ``size`` (int8, default CPU head) into ``out_dir/NAME_SIZE/``."""
    from kerasseg.export.export import export
    from kerasseg.models import build_model, count_params_and_macs
    from kerasseg.rundir import open_trained
    trained = open_trained(run_dir)
    [result] = export(trained, ["int8"], input_size=(size, size), out_dir=os.path.join(out_dir, f"{name}_{size}"),
                      calibration_steps=8, parity_images=4, max_drop=100.0, log=lambda line: None)
    model = build_model(**trained.model_kwargs, input_shape=(size, size, 3))
    params, macs = count_params_and_macs(model, input_shape=(size, size, 3))
    with open(result.path, "rb") as f:
        ops = _ops(f.read())
    return {"path": result.path, "params": int(params), "macs": int(macs), "ops": ops, "head": result.head.value,
            "output_stride": _native_stride(result.path),
            "parity_drop_points": result.parity.miou_drop}


def _native_stride(path: str) -> int:
    from edge.artifact import load_spec
    return int(load_spec(path)[0].output_stride)


def build_profile(out_dir: str, models: dict, size: int) -> dict:
    """{name: its artifact at ``size`` split into one model per op (op_profile.write_split rows)}."""
    import op_profile
    profile = {}
    for name, entry in models.items():
        with open(entry[str(size)]["path"], "rb") as f:
            profile[name] = op_profile.write_split(f.read(), os.path.join(out_dir, f"ops_{name}_{size}"))
        print(f"split {name} at {size} into {len(profile[name])} one-op models", flush=True)
    return profile


def _named_runs(values) -> dict:
    runs = dict(value.split("=", 1) for value in values)
    unknown = sorted(set(runs) - set(MODELS))
    if unknown:
        raise SystemExit(f"--runs: unknown model names {unknown}; valid names are {sorted(MODELS)}")
    return runs


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir")
    parser.add_argument("--runs", nargs="+", default=[], metavar="NAME=RUN_DIR", help="trained runs to convert")
    parser.add_argument("--sizes", type=int, nargs="+", default=[513, 257])
    parser.add_argument("--profile-size", type=int, default=None, help="also split each model at this size into "
                        "one model per op (one of --sizes)")
    args = parser.parse_args(argv)
    if args.profile_size is not None and args.profile_size not in args.sizes:
        raise SystemExit(f"--profile-size: {args.profile_size} is not one of --sizes {args.sizes}")
    sys.path[:0] = [ROOT, os.path.dirname(os.path.abspath(__file__))]
    os.makedirs(args.out_dir, exist_ok=True)
    built = {"models": {}, "profile": {}}
    for name, run_dir in _named_runs(args.runs).items():
        for size in args.sizes:
            built["models"].setdefault(name, {})[str(size)] = export_run(args.out_dir, name, run_dir, size)
            print(f"converted {name} at {size}", flush=True)
    if args.profile_size:
        built["profile"] = build_profile(args.out_dir, built["models"], args.profile_size)
    with open(os.path.join(args.out_dir, "models.json"), "w", encoding="utf-8") as f:
        json.dump(built, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
