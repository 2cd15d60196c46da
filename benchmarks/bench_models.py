"""Parameters and multiply-adds of the model zoo beside the published references, plus CPU latency.

    python benchmarks/bench_models.py                 # counts at 513x513, 21 classes (markdown table)
    python benchmarks/bench_models.py --latency       # also time one forward pass per model (batch 1)

Counts come from kerasseg.models.count_params_and_macs; "ratio" is ours / reference.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]

import results  # noqa: E402
from kerasseg.models import build_model, count_params_and_macs  # noqa: E402

# (label, build_model kwargs, reference params, reference MACs) -- references from the papers / DeepLab model zoo.
CONFIGS = [
    ("FCN-32s", dict(arch="fcn32s"), None, None),
    ("FCN-16s", dict(arch="fcn16s"), None, None),
    ("FCN-8s", dict(arch="fcn8s"), 134.5e6, None),
    ("DeepLab MobileNetV2 (1x1 + pooling, no decoder) OS16",
     dict(arch="deeplabv3plus", backbone="mobilenetv2", aspp=False, decoder=False), 2.11e6, 2.75e9),
    ("DeepLab MobileNetV2 (1x1 + pooling, no decoder) OS8",
     dict(arch="deeplabv3plus", backbone="mobilenetv2", aspp=False, decoder=False, output_stride=8), None, None),
    ("DeepLab MobileNetV2 alpha 0.5 (1x1 + pooling, no decoder) OS16",
     dict(arch="deeplabv3plus", backbone="mobilenetv2", alpha=0.5, aspp=False, decoder=False), None, None),
    ("DeepLabv3+ MobileNetV2 OS16", dict(arch="deeplabv3plus", backbone="mobilenetv2"), None, None),
    ("DeepLabv3+ Xception-65 OS16", dict(arch="deeplabv3plus", backbone="xception65"), 41e6, 54.17e9),
    ("DeepLabv3+ Xception-65 OS8", dict(arch="deeplabv3plus", backbone="xception65", output_stride=8), None, None),
    ("DeepLabv3 ResNet-50 OS16", dict(arch="deeplabv3plus", backbone="resnet50", decoder=False), None, None),
    ("DeepLabv3+ ResNet-101 OS16", dict(arch="deeplabv3plus", backbone="resnet101"), None, None),
    # torchvision's lraspp_mobilenet_v3_large (3.22M parameters, 2.09G at 520x520) is checked at 520 by
    # tests/test_models_mobilenetv3.py; here every row is at --image-size.
    ("LR-ASPP MobileNetV3-Large OS16", dict(arch="lraspp", backbone="mobilenetv3_large"), None, None),
    ("LR-ASPP MobileNetV3-Large minimalistic OS16",
     dict(arch="lraspp", backbone="mobilenetv3_large", minimalistic=True), None, None),
    ("LR-ASPP MobileNetV3-Small OS16", dict(arch="lraspp", backbone="mobilenetv3_small"), None, None),
    ("LR-ASPP MobileNetV3-Small minimalistic OS16",
     dict(arch="lraspp", backbone="mobilenetv3_small", minimalistic=True), None, None),
    ("DeepLabv3 MobileNetV3-Large OS16", dict(arch="deeplabv3plus", backbone="mobilenetv3_large", decoder=False),
     None, None),
]


def _ratio(value, reference):
    return f"{value / reference:.3f}" if reference else "-"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image-size", "--image_size", dest="image_size", type=int, default=513)
    parser.add_argument("--num-classes", "--num_classes", dest="num_classes", type=int, default=21)
    parser.add_argument("--latency", action="store_true", help="time a forward pass (median of 3, batch 1)")
    parser.add_argument("--only", nargs="+", help="run the configurations whose label contains one of these texts")
    parser.add_argument("--json", default=None, help="also write the results here (benchmarks/results.py)")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    size = args.image_size
    header = "| model | params (M) | ratio | multiply-adds (G) | ratio |" + (" CPU ms |" if args.latency else "")
    print(f"Counts at {size}x{size}, {args.num_classes} classes; ratio = ours / published reference.\n")
    print(header)
    print("|" + "---|" * (header.count("|") - 1))
    rows = []
    for label, kwargs, ref_params, ref_macs in CONFIGS:
        if args.only and not any(text in label for text in args.only):
            continue
        model = build_model(num_classes=args.num_classes, input_shape=(size, size, 3), **kwargs)
        params, macs = count_params_and_macs(model, input_shape=(size, size, 3))
        rows.append({"model": label, "params": int(params), "macs": int(macs), "reference_params": ref_params,
                     "reference_macs": ref_macs})
        row = (f"| {label} | {params / 1e6:.2f} | {_ratio(params, ref_params)} | {macs / 1e9:.2f} | "
               f"{_ratio(macs, ref_macs)} |")
        if args.latency:
            image = np.random.default_rng(0).uniform(0, 255, (1, size, size, 3)).astype(np.float32)
            model(image, training=False)  # warm-up
            times = []
            for _ in range(3):
                start = time.perf_counter()
                model(image, training=False)
                times.append(time.perf_counter() - start)
            rows[-1]["cpu_ms"] = 1000 * float(np.median(times))
            row += f" {rows[-1]['cpu_ms']:.0f} |"
        print(row, flush=True)
        del model
    ratios = {row["model"]: {key: row[key] / row["reference_" + key] for key in ("params", "macs")
                             if row["reference_" + key]} for row in rows}
    results.write(args.json, load_before=load, goals=[],
                  measured={"image_size": size, "num_classes": args.num_classes, "models": rows},
                  ratios={"ours_over_published": {k: v for k, v in ratios.items() if v}})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
