"""Interpreter latency: ``python -m edge.benchmark --model M [--threads 1 2] [--edgetpu] [--vs OTHER] [--runs N]``.

Times ``invoke()`` alone on a fixed random input, after warm-up runs, and
prints p50/p90/p99 per model, thread count and device, side by side. Then, for
each model, how the runtime's CPU delegate (XNNPACK) took its ops
(:func:`delegation`): every op it leaves out runs in the runtime's own kernels and
splits the graph, each split a round trip out of XNNPACK.
"""
from __future__ import annotations

import argparse
import dataclasses
import sys
import time

import numpy as np

from edge import console
from edge.interpreter import RUNTIMES, EdgeTPUError, ModelError, RuntimeNotFound, load_interpreter


@dataclasses.dataclass
class Result:
    model: str
    device: str
    threads: int | None
    runtime: str
    latencies_ms: np.ndarray

    def percentile(self, q: float) -> float:
        return float(np.percentile(self.latencies_ms, q))

    @property
    def fps(self) -> float:
        return 1000.0 / float(np.mean(self.latencies_ms))


@dataclasses.dataclass
class Delegation:
    """How the CPU delegate took a model: its partitions and the ops it left to the runtime's own kernels."""

    ops: int           # ops in the model
    partitions: int    # delegate nodes: runs of consecutive ops that XNNPACK took
    left_out: dict     # {op name: count} of the ops it did not take

    def describe(self) -> str:
        outside = ", ".join(f"{name} {count}" for name, count in self.left_out.items()) or "none"
        return (f"{self.partitions} XNNPACK partition{'s' if self.partitions != 1 else ''} for "
                f"{self.ops - sum(self.left_out.values())} of {self.ops} ops; outside: {outside}")


def delegation(model: str) -> Delegation:
    """How ai_edge_litert's default CPU delegate, XNNPACK, takes the ops of ``model``.

    LiteRT logs "Replacing N out of M node(s) with delegate (TfLiteXNNPackDelegate) node, yielding K
    partitions" only at its verbose level, which Python cannot set; its node list says the same. Each run of
    ops XNNPACK takes becomes one DELEGATE node (the partitions). Loaded once more with delegate node fusion off,
    each op it takes becomes a DELEGATE node of its own, and the other ops are the ones it left out.
    """
    nodes = {fuse: load_interpreter(model, runtime="ai_edge_litert", threads=1,
                                    fuse_delegate_nodes=fuse).interpreter._get_ops_details()  # the only node list
             for fuse in (True, False)}
    delegated = {int(t) for node in nodes[False] if node["op_name"] == "DELEGATE" for t in node["outputs"]}
    left_out = {}
    for node in nodes[False]:
        if node["op_name"] != "DELEGATE" and not {int(t) for t in node["outputs"]} <= delegated:
            left_out[node["op_name"]] = left_out.get(node["op_name"], 0) + 1
    return Delegation(ops=sum(node["op_name"] != "DELEGATE" for node in nodes[False]),
                      partitions=sum(node["op_name"] == "DELEGATE" for node in nodes[True]), left_out=left_out)


def random_input(detail: dict, rng: np.random.Generator) -> np.ndarray:
    """A random tensor matching an input's shape and dtype."""
    dtype = np.dtype(detail["dtype"])
    shape = tuple(int(x) for x in detail["shape"])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(info.min, int(info.max) + 1, shape, dtype=dtype)
    return rng.uniform(-1.0, 1.0, shape).astype(dtype)


def measure(model: str, *, threads: int | None = None, edgetpu: bool = False, runtime: str | None = None,
            runs: int = 50, warmup: int = 5, seed: int = 0) -> Result:
    """Latency of ``runs`` invokes of ``model`` (milliseconds), after ``warmup`` untimed ones."""
    if runs < 1 or warmup < 0:
        raise ValueError(f"runs must be >= 1 and warmup >= 0, got runs={runs} warmup={warmup}")
    loaded = load_interpreter(model, runtime=runtime, threads=threads, edgetpu=edgetpu)
    interpreter = loaded.interpreter
    rng = np.random.default_rng(seed)
    for detail in interpreter.get_input_details():
        interpreter.set_tensor(detail["index"], random_input(detail, rng))
    for _ in range(warmup):
        interpreter.invoke()
    latencies = np.empty(runs)
    for i in range(runs):
        start = time.perf_counter()
        interpreter.invoke()
        latencies[i] = (time.perf_counter() - start) * 1000.0
    device = "edgetpu" if loaded.delegate == "edgetpu" else "cpu"
    return Result(model=model, device=device, threads=threads, runtime=loaded.runtime, latencies_ms=latencies)


def format_table(results: list[Result]) -> str:
    """One row per model, device and thread count; ratios against the first row's p50."""
    header = f"{'model':<36} {'device':<8} {'threads':>7} {'p50 ms':>9} {'p90 ms':>9} {'p99 ms':>9} " \
             f"{'FPS':>8} {'p50 vs first':>12}"
    lines = [header, "-" * len(header)]
    base = results[0].percentile(50) if results else 1.0
    for r in results:
        name = r.model if len(r.model) <= 36 else "..." + r.model[-33:]
        threads = "default" if r.threads is None else str(r.threads)
        lines.append(f"{name:<36} {r.device:<8} {threads:>7} {r.percentile(50):>9.2f} {r.percentile(90):>9.2f} "
                     f"{r.percentile(99):>9.2f} {r.fps:>8.1f} {r.percentile(50) / base:>11.2f}x")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    parser = console.ArgumentParser(prog="python -m edge.benchmark", description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="the .tflite model")
    parser.add_argument("--vs", action="append", default=[], help="another .tflite to compare side by side")
    parser.add_argument("--threads", type=int, nargs="+", default=[None], help="interpreter thread counts")
    parser.add_argument("--edgetpu", action="store_true",
                        help="also run on the Edge TPU (needs libedgetpu and an Edge TPU-compiled model)")
    parser.add_argument("--runtime", choices=RUNTIMES, default=None)
    parser.add_argument("--runs", type=int, default=50, help="timed invokes per configuration")
    parser.add_argument("--warmup", type=int, default=5, help="untimed invokes first")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    configs = [(model, threads, False) for model in [args.model, *args.vs] for threads in args.threads]
    if args.edgetpu:
        configs += [(model, None, True) for model in [args.model, *args.vs]]
    results = []
    try:
        for model, threads, edgetpu in configs:
            results.append(measure(model, threads=threads, edgetpu=edgetpu, runtime=args.runtime,
                                   runs=args.runs, warmup=args.warmup))
    except (ModelError, EdgeTPUError, RuntimeNotFound, ValueError) as err:
        console.error(build_parser().prog, err)
        if not results:
            return 1
    if results:
        print(f"runtime: {results[0].runtime}; {args.runs} runs after {args.warmup} warm-up")
        print(format_table(results))
        for model in dict.fromkeys(r.model for r in results if r.device == "cpu" and r.runtime == "ai_edge_litert"):
            print(f"{model}: {delegation(model).describe()}")
    return 0 if len(results) == len(configs) else 1


if __name__ == "__main__":
    sys.exit(main())
