"""Does the edge pipeline hide capture and drawing? Loop FPS vs interpreter-only FPS, CPU outside invoke, TF's cost;
and what the exact masks of the live view cost and gain over nearest.

    python benchmarks/bench_edge_loop.py                 # DeepLab MobileNetV2 mobile head at 513, full and native heads
    python benchmarks/bench_edge_loop.py --model M.tflite --threads 1

(1) For each model, on one Segmenter (the same interpreter and thread count), alternated:
interpreter-only FPS (back-to-back ``invoke()`` on a fixed input: set the input, invoke, copy the
output, as the loop's inference thread does) against the end-to-end FPS of the loop ``python -m edge``
runs, on a 640x480 video file, headless, with overlay, legend and stats (and a recording with
--record). Goal: loop / interpreter >= 0.9 for the default (native) head. Beside the FPS, the loop's
own ``cpu_ms_outside_invoke`` (process CPU per frame minus the inference thread's CPU in invoke: decode,
resize, post-processing, drawing), which the three threads hide only while a core is free for it.
The default models are int8 artifacts (random weights) of benchmarks/head_models.py: ``full`` is
today's path (scores at 513x513, argmax and colours there), ``native`` the 33x33 head. Goal: at most
half the CPU outside invoke of today's path (3.2 to 7.1 ms per frame were measured before the native head).
(2) Peak RSS and start-up time (process start to exit after one frame) of the same command with
``--runtime ai_edge_litert`` and ``--runtime tensorflow``.
(3) The live view's upsampling (``python -m edge --upsample exact|nearest``), on real weights: Coral's depth-0.5
VOC file imported and exported by ``convert.py --int8`` at 513 (default native head, 33x33 scores; and
``--head full`` as the reference), 1 interpreter thread. On a 640x480 clip panning over the two photos of
tests/data: loop FPS over interpreter-only FPS for each mode (goal with exact: >= 0.85), and the milliseconds per
frame the caller's thread spends on the class map (postprocess) and the overlay (render), and its CPU time per
frame (which, unlike wall time, another process's load does not stretch). On the two photos at
their own sizes: the masks the loop writes (``--masks``) against ``Segmenter.segment`` of the full head, mean IoU
over the classes either map holds, both photos' pixels together (goal with exact: >= 0.99). ``--upsample-models
built`` takes the ``--built`` models instead (random weights: a check of the script, as ``--quick`` runs it).

The models are built in a subprocess, so this process never imports TensorFlow.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import cv2
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

import head_models  # noqa: E402
import results  # noqa: E402
from machine import cpu_simd, load_line  # noqa: E402
from edge.loop import Loop  # noqa: E402
from edge.sinks import MaskWriter, Recorder  # noqa: E402
from edge.segmenter import Segmenter  # noqa: E402
from edge.sources import open_source  # noqa: E402

GOAL = 0.9
OUTSIDE_GOAL = 0.5
EXACT_LOOP_GOAL, EXACT_IOU_GOAL = 0.85, 0.99
UPSAMPLE_MODES = ("exact", "nearest")
BEFORE_CPU_MS = (3.2, 7.1)  # CPU outside invoke per 640x480 frame measured on other machines before the native head


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a .tflite segmentation model (default: the mobile513 heads)")
    parser.add_argument("--built", default="mobile513", choices=sorted(head_models.MODELS),
                        help="which benchmarks/head_models.py model to use without --model")
    parser.add_argument("--threads", type=int, default=1, help="interpreter threads")
    parser.add_argument("--frames", type=int, default=60, help="frames in the test video")
    parser.add_argument("--repeats", type=int, default=3, help="alternated runs of each measurement")
    parser.add_argument("--record", action="store_true", help="also record the overlay to .mp4 in the loop run")
    parser.add_argument("--skip-tensorflow", action="store_true", help="skip the tensorflow.lite comparison")
    parser.add_argument("--upsample-models", choices=("voc", "built"), default="voc",
                        help="(3): the imported VOC model (made and cached on first use) or the --built ones")
    parser.add_argument("--json", default=None, help="also write the results here (benchmarks/results.py)")
    args = parser.parse_args(argv)
    if args.model and args.upsample_models == "built":
        parser.error("--upsample-models built takes the --built models' native and full heads; not with --model")
    return args


def write_video(path: str, frames: int) -> None:
    """A camera-like 640x480 clip: a smooth gradient with moving coloured blocks (MJPG)."""
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    ys, xs = np.mgrid[0:480, 0:640]
    base = np.dstack([xs * 255 // 639, ys * 255 // 479, np.full_like(xs, 96)]).astype(np.uint8)
    for i in range(frames):
        frame = base.copy()
        for k, color in enumerate(((40, 40, 220), (40, 200, 40), (220, 60, 60))):
            x = (60 + 150 * k + 5 * i) % 560
            cv2.rectangle(frame, (x, 120 + 80 * k), (x + 80, 200 + 80 * k), color, thickness=-1)
        writer.write(frame)
    writer.release()


def write_photo_clip(path: str, frames: int) -> None:
    """A 640x480 clip panning over the two photos of tests/data (half the frames each), MJPG."""
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    for i in range(frames):
        photo = cv2.imread(os.path.join(head_models.DATA, head_models.PHOTOS[2 * i // frames]))
        h, w = photo.shape[:2]
        t = (i % max(1, frames // 2)) / max(1, frames // 2 - 1)  # 0 -> 1 over each half
        ch, cw = int(0.85 * h), int(0.85 * w)
        top, left = int(t * (h - ch)), int(t * (w - cw))
        writer.write(cv2.resize(photo[top:top + ch, left:left + cw], (640, 480), interpolation=cv2.INTER_AREA))
    writer.release()


class Discard:
    """A preview-server stand-in: the loop draws every frame for it, as for a window, and it drops them."""

    def publish(self, frame, stats=None) -> None:
        pass

    def set_stats(self, stats) -> None:
        pass


def first_tensor(seg: Segmenter, video: str) -> np.ndarray:
    capture = cv2.VideoCapture(video)
    ok, frame = capture.read()
    capture.release()
    if not ok:
        raise RuntimeError(f"cannot read {video}")
    return seg.preprocess(frame)[0]


def interpreter_fps(seg: Segmenter, tensor: np.ndarray, runs: int) -> tuple[float, float]:
    """(FPS, CPU ms per frame) of back-to-back invokes on a fixed input."""
    cpu, start = time.process_time(), time.perf_counter()
    for _ in range(runs):
        seg.invoke(tensor)
    return runs / (time.perf_counter() - start), 1e3 * (time.process_time() - cpu) / runs


def loop_fps(seg: Segmenter, video: str, record: str | None) -> tuple[float, float, dict, float, float]:
    """(FPS, CPU ms per frame, stage means in ms, the loop's cpu_ms_outside_invoke, the caller's thread's CPU ms
    per frame: smoothing, class map, overlay, sinks) over the whole video."""
    source = open_source(video)
    recorder = Recorder(record, fps=30.0) if record else None
    cpu, caller, start = time.process_time(), time.thread_time(), time.perf_counter()
    try:
        result = Loop(seg, source, recorder=recorder, server=Discard()).run(handle_signals=False)
    finally:
        source.close()
    wall, cpu, caller = time.perf_counter() - start, time.process_time() - cpu, time.thread_time() - caller
    return (result.frames / wall, 1e3 * cpu / result.frames, result.stats["stages_ms"],
            result.stats["cpu_ms_outside_invoke"], 1e3 * caller / result.frames)


def measure(model: str, video: str, args, tmp: str, *, upsample: str = "exact") -> dict:
    """Interpreter-only and loop runs of one model, alternated; medians."""
    seg = Segmenter.from_file(model, threads=args.threads, upsample=upsample)  # one interpreter for both
    tensor = first_tensor(seg, video)
    for _ in range(3):
        seg.invoke(tensor)
    runs = {"interp": [], "interp_cpu": [], "loop": [], "loop_cpu": [], "outside": [], "postprocess_ms": [],
            "render_ms": [], "caller_cpu_ms": []}
    for _ in range(args.repeats):  # alternate, so background load hits both alike
        fps, cpu = interpreter_fps(seg, tensor, args.frames)
        runs["interp"].append(fps)
        runs["interp_cpu"].append(cpu)
        fps, cpu, stages, outside, caller = loop_fps(seg, video, os.path.join(tmp, "out.mp4") if args.record else None)
        runs["caller_cpu_ms"].append(caller)
        runs["loop"].append(fps)
        runs["loop_cpu"].append(cpu)
        runs["outside"].append(outside)
        runs["postprocess_ms"].append(stages["postprocess"])
        runs["render_ms"].append(stages["render"])
    result = {key: statistics.median(values) for key, values in runs.items()}
    shape = "x".join(str(int(d)) for d in seg._output["shape"][1:])
    result.update(stages=stages, runs=runs, output=f"{shape} {np.dtype(seg._output['dtype']).name}")
    return result


def process_cost(model: str, video: str, runtime: str, *, root: str = ROOT) -> tuple[float, float, float]:
    """(wall seconds, peak RSS MB, CPU seconds) of ``python -m edge`` for one frame with ``runtime``, run from
    checkout ``root``."""
    command = [sys.executable, "-m", "edge", "--model", model, "--source", video, "--no-display",
               "--max-frames", "1", "--runtime", runtime, "--log-level", "WARNING"]
    env = dict(os.environ, PYTHONPATH=root)
    start = time.perf_counter()
    process = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    took = time.perf_counter() - start
    if status != 0:
        raise RuntimeError(f"{' '.join(command)} failed: {process.stderr.read().decode()[-500:]}")
    return took, usage.ru_maxrss / 1024.0, usage.ru_utime + usage.ru_stime  # ru_maxrss is in KB on Linux


def loop_section(results_by_model: dict, args) -> tuple[dict, list]:
    """Print the FPS table and the goal lines; (ratios, goals) for the results file."""
    print(f"\nCPU: {cpu_simd()}")
    print(f"{args.built if not args.model else ''} threads {args.threads}, {args.frames} frames of 640x480, "
          f"{'with' if args.record else 'without'} recording, median of {args.repeats} alternated runs")
    print(f"{'model':<12} {'output':<16} {'interp FPS':>10} {'loop FPS':>9} {'loop/interp':>11} "
          f"{'CPU ms outside invoke':>21} {'loop CPU - interp CPU':>21}")
    ratios = {"loop_over_interpreter": {}}
    for name, r in results_by_model.items():
        ratio = ratios["loop_over_interpreter"][name] = r["loop"] / r["interp"]
        print(f"{name:<12} {r['output']:<16} {r['interp']:10.2f} {r['loop']:9.2f} {ratio:11.3f} "
              f"{r['outside']:21.2f} {r['loop_cpu'] - r['interp_cpu']:21.2f}")
        print("  stages, ms per frame (last run): " + ", ".join(f"{k} {v:.1f}" for k, v in r["stages"].items()))
    default_name = "native" if "native" in results_by_model else next(iter(results_by_model))
    default = results_by_model[default_name]
    ratio = default["loop"] / default["interp"]
    model = args.built if not args.model else os.path.basename(args.model)
    goals = [results.goal("loop_fps", f"camera loop FPS / interpreter-only FPS ({model}, default head)",
                          compare=">=", target=GOAL, measured=ratio)]
    print(f"goal: loop / interpreter >= {GOAL} for the default head: {ratio:.3f}, "
          f"{'met' if ratio >= GOAL else 'NOT met'}")
    if "full" in results_by_model and "native" in results_by_model:
        before, after = results_by_model["full"]["outside"], results_by_model["native"]["outside"]
        ratio = ratios["outside_invoke_native_over_full"] = after / before
        goals.append(results.goal("loop_cpu_outside_invoke", "loop CPU outside invoke, default head / full head",
                                  compare="<=", target=OUTSIDE_GOAL, measured=ratio, unit="x"))
        print(f"goal: CPU outside invoke at most half of today's: native {after:.2f} ms vs full head (today's "
              f"path, same run) {before:.2f} ms = {ratio:.2f}x, {'met' if ratio <= OUTSIDE_GOAL else 'NOT met'}; vs "
              f"{BEFORE_CPU_MS[0]}-{BEFORE_CPU_MS[1]} ms before the native head (other machines): "
              f"{'met' if after <= BEFORE_CPU_MS[0] / 2 else 'NOT met'}")
    return ratios, goals


def runtime_section(model: str, video: str, *, skip_tensorflow: bool) -> dict:
    """Print start-up time and peak RSS per runtime; {runtime: {"startup_s", "peak_rss_mb"}}."""
    runtimes = ["ai_edge_litert"] + ([] if skip_tensorflow else ["tensorflow"])
    costs = {r: [process_cost(model, video, r) for _ in range(2)] for r in runtimes}
    summary = {r: {"startup_s": min(c[0] for c in runs), "peak_rss_mb": max(c[1] for c in runs)}
               for r, runs in costs.items()}
    print(f"\n{'runtime':<16} {'start-up + 1 frame s':>22} {'peak RSS MB':>12}")
    for runtime, cost in summary.items():
        print(f"{runtime:<16} {cost['startup_s']:>22.2f} {cost['peak_rss_mb']:>12.0f}")
    if "tensorflow" in summary:
        base, tf_cost = summary["ai_edge_litert"], summary["tensorflow"]
        print(f"{'tensorflow / litert':<16} {tf_cost['startup_s'] / base['startup_s']:>21.1f}x "
              f"{tf_cost['peak_rss_mb'] / base['peak_rss_mb']:>11.1f}x")
    return summary


def mask_iou(native: str, full: str, upsample: str, tmp: str) -> dict:
    """Mean IoU of the masks the loop writes for the two photos against the full head's ``Segmenter.segment``:
    over the classes either holds, each photo alone and both together."""
    from PIL import Image  # reads the indexed PNGs as ids (OpenCV would give their colours)

    photos, masks = os.path.join(tmp, "photos"), os.path.join(tmp, f"masks-{upsample}")
    os.makedirs(photos, exist_ok=True)
    os.makedirs(masks)
    for name in head_models.PHOTOS:
        shutil.copy(os.path.join(head_models.DATA, name), photos)
    seg, reference = Segmenter.from_file(native, upsample=upsample), Segmenter.from_file(full)
    source = open_source(photos)
    try:
        Loop(seg, source, masks=MaskWriter(masks, colors=seg.spec.colors)).run(handle_signals=False)
    finally:
        source.close()
    classes = seg.spec.num_classes
    total, out = np.zeros((classes, classes)), {}
    for index, path in enumerate(source.paths):  # the image source reads them in this order
        mask = np.asarray(Image.open(os.path.join(masks, f"{index:06d}.png")), np.int64)
        truth = np.asarray(reference.segment(cv2.imread(path)), np.int64)
        confusion = np.bincount(truth.ravel() * classes + mask.ravel(), minlength=classes ** 2).reshape(classes, -1)
        total += confusion
        out[os.path.basename(path)] = miou(confusion)
    out["both"] = miou(total)
    return out


def miou(confusion: np.ndarray) -> float:
    inter = np.diag(confusion)
    union = confusion.sum(0) + confusion.sum(1) - inter
    return float(np.mean(inter[union > 0] / union[union > 0]))


def upsample_section(models: dict, args, tmp: str) -> tuple[dict, dict, list]:
    """Section (3): loop / interpreter FPS, caller-thread ms and mask IoU for --upsample exact and nearest."""
    video = os.path.join(tmp, "photos.avi")
    write_photo_clip(video, args.frames)
    measured = {mode: measure(models["native"], video, args, tmp, upsample=mode) for mode in UPSAMPLE_MODES}
    for mode in UPSAMPLE_MODES:
        measured[mode]["iou"] = mask_iou(models["native"], models["full"], mode, tmp)
    which = "imported depth-0.5 VOC int8 513" if args.upsample_models == "voc" else f"{args.built} (random weights)"
    print(f"\n--upsample in the loop: {which}, native head {measured['exact']['output']}, threads {args.threads}, "
          f"{args.frames} frames of 640x480 panning over the photos, median of {args.repeats} alternated runs")
    print("caller's thread per frame: wall ms of the class map (postprocess) and the overlay (render), and its CPU ms "
          "(both, the stats and the hand-over to the sink)")
    print(f"{'upsample':<9} {'interp FPS':>10} {'loop FPS':>9} {'loop/interp':>11} {'postprocess':>11} "
          f"{'render':>7} {'CPU':>6}   mIoU vs full head: photos, both")
    ratios = {}
    for mode, r in measured.items():
        ratio = ratios[f"loop_over_interpreter_{mode}"] = r["loop"] / r["interp"]
        iou = ", ".join(f"{name} {value:.4f}" for name, value in r["iou"].items())
        print(f"{mode:<9} {r['interp']:10.2f} {r['loop']:9.2f} {ratio:11.3f} {r['postprocess_ms']:11.2f} "
              f"{r['render_ms']:7.2f} {r['caller_cpu_ms']:6.2f}   {iou}")
    exact = measured["exact"]
    goals = [results.goal("loop_fps_exact", f"live view with --upsample exact: loop FPS / interpreter-only FPS "
                          f"({which})", compare=">=", target=EXACT_LOOP_GOAL,
                          measured=ratios["loop_over_interpreter_exact"]),
             results.goal("mask_iou_exact", f"live view with --upsample exact: mIoU of the written masks against "
                          f"the full head ({which})", compare=">=", target=EXACT_IOU_GOAL,
                          measured=exact["iou"]["both"])]
    for g in goals:
        print(f"goal: {g['text']} {g['target']}: {g['measured']:.3f}, {'met' if g['met'] else 'NOT met'}")
    return measured, ratios, goals


def main(argv=None) -> int:
    args = parse_args(argv)
    models = {os.path.basename(args.model): args.model} if args.model else {
        head: path for (_, head, _), path in head_models.ensure(
            [(args.built, head, "int8") for head in ("full", "native")]).items()}
    with tempfile.TemporaryDirectory() as tmp:
        video = os.path.join(tmp, "video.avi")
        write_video(video, args.frames)
        load_before = os.getloadavg()
        measured = {name: measure(path, video, args, tmp) for name, path in models.items()}
        ratios, goals = loop_section(measured, args)
        print(load_line(load_before))
        runtimes = runtime_section(next(iter(models.values())), video, skip_tensorflow=args.skip_tensorflow)
        pair = head_models.ensure_imported() if args.upsample_models == "voc" else models
        upsampling, more_ratios, more_goals = upsample_section(pair, args, tmp)
        print(load_line(load_before))
    ratios.update(more_ratios)
    goals += more_goals
    names = {"interp": "interpreter_fps", "loop": "loop_fps", "interp_cpu": "interpreter_cpu_ms",
             "loop_cpu": "loop_cpu_ms", "outside": "cpu_ms_outside_invoke", "stages": "stages_ms", "output": "output",
             "postprocess_ms": "postprocess_ms", "render_ms": "render_ms", "caller_cpu_ms": "caller_cpu_ms"}
    results.write(args.json, load_before=load_before, ratios=ratios, goals=goals,
                  measured={"models": {model: {new: r[old] for old, new in names.items()}
                                       for model, r in measured.items()}, "runtimes": runtimes,
                            "upsample": {mode: {**{new: r[old] for old, new in names.items()}, "iou": r["iou"]}
                                         for mode, r in upsampling.items()}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
