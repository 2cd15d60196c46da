"""Run every benchmark in benchmarks/ and write one report, BENCHMARKS.md, with each goal met or not.

    python benchmarks/run.py                       # trains the default run for the QAT/PTQ goal, then all benchmarks
    python benchmarks/run.py --run runs/X          # use a trained DeepLabv3+ run for the QAT/PTQ goal
    python benchmarks/run.py --quick --output /tmp/B.md   # a smoke test: tiny models, a 3-step run; not for the numbers

Each benchmark runs in its own process (so one's threads and memory do not touch the next) and writes its
results file with ``--json`` (one schema, benchmarks/results.py: machine and CPU flags, numbers, ratios, goals).
The report's tables are built from those files, and each benchmark's printed output follows verbatim. The main
job's goals (within 10 minutes, val mIoU >= 0.90) are read from the run's metrics.json. Run it on an idle
machine: every goal is a ratio of two timings taken in the same process, but other load still skews them. Exit
status 1 when a benchmark failed (the report is written anyway, with the error), else 0, whether or not each
goal is met.
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
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path[:0] = [ROOT, HERE]

import results  # noqa: E402
from edge.files import write_text  # noqa: E402

# The benchmarks in report order; any other benchmarks/bench_*.py runs after them with only --json.
KNOWN = ("bench_models.py", "bench_input_pipeline.py", "bench_int8.py", "bench_heads.py", "bench_mobilenetv3.py",
         "bench_upsample.py", "bench_edge_loop.py", "bench_edge_startup.py", "bench_smoothing.py", "bench_released.py")
DEEPLAB_ROW = "DeepLab MobileNetV2 (1x1 + pooling, no decoder) OS16"
ON_THE_RUN = ("bench_int8.py", "bench_smoothing.py")  # measured on the trained run (--run) unless --tiny


@dataclasses.dataclass
class Result:
    """One benchmark process: its command, output, results file (read back) and how long it took."""
    name: str
    command: list
    stdout: str = ""
    error: str | None = None
    seconds: float = 0.0
    document: dict | None = None


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--output", default=os.path.join(ROOT, "BENCHMARKS.md"), help="report path")
    parser.add_argument("--results", default=None,
                        help="folder to keep each benchmark's results file in (default: a temporary folder)")
    parser.add_argument("--run", default=None,
                        help="trained DeepLabv3+ run for the QAT/PTQ goal (default: train one with train.py)")
    parser.add_argument("--quick", action="store_true", help="tiny models and runs: checks the script, not the goals")
    parser.add_argument("--timeout", type=float, default=3600.0, help="seconds allowed for each benchmark")
    return parser.parse_args(argv)


def flags(quick: bool) -> dict:
    """Flags for each known benchmark; the full set measures the models the goals are stated for."""
    if quick:
        return {
            "bench_models.py": ["--only", "FCN-8s", DEEPLAB_ROW],
            "bench_input_pipeline.py": ["--dataset", "synthetic?train=64&val=8", "--steps", "3", "--warmup", "1",
                                        "--repeats", "1", "--batch-size", "4"],
            "bench_int8.py": ["--models", "deeplab65", "--alpha", "0.35", "--threads", "1", "--runs", "3",
                              "--calibration-steps", "2", "--qat-steps", "3", "--smoke"],
            "bench_heads.py": ["--models", "tiny65", "--heads", "full", "native", "--frames", "3"],
            "bench_mobilenetv3.py": ["--smoke", "--frames", "3", "--profile-runs", "3"],
            "bench_upsample.py": ["--repeats", "2", "--kinds", "scene"],
            "bench_edge_loop.py": ["--built", "tiny65", "--frames", "10", "--repeats", "1", "--skip-tensorflow",
                                   "--upsample-models", "built"],
            "bench_edge_startup.py": ["--built", "tiny65", "--repeats", "1"],
            "bench_smoothing.py": ["--tiny", "--frames", "10", "--repeats", "3"],  # a colour model, no training
            "bench_released.py": ["--smoke"],
        }
    return {
        "bench_input_pipeline.py": ["--steps", "30", "--repeats", "3"],
        "bench_int8.py": ["--models", "deeplab257", "deeplab513", "--threads", "1", "2", "--runs", "30"],
    }


def run_process(name: str, command: list, *, timeout: float, results_path: str | None = None) -> Result:
    """``python COMMAND`` at the repository root; its results file is read back when it wrote one."""
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
    if results_path and not result.error:
        try:
            result.document = results.read(results_path)
        except (OSError, ValueError) as error:
            result.error = f"no results file: {error}"
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
    """(what, value) rows: CPU, cores, RAM, OS, Python, the packages timed, the date and the load at start."""
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


def main_job_goals(run_dir: str | None, *, seconds: float | None = None) -> list:
    """The main job's goals: minutes (``seconds``, the whole process, when this script trained it; else the run's
    own training time) and best val mIoU, from the run's metrics.json."""
    minutes = miou = None
    if run_dir:
        try:
            with open(os.path.join(run_dir, "metrics.json")) as f:
                metrics = json.load(f)
            minutes = (seconds or metrics["elapsed_seconds"]) / 60
            miou = metrics["best"]["mean_iou"]
        except (OSError, ValueError, KeyError, TypeError):
            pass
    return [results.goal("main_job_minutes", "main job (`python train.py --arch deeplabv3plus`) wall time, minutes",
                         compare="<=", target=10, measured=minutes),
            results.goal("main_job_miou", "main job best val mean IoU (built-in dataset)", compare=">=", target=0.90,
                         measured=miou)]


def anchors(documents: dict) -> list:
    """(what, published figure, ours) rows: our measurements beside the published ones they correspond to."""
    rows = {row["model"]: row for row in _measured(documents, "bench_models.py").get("models", [])}
    int8 = _measured(documents, "bench_int8.py")
    quality = int8.get("quality")
    latency = next((f"{m['threads']['1']['p50_ms']['int8']:.1f} ms p50 at {m['size']}x{m['size']} on this CPU, "
                    "1 thread (ai_edge_litert)" for m in sorted(int8.get("models", {}).values(),
                                                                key=lambda m: m["size"] != 513)
                    if "1" in m["threads"]), "not measured")
    return [
        ("DeepLab MobileNetV2 (DeepLabv3, OS16, 513x513) multiply-adds", "2.75G (DeepLab model zoo)",
         f"{rows[DEEPLAB_ROW]['macs'] / 1e9:.2f}G (our counter)" if DEEPLAB_ROW in rows else "not measured"),
        ("DeepLab MobileNetV2 mIoU, float -> QAT int8", "75.32 -> 74.26 on VOC val (drop 1.06 points)",
         f"{quality['float_miou_pct']:.2f} -> {quality['qat']['device_miou_pct']:.2f} on the run's val set (drop "
         f"{quality['qat']['drop_points']:.2f} points; synthetic data, not VOC)" if quality else "not measured"),
        ("DeepLab MobileNetV2 int8 latency, one image", "43 ms at 513x513 on a Coral Edge TPU", latency),
        ("FCN-8s parameters", "134M (FCN paper)",
         f"{rows['FCN-8s']['params'] / 1e6:.2f}M (our counter)" if "FCN-8s" in rows else "not measured"),
    ]


def _measured(documents: dict, name: str) -> dict:
    document = documents.get(name)
    return document["measured"] if document else {}


def _cell(value) -> str:
    return "not measured" if value is None else f"{value:.3g}"


def report(info, runs, goals, *, quick: bool, training: Result | None, run_dir: str | None) -> str:
    """BENCHMARKS.md: machine, goals and comparisons from the results files, then each benchmark's output."""
    documents = {name: r.document for name, r in runs.items() if r.document}
    first = next(iter(documents.values()), None)
    lines = ["# Benchmarks", "",
             "Written by `python benchmarks/run.py`" + (" --quick (a smoke test: tiny models, numbers mean nothing)"
                                                        if quick else "") + ".", "", "## Machine", "",
             "| | |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in info]
    if first:
        cpu = first["machine"]
        lines.append(f"| SIMD flags | has {' '.join(cpu['simd_flags']) or 'none of them'}; lacks "
                     f"{' '.join(cpu['missing_simd_flags']) or 'nothing'} |")
    lines += ["", "## Goals", "", "| goal | target | measured here | met | benchmark |", "|---|---|---|---|---|"]
    for name, g in goals:
        met = "not measured" if g["met"] is None else ("met" if g["met"] else "NOT met")
        lines.append(f"| {g['text']} | {g['target']} | {_cell(g['measured'])} | {met} | {name} |")
    source = run_dir or "a run trained by this command"
    lines += ["", f"QAT and PTQ are measured on {source}: `convert.py`'s export of int8 (PTQ) and QAT against the "
              "Keras float model, on the run's val set.", "",
              "## How we compare", "",
              "| what | published (quoted) | kerasseg (measured here) |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in anchors(documents)]
    lines += ["", "The Coral number is an Edge TPU; ours is the CPU of the machine above (no Edge TPU here).", ""]
    if training is not None:
        lines += ["## Training the run for the QAT/PTQ goal", "",
                  f"`python {' '.join(training.command)}`: {training.seconds:.0f} s"
                  + (f", FAILED: {training.error}" if training.error else ""), ""]
    for name, r in runs.items():
        lines += [f"## {name}", "", f"`python {' '.join(_without_json(r.command))}` ({r.seconds:.0f} s)", ""]
        if r.error:
            lines += [f"**Failed:** {r.error}", ""]
        if r.stdout.strip():
            lines += ["```", r.stdout.strip(), "```", ""]
    return "\n".join(lines) + "\n"


def _without_json(words: list) -> list:
    """A benchmark's arguments without ``--json PATH`` (a temporary path, meaningless in the report)."""
    return [w for i, w in enumerate(words) if w != "--json" and (i == 0 or words[i - 1] != "--json")]


def benchmark_names() -> list:
    """The known benchmarks in a fixed order, then any other benchmarks/bench_*.py."""
    present = {os.path.basename(p) for p in glob.glob(os.path.join(HERE, "bench_*.py"))}
    return [n for n in KNOWN if n in present] + sorted(present - set(KNOWN))


def run_benchmarks(results_dir: str, *, quick: bool, run_dir: str | None, timeout: float) -> dict:
    """name -> Result, each benchmark run once with ``--json`` into ``results_dir``."""
    wanted, runs = flags(quick), {}
    for name in benchmark_names():
        extra = wanted.get(name, [])
        if run_dir and name in ON_THE_RUN and "--tiny" not in extra:
            extra = extra + ["--run", run_dir]
        path = os.path.join(results_dir, name.replace(".py", ".json"))
        runs[name] = run_process(name, [os.path.join("benchmarks", name), *extra, "--json", path], timeout=timeout,
                                 results_path=path)
    return runs


def main(argv=None) -> int:
    args = parse_args(argv)
    info = machine()  # before any benchmark, so the load average is the machine's own
    training = None
    with tempfile.TemporaryDirectory() as tmp:
        results_dir = args.results or os.path.join(tmp, "results")
        os.makedirs(results_dir, exist_ok=True)
        run_dir = args.run
        if run_dir is None:
            training = train_run(os.path.join(tmp, "run"), quick=args.quick, timeout=args.timeout)
            run_dir = None if training.error else os.path.join(tmp, "run")
        runs = run_benchmarks(results_dir, quick=args.quick, run_dir=run_dir, timeout=args.timeout)
        main_job = main_job_goals(run_dir, seconds=training.seconds if training and not training.error else None)
    goals = [("train.py", g) for g in main_job] + [(name, g) for name, r in runs.items() if r.document
                                                   for g in r.document["goals"]]
    write_text(args.output, report(info, runs, goals, quick=args.quick, training=training, run_dir=args.run))
    print(f"\nwrote {args.output}")
    for _, g in goals:
        met = "" if g["met"] is None else ("met" if g["met"] else "NOT met")
        print(f"  {g['text']}: {_cell(g['measured'])} (target {g['target']}) {met}")
    failed = [name for name, r in [("train.py", training), *runs.items()] if r is not None and r.error]
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
