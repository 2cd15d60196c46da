"""LR-ASPP MobileNetV3 and DeepLab on MobileNet-EdgeTPU against DeepLab MobileNetV2's mobile head: val mIoU after
the same short training, per-frame time, multiply-adds, and where the time of MobileNetV3-Large goes.

    python benchmarks/bench_mobilenetv3.py                        # 513 and 257, seven models, training at 256 px
    python benchmarks/bench_mobilenetv3.py --models deeplab_mnv2 deeplab_edgetpu deeplab_edgetpu_slim
    python benchmarks/bench_mobilenetv3.py --smoke --json R.json  # checks the script (run.py --quick): 65 px

Quality: train.py trains each model for the same steps on the built-in dataset at 256 px (``--train-steps``,
``--train-epochs``); the val mIoU is the last epoch's, from the run's metrics.json.

Per frame: each trained run converted to int8 at 513 and 257 (benchmarks/mnv3_models.py: export, the default CPU
head, native: stride 8 for LR-ASPP, 16 for the DeepLab head), run by ``edge.Segmenter`` (1 interpreter thread,
1 OpenCV thread) from a 640x480 camera frame to a 640x480 class map, all models of a size timed in alternating
rounds (bench_heads.time_heads) so that background load hits them alike. Goals at 513, against the DeepLab
MobileNetV2 mobile head: LR-ASPP MobileNetV3-Small >= 1.5x faster per frame, LR-ASPP MobileNetV3-Large
minimalistic >= 1.3x faster.

Profile: the LiteRT Python interpreter has no per-op profiler, so sub-graphs stand in for one. LR-ASPP
MobileNetV3-Large (full and minimalistic) is cut after each stage and converted to int8; each cut's invoke is
timed (1 thread, alternating rounds), and a stage's time is its cut's minus the previous cut's (the cuts end in
int8, so none pays a conversion of its last tensor). For each model the ops that XNNPACK (LiteRT's default CPU
delegate) leaves to LiteRT's own kernels are listed too.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

import mnv3_models  # noqa: E402
import results  # noqa: E402
from bench_heads import camera_frame, time_heads  # noqa: E402
from machine import cpu_simd, load_line  # noqa: E402

BASELINE = "deeplab_mnv2"
GOALS = {"lraspp_small": 1.5, "lraspp_large_min": 1.3}  # per-frame speed-up over BASELINE at 513
LABELS = {"lraspp_large": "LR-ASPP MobileNetV3-Large", "lraspp_large_min": "LR-ASPP MobileNetV3-Large minimalistic",
          "lraspp_small": "LR-ASPP MobileNetV3-Small", "lraspp_small_min": "LR-ASPP MobileNetV3-Small minimalistic",
          "deeplab_mnv2": "DeepLab MobileNetV2 mobile head (OS16)",
          "deeplab_edgetpu": "DeepLab MobileNet-EdgeTPU mobile head (OS16)",
          "deeplab_edgetpu_slim": "DeepLab MobileNet-EdgeTPU 0.75, head 128 (OS16)"}
TRAIN_DATASET = "synthetic:1000?val=100&size=256"
ROUNDS = 5


def build(out_dir: str, runs: dict, *, sizes, profile_size, smoke: bool) -> dict:
    """Run mnv3_models.py in a subprocess (TensorFlow stays out of this process); its models.json."""
    command = [sys.executable, os.path.join(HERE, "mnv3_models.py"), out_dir, "--sizes", *map(str, sizes),
               "--runs", *(f"{name}={path}" for name, path in runs.items())]
    command += ["--profile-size", str(profile_size)] if profile_size else []
    command += ["--smoke"] if smoke else []
    print(f"\nconverting the runs and the profile cuts into {out_dir} ...", flush=True)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="2")
    done = subprocess.run(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"building the models failed:\n{done.stdout[-3000:]}")
    with open(os.path.join(out_dir, "models.json"), encoding="utf-8") as f:
        return json.load(f)


def frame_rows(built: dict, sizes, frames: int) -> list:
    """Per-frame stage times of every model at each size (alternating rounds within a size); printed."""
    frame, rows = camera_frame(), []
    print(f"\nper 640x480 frame, int8, 1 thread, default head; median CPU ms (and wall ms) of {frames} frames per "
          f"model in {ROUNDS} alternating rounds")
    print(f"{'model':<46} {'size':>4} {'GMACs':>6} {'native map':>10} {'invoke':>7} {'post':>6} {'total':>7} "
          f"{'wall':>7} {BASELINE + '/this':>17}")
    for size in sizes:
        paths = {name: entry[str(size)]["path"] for name, entry in built["models"].items()}
        timed = time_heads(paths, frame, frames)
        base = timed.get(BASELINE)
        for name, ms in timed.items():
            entry = built["models"][name][str(size)]
            speedup = base["total"] / ms["total"] if base else None
            rows.append({"model": name, "label": LABELS[name], "size": size, "macs": entry["macs"],
                         "params": entry["params"], "output_stride": entry["output_stride"],
                         "parity_drop_points": entry["parity_drop_points"],
                         **{f"{stage}_ms": value for stage, value in ms.items()}, "baseline_over_this": speedup})
            rows[-1]["undelegated_ops"] = undelegated_ops(entry["path"])
            native = -(-size // entry["output_stride"])
            print(f"{LABELS[name]:<46} {size:>4} {entry['macs'] / 1e9:6.2f} {f'{native}x{native}':>10} "
                  f"{ms['invoke']:7.2f} {ms['postprocess']:6.2f} {ms['total']:7.2f} {ms['wall']:7.2f} "
                  f"{(f'{speedup:.2f}x' if speedup else '-'):>17}")
    for name in built["models"]:
        print(f"ops XNNPACK leaves to LiteRT's kernels, {LABELS[name]}: "
              f"{next(r['undelegated_ops'] for r in rows if r['model'] == name) or 'none'}")
    return rows


def undelegated_ops(path: str) -> dict:
    """{op: count} of the ops XNNPACK does not take (each delegated op becomes a DELEGATE node with its outputs)."""
    from ai_edge_litert.interpreter import Interpreter
    interpreter = Interpreter(model_path=path, num_threads=1, experimental_disable_delegate_node_fusion=True)
    interpreter.allocate_tensors()
    ops = interpreter._get_ops_details()  # the only op listing the Python API has
    delegated = {int(t) for op in ops if op["op_name"] == "DELEGATE" for t in op["outputs"]}
    kept = [op["op_name"] for op in ops
            if op["op_name"] != "DELEGATE" and not {int(t) for t in op["outputs"]} <= delegated]
    return {name: kept.count(name) for name in sorted(set(kept))}


def invoke_ms(paths: dict, runs: int) -> dict:
    """{key: median ms of one invoke}, 1 thread, the interpreters timed in alternating rounds."""
    import numpy as np
    from ai_edge_litert.interpreter import Interpreter
    interpreters = {}
    for key, path in paths.items():
        interpreter = Interpreter(model_path=path, num_threads=1)
        interpreter.allocate_tensors()
        detail = interpreter.get_input_details()[0]
        interpreter.set_tensor(detail["index"], np.random.default_rng(0).integers(0, 255, detail["shape"],
                                                                                   dtype=np.uint8))
        interpreter.invoke()  # warm-up
        interpreters[key] = interpreter
    times = {key: [] for key in interpreters}
    for _ in range(ROUNDS):
        for key, interpreter in interpreters.items():
            for _ in range(max(1, runs // ROUNDS)):
                start = time.perf_counter()
                interpreter.invoke()
                times[key].append(time.perf_counter() - start)
    return {key: 1e3 * statistics.median(values) for key, values in times.items()}


def profile_rows(built: dict, runs: int) -> list:
    """Per-stage invoke ms, multiply-adds and ops of MobileNetV3-Large, full beside minimalistic; printed."""
    cuts = built["profile"]
    if not cuts:
        return []
    cumulative = invoke_ms({i: cut["path"] for i, cut in enumerate(cuts)}, runs)
    rows, previous = [], {}
    for i, cut in enumerate(cuts):
        before = previous.get(cut["variant"], {"ms": 0.0, "macs": 0, "ops": {}})
        ops = {op: n - before["ops"].get(op, 0) for op, n in cut["ops"].items() if n - before["ops"].get(op, 0) > 0}
        ops.pop("QUANTIZE", None)  # the input's uint8-to-int8 one, in the first cut only: not a stage's work
        rows.append({"variant": cut["variant"], "stage": cut["stage"], "size": cut["size"],
                     "ms": cumulative[i] - before["ms"], "macs": cut["macs"] - before["macs"], "ops": ops})
        previous[cut["variant"]] = {"ms": cumulative[i], "macs": cut["macs"], "ops": cut["ops"]}
    size = cuts[0]["size"]
    print(f"\nwhere the time goes: LR-ASPP MobileNetV3-Large at {size}x{size}, int8, invoke only, 1 thread, "
          f"median of {runs} per cut (a stage = its cut minus the previous cut)")
    print(f"{'stage':<42} {'variant':<13} {'ms':>7} {'share':>6} {'GMACs':>6} {'ms/GMAC':>8}  ops")
    totals = {variant: state["ms"] for variant, state in previous.items()}
    for row in rows:
        rate = row["ms"] / (row["macs"] / 1e9) if row["macs"] else float("nan")
        ops = ", ".join(f"{op} {n}" for op, n in sorted(row["ops"].items(), key=lambda item: -item[1]))
        share = 100 * row["ms"] / totals[row["variant"]]
        print(f"{row['stage']:<42} {row['variant']:<13} {row['ms']:7.2f} {share:5.1f}% {row['macs'] / 1e9:6.3f} "
              f"{rate:8.1f}  {ops}")
    return rows


def train_flags(name: str, smoke: bool) -> list:
    kwargs, flags = mnv3_models.MODELS[name], []
    flags += ["--arch", kwargs["arch"], "--backbone", kwargs["backbone"]]
    if "alpha" in kwargs:
        flags += ["--alpha", "0.35" if smoke else str(kwargs["alpha"])]
    if "head_filters" in kwargs:
        flags += ["--head-filters", str(kwargs["head_filters"])]
    flags += ["--no-aspp"] if kwargs.get("aspp") is False else []
    flags += ["--no-decoder"] if kwargs.get("decoder") is False else []
    return flags + (["--minimalistic"] if kwargs.get("minimalistic") else [])


def quality(names, out_dir: str, *, steps: int, epochs: int, size: int, batch_size: int, dataset: str,
            smoke: bool) -> tuple[dict, dict]:
    """({name: {"val_mean_iou", "train_seconds"}}, {name: run directory}): train.py with the same settings each."""
    out, runs = {}, {}
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="2")
    print(f"\nval mIoU after train.py, {epochs} epoch(s) x {steps} steps of batch {batch_size} at {size} px on "
          f"{dataset} (the arch defaults: AdamW, poly decay, warm-up)")
    for name in names:
        runs[name] = os.path.join(out_dir, f"run_{name}")
        command = [sys.executable, os.path.join(ROOT, "train.py"), *train_flags(name, smoke), "--dataset", dataset,
                   "--image-size", str(size), "--epochs", str(epochs), "--steps-per-epoch", str(steps),
                   "--batch-size", str(batch_size), "--output-dir", runs[name], "--quiet"]
        done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"train.py for {name} failed:\n{done.stderr[-3000:]}")
        with open(os.path.join(runs[name], "metrics.json"), encoding="utf-8") as f:
            metrics = json.load(f)
        out[name] = {"val_mean_iou": metrics["last"]["mean_iou"], "train_seconds": metrics["elapsed_seconds"]}
        print(f"{LABELS[name]:<46} val mIoU {out[name]['val_mean_iou']:.4f} ({out[name]['train_seconds']:.0f} s)",
              flush=True)
    return out, runs


def goals_for(rows: list, goal_size: int) -> list:
    """The speed-up goals of the models measured, at ``goal_size`` (the largest size measured stands in when 513
    is not: --smoke; the text says which)."""
    goals = []
    for name, target in GOALS.items():
        row = next((r for r in rows if r["model"] == name and r["size"] == goal_size), None)
        if row is None or row["baseline_over_this"] is None:
            continue
        measured = row["baseline_over_this"]
        goals.append(results.goal(f"{name}_speedup", f"per-frame time, DeepLab MobileNetV2 mobile head / "
                                  f"{LABELS[name]} (at {goal_size})", compare=">=", target=target, measured=measured,
                                  unit="x"))
        print(f"goal: {LABELS[name]} >= {target}x faster per frame than the DeepLab MobileNetV2 mobile head at "
              f"{goal_size}: {measured:.2f}x, {'met' if measured >= target else 'NOT met'}")
    return goals


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=None, help="input sizes (default: 513 257)")
    parser.add_argument("--frames", type=int, default=40, help="timed frames per model and size (median)")
    parser.add_argument("--profile-runs", type=int, default=20, help="timed invokes per profile cut (median)")
    parser.add_argument("--train-steps", type=int, default=None, help="steps per epoch of the training runs")
    parser.add_argument("--train-epochs", type=int, default=None, help="epochs of the quality runs (default: 3)")
    parser.add_argument("--models", nargs="+", choices=sorted(mnv3_models.MODELS), default=None,
                        help=f"the models to train and time (default: all; the baseline {BASELINE} is always in)")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, two models, a 2-step run: checks the script")
    parser.add_argument("--json", default=None, help="also write the results here (benchmarks/results.py)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    sizes = args.sizes or ([65] if args.smoke else [513, 257])
    steps = args.train_steps or (2 if args.smoke else 60)
    epochs = args.train_epochs or (1 if args.smoke else 3)
    train_size, batch_size = (64, 4) if args.smoke else (256, 8)
    dataset = "synthetic:16?val=4&size=64" if args.smoke else TRAIN_DATASET
    import cv2
    cv2.setNumThreads(1)
    load = os.getloadavg()
    names = mnv3_models.SMOKE_MODELS if args.smoke else list(mnv3_models.MODELS)
    if args.models:
        names = [name for name in mnv3_models.MODELS if name in args.models or name == BASELINE]
    print(f"CPU: {cpu_simd()}")
    with tempfile.TemporaryDirectory() as tmp:
        miou, runs = quality(names, tmp, steps=steps, epochs=epochs, size=train_size, batch_size=batch_size,
                             dataset=dataset, smoke=args.smoke)
        profile_size = max(sizes) if "lraspp_large" in names or args.smoke else None  # the profile is Large's
        built = build(os.path.join(tmp, "artifacts"), runs, sizes=sizes, profile_size=profile_size, smoke=args.smoke)
        rows = frame_rows(built, sizes, args.frames)
        profile = profile_rows(built, args.profile_runs)
    goal_size = 513 if 513 in sizes else max(sizes)
    goals = goals_for(rows, goal_size)
    print(load_line(load))
    ratios = {"baseline_over_this_per_frame": {f"{r['model']} {r['size']}": r["baseline_over_this"] for r in rows}}
    measured = {"frames": args.frames, "rows": rows, "profile": profile, "val_mean_iou": miou,
                "training": {"steps_per_epoch": steps, "epochs": epochs, "image_size": train_size,
                             "batch_size": batch_size, "dataset": dataset}}
    results.write(args.json, load_before=load, measured=measured, ratios=ratios, goals=goals)
    return 0


if __name__ == "__main__":
    sys.exit(main())
