"""Run every benchmark in benchmarks/ and write one report, BENCHMARKS.md, with each goal met or not.

    python benchmarks/run.py                       # trains the default run for the QAT/PTQ goal, then all benchmarks
    python benchmarks/run.py --run runs/X          # use a trained DeepLabv3+ run for the QAT/PTQ goal
    python benchmarks/run.py --quick --output /tmp/B.md   # a smoke test: tiny sizes, a 3-step run; not for the numbers

The main job's goals (issue 3: within 10 minutes, val mIoU >= 0.90) are read from the run's metrics.json.
Each benchmark runs in its own process (so one's threads and memory do not touch the next), its output goes
into the report verbatim, and the numbers the goals need are read from it. Run it on an idle machine: every
goal is a ratio of two timings taken in the same process, but other load still skews them. Exit status 1 when
a benchmark failed (the report is written anyway, with the error), else 0, whether or not each goal is met.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime
import glob
import importlib.metadata
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

# The benchmarks this script knows the flags and output of; any other benchmarks/bench_*.py runs with no flags.
KNOWN = ("bench_models.py", "bench_input_pipeline.py", "bench_int8.py", "bench_heads.py", "bench_upsample.py",
         "bench_edge_loop.py", "bench_edge_startup.py")
DEEPLAB_ROW = "DeepLab MobileNetV2 (1x1 + pooling, no decoder) OS16"
NUMBER = r"(-?\d+(?:\.\d+)?)"


@dataclasses.dataclass
class Result:
    """One benchmark process: its command, output and how long it took."""
    name: str
    command: list
    stdout: str = ""
    error: str | None = None
    seconds: float = 0.0


@dataclasses.dataclass
class Goal:
    text: str
    target: str
    measured: float | None
    met: bool | None


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=os.path.join(ROOT, "BENCHMARKS.md"), help="report path")
    parser.add_argument("--run", default=None,
                        help="trained DeepLabv3+ run for the QAT/PTQ goal (default: train one with train.py)")
    parser.add_argument("--quick", action="store_true", help="tiny sizes and runs: checks the script, not the goals")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed for each benchmark")
    return parser.parse_args(argv)


def flags(quick: bool) -> dict:
    """Flags for each known benchmark; the full set measures the models the goals are stated for."""
    if quick:
        return {
            "bench_models.py": [["--only", "FCN-8s"], ["--only", DEEPLAB_ROW]],
            "bench_input_pipeline.py": [["--dataset", "synthetic?train=64&val=8", "--steps", "3", "--warmup", "1",
                                         "--repeats", "1", "--batch-size", "4"]],
            "bench_int8.py": [["--models", "deeplab257", "--alpha", "0.35", "--threads", "1", "--runs", "3",
                               "--calibration-steps", "2", "--qat-steps", "3"]],
            "bench_heads.py": [["--models", "mobile257", "--heads", "full", "native", "--frames", "3"]],
            "bench_upsample.py": [["--repeats", "2", "--kinds", "scene"]],
            "bench_edge_loop.py": [["--built", "mobile257", "--frames", "10", "--repeats", "1", "--skip-tensorflow"]],
            "bench_edge_startup.py": [["--repeats", "1"]],
        }
    return {
        "bench_models.py": [[]],
        "bench_input_pipeline.py": [["--steps", "30", "--repeats", "3"]],
        "bench_int8.py": [["--models", "deeplab257", "deeplab513", "--threads", "1", "2", "--runs", "30"]],
        "bench_heads.py": [[]],
        "bench_upsample.py": [[]],
        "bench_edge_loop.py": [[]],
        "bench_edge_startup.py": [[]],
    }


def run_process(name: str, command: list, *, timeout: float) -> Result:
    print(f"[run] {name}: {' '.join(command)}", flush=True)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), TF_CPP_MIN_LOG_LEVEL="2")
    start = time.perf_counter()
    result = Result(name, command)
    try:
        done = subprocess.run([sys.executable, *command], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=timeout)
        result.stdout = done.stdout
        if done.returncode != 0:
            result.error = f"exit {done.returncode}: {done.stderr.strip()[-1500:]}"
    except subprocess.TimeoutExpired as error:
        result.stdout = error.stdout.decode() if isinstance(error.stdout, bytes) else (error.stdout or "")
        result.error = f"timed out after {timeout:.0f} s"
    result.seconds = time.perf_counter() - start
    print(f"[run] {name}: {'failed, ' + result.error[:300] if result.error else 'done'} in {result.seconds:.0f} s",
          flush=True)
    return result


def train_run(out_dir: str, *, quick: bool, timeout: float) -> Result:
    """``python train.py --arch deeplabv3plus`` (the README's command; a 3-step run with --quick)."""
    command = ["train.py", "--arch", "deeplabv3plus", "--output-dir", out_dir, "--quiet"]
    if quick:
        command += ["--dataset", "synthetic?train=32&val=8", "--epochs", "1", "--steps-per-epoch", "3",
                    "--batch-size", "4"]
    return run_process("train.py", command, timeout=timeout)


def machine() -> list:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    ram = "unknown"
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        ram = f"{kb / 2 ** 20:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass

    def version(package):
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    load = " / ".join(f"{x:.2f}" for x in os.getloadavg()) if hasattr(os, "getloadavg") else "unknown"
    return [("CPU", cpu), ("cores (os.cpu_count)", str(os.cpu_count())), ("RAM", ram),
            ("OS", f"{platform.system()} {platform.release()}"), ("Python", platform.python_version()),
            ("tensorflow", version("tensorflow")), ("tf-keras", version("tf-keras")),
            ("ai-edge-litert", version("ai-edge-litert")), ("opencv", version("opencv-python-headless")),
            ("date (UTC)", datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M")),
            ("load average at start (1/5/15 min)", load)]


def find(pattern: str, text: str, group: int = 1, flags_=re.MULTILINE):
    match = re.search(pattern, text, flags_)
    return float(match.group(group)) if match else None


def goal(text, target, measured, compare):
    return Goal(text, target, measured, None if measured is None else compare(measured))


def main_job_goals(run_dir: str | None, *, seconds: float | None = None) -> list:
    """Issue 3's goals for the main job: minutes (``seconds``, the whole process, when this script trained it;
    else the run's own training time) and best val mIoU, from the run's metrics.json."""
    minutes = miou = None
    if run_dir:
        try:
            with open(os.path.join(run_dir, "metrics.json")) as f:
                metrics = json.load(f)
            minutes = (seconds or metrics["elapsed_seconds"]) / 60
            miou = metrics["best"]["mean_iou"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return [goal("main job (`python train.py --arch deeplabv3plus`) wall time, minutes", "<= 10", minutes,
                 lambda v: v <= 10),
            goal("main job best val mean IoU (built-in dataset)", ">= 0.90", miou, lambda v: v >= 0.90)]


def goals_and_anchors(results: dict) -> tuple[list, list]:
    """Read the goal numbers from the benchmarks' output; the comparison rows with their published anchors."""
    out = {name: r.stdout for name, r in results.items()}
    pipeline = find(r"^ratio live / cached\s+" + NUMBER, out.get("bench_input_pipeline.py", ""))
    loop_text = out.get("bench_edge_loop.py", "")
    loop = find(r"^goal: loop / interpreter >= [\d.]+ for the default head: " + NUMBER, loop_text)
    outside = find(r"^goal: CPU outside invoke .* = " + NUMBER + "x", loop_text)
    heads = find(r"^goal: default CPU head \(\S+\) >= [\d.]+x faster .*: " + NUMBER + "x", out.get("bench_heads.py", ""))
    exact = find(r"^goal: the default, \(d\) exact, .*: lowest " + NUMBER + "%", out.get("bench_upsample.py", ""))

    int8_text = out.get("bench_int8.py", "")
    models = {}  # name -> {"size", "gmac", "rows": {threads: (float32 p50 ms, int8 p50 ms, speed-up, % of peak)}}
    for block in re.split(r"\n(?=\w+ \(\d+x\d+, [\d.]+ GMAC\))", int8_text):
        head = re.match(r"(\w+) \((\d+)x\d+, ([\d.]+) GMAC\)", block.strip())
        if not head:
            continue
        rows = {}
        # threads, float32 p50 / p90, ... int8 p50 / p90, speed-up "x", share of peak "%"
        cell = r"([\d.]+) /\s*[\d.]+\s+"
        for line in block.splitlines():
            row = re.match(r"^\s*(\d+)\s+" + cell + r".*?" + cell + r"([\d.]+)x\s+([\d.]+)%\s*$", line)
            if row:
                rows[int(row.group(1))] = (float(row.group(2)), float(row.group(3)), float(row.group(4)),
                                           float(row.group(5)))
        models[head.group(1)] = {"size": int(head.group(2)), "gmac": float(head.group(3)), "rows": rows}
    first = next(iter(models.values()), {"rows": {}})
    one_thread = first["rows"].get(1)
    quality = {m: rf"^{m}\s+{NUMBER}\s+{NUMBER}\s+{NUMBER}\s+<=" for m in ("int8", "qat")}  # keras, tflite, drop
    drops = {m: find(pattern, int8_text, 3) for m, pattern in quality.items()}
    float_miou = find(quality["int8"], int8_text, 1)
    qat_miou = find(quality["qat"], int8_text, 2)

    at = f" ({next(iter(models), '?')}, 1 thread)"
    goals = [
        goal("input pipeline throughput / cached-data training throughput", ">= 0.95", pipeline,
             lambda v: v >= 0.95),
        goal("int8 speed-up over float32" + at, ">= 2.5x", one_thread and one_thread[2], lambda v: v >= 2.5),
        goal("int8 share of the runtime's int8 1x1-conv peak" + at, ">= 50%", one_thread and one_thread[3],
             lambda v: v >= 50.0),
        goal("camera loop FPS / interpreter-only FPS (513 mobile head, default head)", ">= 0.9", loop,
             lambda v: v >= 0.9),
        goal("loop CPU outside invoke, default head / full head", "<= 0.5x", outside, lambda v: v <= 0.5),
        goal("per-frame time, full head / default CPU head (513 mobile head)", ">= 1.6x", heads, lambda v: v >= 1.6),
        goal("default upsampling agrees with the full head's bilinear (lowest, %)", ">= 99%", exact,
             lambda v: v >= 99.0),
        goal("QAT mIoU drop from float (points)", "<= 0.5", drops["qat"], lambda v: v <= 0.5),
        goal("PTQ int8 mIoU drop from float (points)", "<= 2.0", drops["int8"], lambda v: v <= 2.0),
    ]

    counts = out.get("bench_models.py", "")
    fcn_params = find(r"^\| FCN-8s \| " + NUMBER, counts)
    deeplab_gmac = find(r"^\| " + re.escape(DEEPLAB_ROW) + r" \| [\d.]+ \| [\d.-]+ \| " + NUMBER, counts)
    coral = next(({"size": m["size"], "ms": m["rows"][1][1]} for m in models.values()
                  if m["size"] == 513 and 1 in m["rows"]), None)
    coral = coral or next(({"size": m["size"], "ms": m["rows"][1][1]} for m in models.values() if 1 in m["rows"]),
                          None)

    def fmt(value, pattern):
        return "not measured" if value is None else pattern.format(value)

    anchors = [
        ("DeepLab MobileNetV2 (DeepLabv3, OS16, 513x513) multiply-adds", "2.75G (DeepLab model zoo)",
         fmt(deeplab_gmac, "{:.2f}G (our counter)")),
        ("DeepLab MobileNetV2 mIoU, float -> QAT int8", "75.32 -> 74.26 on VOC val (drop 1.06 points)",
         "not measured" if float_miou is None or qat_miou is None else
         f"{float_miou:.2f} -> {qat_miou:.2f} on the run's val set (drop {drops['qat']:.2f} points; "
         "synthetic data, not VOC)"),
        ("DeepLab MobileNetV2 int8 latency, one image", "43 ms at 513x513 on a Coral Edge TPU",
         "not measured" if coral is None else
         f"{coral['ms']:.1f} ms p50 at {coral['size']}x{coral['size']} on this CPU, 1 thread (ai_edge_litert)"),
        ("FCN-8s parameters", "134M (FCN paper)", fmt(fcn_params, "{:.2f}M (our counter)")),
    ]
    return goals, anchors


def report(info, results, goals, anchors, *, quick: bool, training: Result | None, run_dir: str | None) -> str:
    lines = ["# Benchmarks", "",
             "Written by `python benchmarks/run.py`" + (" --quick (a smoke test: tiny sizes, numbers mean nothing)"
                                                        if quick else "") + ".", "", "## Machine", "",
             "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in info]
    lines += ["", "## Goals", "", "| goal | target | measured here | met |", "|---|---|---|---|"]
    for g in goals:
        value = "not measured" if g.measured is None else f"{g.measured:.3g}"
        met = "not measured" if g.met is None else ("met" if g.met else "NOT met")
        lines.append(f"| {g.text} | {g.target} | {value} | {met} |")
    source = run_dir or "a run trained by this command"
    lines += ["", f"QAT and PTQ are measured on {source}: `convert.py`'s export of int8 (PTQ) and QAT against the "
              "Keras float model, on the run's val set.", "",
              "## How we compare", "",
              "| what | published (quoted) | kerasseg (measured here) |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in anchors]
    lines += ["", "The Coral number is an Edge TPU; ours is the CPU of the machine above (no Edge TPU here).", ""]
    if training is not None:
        lines += ["## Training the run for the QAT/PTQ goal", "",
                  f"`python {' '.join(training.command)}`: {training.seconds:.0f} s"
                  + (f", FAILED: {training.error}" if training.error else ""), ""]
    for name, r in results.items():
        lines += [f"## {name}", "", f"`python {' '.join(r.command)}` ({r.seconds:.0f} s)", ""]
        if r.error:
            lines += [f"**Failed:** {r.error}", ""]
        if r.stdout.strip():
            lines += ["```", r.stdout.strip(), "```", ""]
    return "\n".join(lines) + "\n"


def benchmark_names() -> list:
    """The known benchmarks in a fixed order, then any other benchmarks/bench_*.py."""
    present = {os.path.basename(p) for p in glob.glob(os.path.join(HERE, "bench_*.py"))}
    return [n for n in KNOWN if n in present] + sorted(present - set(KNOWN))


def run_benchmarks(*, quick: bool, run_dir: str | None, timeout: float) -> dict:
    """name -> Result, the outputs of a benchmark's several invocations (if any) joined."""
    wanted, results = flags(quick), {}
    for name in benchmark_names():
        parts = []
        for extra in wanted.get(name, [[]]):
            if name == "bench_int8.py" and run_dir:
                extra = extra + ["--run", run_dir]
            parts.append(run_process(name, [os.path.join("benchmarks", name), *extra], timeout=timeout))
        results[name] = Result(name, parts[0].command, "\n".join(p.stdout for p in parts),
                               "; ".join(p.error for p in parts if p.error) or None, sum(p.seconds for p in parts))
    return results


def main(argv=None) -> int:
    args = parse_args(argv)
    info = machine()  # before any benchmark, so the load average is the machine's own
    training = None
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = args.run
        if run_dir is None:
            training = train_run(os.path.join(tmp, "run"), quick=args.quick, timeout=args.timeout)
            run_dir = None if training.error else os.path.join(tmp, "run")
        results = run_benchmarks(quick=args.quick, run_dir=run_dir, timeout=args.timeout)
        main_job = main_job_goals(run_dir, seconds=training.seconds if training and not training.error else None)
    goals, anchors = goals_and_anchors(results)
    goals = main_job + goals
    with open(args.output, "w") as f:
        f.write(report(info, results, goals, anchors, quick=args.quick, training=training, run_dir=args.run))
    print(f"\nwrote {args.output}")
    for g in goals:
        measured = "not measured" if g.measured is None else f"{g.measured:.3g}"
        print(f"  {g.text}: {measured} (target {g.target}) {'' if g.met is None else ('met' if g.met else 'NOT met')}")
    failed = [name for name, r in [("train.py", training), *results.items()] if r is not None and r.error]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
