"""The artifacts bench_mobilenetv3.py times, built in a subprocess so that the timing process never imports TensorFlow.

    python benchmarks/mnv3_models.py OUT_DIR --runs NAME=RUN_DIR ... --sizes 513 257 [--profile-size 513] [--smoke]

- For each trained run (``NAME`` one of ``MODELS``) and size: ``kerasseg.export.export`` (what convert.py runs) at
  that input size, int8, ending in the default CPU head, calibrated on the run's training images, with its parity
  report on 4 val images. Trained weights give the class maps a real scene gives, so the device's post-processing
  costs what it would (random weights give noisy maps whose upsampling costs more).
- ``--profile-size``: LR-ASPP MobileNetV3-Large, full and minimalistic, random weights, cut after each stage of
  ``PROFILE_STAGES`` and converted to int8, for the per-stage profile (invoke time hardly depends on the weights).
- ``models.json``: each file's path, parameters and multiply-adds (``count_params_and_macs`` on the Keras model
  converted), its TFLite ops, and the parity drop.
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
}
SMOKE_MODELS = ("lraspp_small", "deeplab_mnv2")
# (stage, last layer of the full model, of the minimalistic model): cumulative cut points through LR-ASPP Large.
PROFILE_STAGES = (
    ("stem 3x3 s2", "Conv/hard_swish", "Conv/relu"),
    ("blocks 0-2 (stride 4, ReLU)", "expanded_conv_2/Add", "expanded_conv_2/Add"),
    ("blocks 3-5 (stride 8, 5x5, SE, ReLU)", "expanded_conv_5/Add", "expanded_conv_5/Add"),
    ("blocks 6-9 (stride 16, h-swish)", "expanded_conv_9/Add", "expanded_conv_9/Add"),
    ("blocks 10-11 (stride 16, SE, h-swish)", "expanded_conv_11/Add", "expanded_conv_11/Add"),
    ("blocks 12-14 (dilated, 5x5, SE, h-swish)", "expanded_conv_14/Add", "expanded_conv_14/Add"),
    ("Conv_1 (960, h-swish)", "Conv_1/hard_swish", "Conv_1/relu"),
    ("LR-ASPP head to stride-8 scores", "lraspp_add", "lraspp_add"),
)
SMOKE_PROFILE_STAGES = PROFILE_STAGES[:1] + PROFILE_STAGES[-1:]


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


def build_profile(out_dir: str, size: int, *, smoke: bool) -> list:
    """LR-ASPP MobileNetV3-Large, full and minimalistic, cut after each stage; one int8 file per cut."""
    import numpy as np

    from edge.files import write_bytes
    from kerasseg.backend import keras
    from kerasseg.export import tflite
    from kerasseg.export.modes import Mode
    from kerasseg.models import build_model, count_params_and_macs
    rng = np.random.default_rng(0)
    calibration = lambda: (rng.uniform(0, 255, (1, size, size, 3)).astype(np.float32) for _ in range(4))  # noqa: E731
    rows = []
    for variant, minimalistic in (("full", False), ("minimalistic", True)):
        model = build_model(arch="lraspp", backbone="mobilenetv3_large", num_classes=21, minimalistic=minimalistic,
                            input_shape=(size, size, 3))
        for stage, full_layer, minimal_layer in (SMOKE_PROFILE_STAGES if smoke else PROFILE_STAGES):
            layer = minimal_layer if minimalistic else full_layer
            prefix = keras.Model(model.input, model.get_layer(layer).output)
            # int8 out: no final QUANTIZE to uint8, whose cost would grow with the cut's last tensor.
            content = tflite.convert(prefix, mode=Mode.INT8, input_size=(size, size), calibration=calibration,
                                     scores_type="int8")
            path = write_bytes(os.path.join(out_dir, f"profile_{variant}_{layer.replace('/', '_')}.tflite"), content)
            params, macs = count_params_and_macs(prefix, input_shape=(size, size, 3))
            rows.append({"variant": variant, "stage": stage, "layer": layer, "size": size, "path": path,
                         "params": int(params), "macs": int(macs), "ops": _ops(content)})
            print(f"built {path}", flush=True)
    return rows


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
    parser.add_argument("--profile-size", type=int, default=None, help="also build the per-stage profile cuts")
    parser.add_argument("--smoke", action="store_true", help="two profile cuts instead of eight")
    args = parser.parse_args(argv)
    sys.path.insert(0, ROOT)
    os.makedirs(args.out_dir, exist_ok=True)
    built = {"models": {}, "profile": []}
    for name, run_dir in _named_runs(args.runs).items():
        for size in args.sizes:
            built["models"].setdefault(name, {})[str(size)] = export_run(args.out_dir, name, run_dir, size)
            print(f"converted {name} at {size}", flush=True)
    if args.profile_size:
        built["profile"] = build_profile(args.out_dir, args.profile_size, smoke=args.smoke)
    with open(os.path.join(args.out_dir, "models.json"), "w", encoding="utf-8") as f:
        json.dump(built, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
