"""The results file each benchmark writes with ``--json PATH``; benchmarks/run.py builds BENCHMARKS.md from them.

One schema for every benchmark (TensorFlow-free, so the edge benchmarks can use it)::

    {"benchmark": "bench_int8.py",
     "argv": [...],                                   the benchmark's own arguments
     "machine": {"cpu": "...", "simd_flags": [...], "missing_simd_flags": [...], "cores": 2,
                 "load_before": [1, 5, 15 min], "load_after": [...]},
     "measured": {...},                               the numbers, in the units their names say
     "ratios": {...},                                 the ratios the goals are stated as (and a few more)
     "goals": [{"id": "...", "text": "...", "target": ">= 2.5", "measured": 1.06, "met": false}]}

``met`` is null when the number was not measured.
"""
from __future__ import annotations

import json
import operator
import os
import sys

from machine import SIMD_FLAGS, cpu_flags  # benchmarks/ is on sys.path: each benchmark runs as a script

KEYS = ("benchmark", "argv", "machine", "measured", "ratios", "goals")
COMPARE = {">=": operator.ge, "<=": operator.le}


def goal(key: str, text: str, *, compare: str, target: float, measured: float | None, unit: str = "") -> dict:
    """One goal: ``measured`` (None when not measured) against ``target`` with ``compare`` (">=" or "<=")."""
    if compare not in COMPARE:
        raise ValueError(f"compare: expected one of {sorted(COMPARE)}, got {compare!r}")
    measured = None if measured is None else float(measured)
    met = None if measured is None else bool(COMPARE[compare](measured, target))
    return {"id": key, "text": text, "target": f"{compare} {target:g}{unit}", "measured": measured, "met": met}


def machine(load_before: tuple[float, float, float]) -> dict:
    """The CPU, its SIMD flags, the cores this process may use, and the load average before and now."""
    model, words = cpu_flags()
    return {"cpu": model, "simd_flags": [f for f in SIMD_FLAGS if f in words],
            "missing_simd_flags": [f for f in SIMD_FLAGS if f not in words],
            "cores": len(os.sched_getaffinity(0)), "load_before": [round(x, 2) for x in load_before],
            "load_after": [round(x, 2) for x in os.getloadavg()]}


def write(path: str | None, *, load_before, measured: dict, ratios: dict, goals: list) -> dict:
    """The results document of the running benchmark; written to ``path`` (atomically) unless it is None."""
    document = {"benchmark": os.path.basename(sys.argv[0]), "argv": sys.argv[1:], "machine": machine(load_before),
                "measured": measured, "ratios": ratios, "goals": goals}
    if path:
        try:
            from edge.files import write_json
        except ImportError:  # a benchmark copied out of the repository: a plain write
            with open(path, "w", encoding="utf-8") as f:
                json.dump(document, f, indent=2, allow_nan=False)
        else:
            write_json(path, document)
    return document


def read(path: str) -> dict:
    """A results file, checked for the schema's keys (ValueError naming the file and the missing keys)."""
    with open(path, encoding="utf-8") as f:
        document = json.load(f)
    missing = [key for key in KEYS if not isinstance(document, dict) or key not in document]
    if missing:
        raise ValueError(f"{path}: not a benchmark results file, missing {missing} (expected keys {list(KEYS)})")
    return document
