"""What reading the artifact's metadata costs ``python -m edge`` at start-up.

    python benchmarks/bench_edge_startup.py                      # this checkout: spec-only vs full artifact
    python benchmarks/bench_edge_startup.py --baseline /tmp/old  # also another checkout's code (git worktree)

Start-up time (process start to exit after one frame, wall) and peak RSS of ``python -m edge``
on the int8 DeepLab MobileNetV2 mobile head at 257 (benchmarks/head_models.py; ``--built`` picks another),
alternating the configurations in every repeat so background load hits all alike:

- ``spec only``: the model with only the ``kerasseg_spec`` entry (what artifacts carried before
  the standard metadata), run by this checkout;
- ``artifact``: the same model as ``convert.py`` writes it now (spec + ``TFLITE_METADATA`` +
  ``labels.txt``), run by this checkout, which parses and cross-checks both;
- ``baseline``: the artifact run by the ``--baseline`` checkout's code.

Goal: the artifact's start-up time and peak RSS within 5% of the baseline's (or of spec only).
Python compiles modules without a ``.pyc`` on every start when PYTHONDONTWRITEBYTECODE is set;
the header says which case was measured.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]
import head_models  # noqa: E402
import results  # noqa: E402
from bench_edge_loop import ROOT, process_cost, write_video  # noqa: E402
from machine import cpu_simd  # noqa: E402

from edge.artifact import Spec, embed_spec, load_spec  # noqa: E402
from edge.artifact.tflite_file import SPEC_METADATA_NAME, io_tensors  # noqa: E402
from edge.artifact.writer import with_metadata  # noqa: E402
from edge.files import write_bytes  # noqa: E402

GOAL = 1.05


def models(source: str, out_dir: str) -> dict[str, str]:
    """The source model as a spec-only file and as a full artifact."""
    with open(source, "rb") as f:
        content = f.read()
    spec = load_spec(source)[0]
    if spec is None:  # a foreign model: a spec from its tensors
        (image,), (scores,) = io_tensors(content, source=source)
        spec = Spec(labels=[f"class {i}" for i in range(scores.shape[-1])], input_size=image.shape[1:3])
    paths = {"spec only": os.path.join(out_dir, "spec_only.tflite"), "artifact": os.path.join(out_dir, "artifact.tflite")}
    blobs = {"spec only": with_metadata(content, {SPEC_METADATA_NAME: spec.to_json().encode("utf-8")}),
             "artifact": embed_spec(content, spec)}
    for name, path in paths.items():
        write_bytes(path, blobs[name])
    return paths


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=None, help="a .tflite segmentation model (default: build one)")
    parser.add_argument("--baseline", default=None, help="another checkout of kerasseg to compare with")
    parser.add_argument("--built", default="mobile257", choices=sorted(head_models.MODELS),
                        help="which benchmarks/head_models.py model (native head, int8) to use without --model")
    parser.add_argument("--repeats", type=int, default=7, help="alternated runs of each configuration")
    parser.add_argument("--json", default=None, help="also write the results here (benchmarks/results.py)")
    args = parser.parse_args(argv)
    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        source = args.model
        if source is None:
            print(f"building (or reusing) {args.built}, native head, int8 ...", flush=True)
            source = next(iter(head_models.ensure([(args.built, "native", "int8")]).values()))
        paths = models(source, tmp)
        video = os.path.join(tmp, "video.avi")
        write_video(video, 3)
        configs = {"spec only": (ROOT, paths["spec only"]), "artifact": (ROOT, paths["artifact"])}
        if args.baseline:
            configs["baseline"] = (os.path.abspath(args.baseline), paths["artifact"])
        runs = {name: [] for name in configs}
        for _ in range(args.repeats):
            for name, (root, model) in configs.items():
                runs[name].append(process_cost(model, video, "ai_edge_litert", root=root))
    bytecode = "off (PYTHONDONTWRITEBYTECODE set)" if os.environ.get("PYTHONDONTWRITEBYTECODE") else "on"
    print(f"cpu: {cpu_simd()}; cores {len(os.sched_getaffinity(0))}; load (1 min) {os.getloadavg()[0]:.2f}; "
          f".pyc writing {bytecode}; {args.repeats} alternated runs each")
    print(f"{'configuration':<12} {'start-up + 1 frame s':>21} {'CPU s':>7} {'peak RSS MB':>12}   "
          f"(medians; RSS max)   wall of each run")
    summary = {}
    for name, values in runs.items():
        wall, rss = statistics.median(v[0] for v in values), max(v[1] for v in values)
        cpu_s = statistics.median(v[2] for v in values)
        summary[name] = wall, cpu_s, rss
        print(f"{name:<12} {wall:>21.3f} {cpu_s:>7.3f} {rss:>12.1f}   {' '.join(f'{v[0]:.2f}' for v in values)}")
    reference = "baseline" if "baseline" in summary else "spec only"
    ratios = [a / b for a, b in zip(summary["artifact"], summary[reference])]
    met = all(r <= GOAL for r in ratios)
    print(f"artifact / {reference}: start-up {ratios[0]:.3f}, CPU {ratios[1]:.3f}, peak RSS {ratios[2]:.3f}; "
          f"goal <= {GOAL}: {'met' if met else 'NOT met'}")
    results.write(args.json, load_before=load, goals=[
        results.goal("startup_time", f"edge start-up + 1 frame, artifact / {reference}", compare="<=", target=GOAL,
                     measured=ratios[0]),
        results.goal("startup_rss", f"edge peak RSS, artifact / {reference}", compare="<=", target=GOAL,
                     measured=ratios[2])],
        measured={name: {"startup_s": wall, "cpu_s": cpu_s, "peak_rss_mb": rss}
                  for name, (wall, cpu_s, rss) in summary.items()},
        ratios={f"artifact_over_{reference.replace(' ', '_')}": dict(zip(("startup", "cpu", "peak_rss"), ratios))})
    return 0


if __name__ == "__main__":
    sys.exit(main())
