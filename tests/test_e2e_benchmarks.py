"""benchmarks/run.py --quick runs every benchmark and writes a report with a number for each goal."""
import os
import re
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GOALS = (
    "main job (`python train.py --arch deeplabv3plus`) wall time, minutes",
    "main job best val mean IoU (built-in dataset)",
    "input pipeline throughput / cached-data training throughput",
    "int8 speed-up over float32",
    "int8 share of the runtime's int8 1x1-conv peak",
    "camera loop FPS / interpreter-only FPS",
    "loop CPU outside invoke, default head / full head",
    "per-frame time, full head / default CPU head",
    "default upsampling agrees with the full head's bilinear",
    "QAT mIoU drop from float (points)",
    "PTQ int8 mIoU drop from float (points)",
)
ANCHORS = ("2.75G", "75.32 -> 74.26", "43 ms", "134M")


@pytest.mark.slow
def test_quick_run_writes_every_goal_with_a_number(tmp_path):
    output = tmp_path / "B.md"
    # About 6 minutes on an idle 2-core machine (bench_int8 alone converts 8 models); much longer under load.
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "run.py"), "--quick",
                           "--output", str(output)], cwd=ROOT, capture_output=True, text=True, timeout=1800)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    text = output.read_text()

    assert "## Machine" in text and "ai-edge-litert" in text and "tensorflow" in text
    for name in ("bench_models.py", "bench_input_pipeline.py", "bench_int8.py", "bench_heads.py", "bench_upsample.py",
                 "bench_edge_loop.py", "bench_edge_startup.py"):
        assert f"## {name}" in text, f"no section for {name}"
    for goal in GOALS:
        row = next((line for line in text.splitlines() if line.startswith(f"| {goal}")), None)
        assert row is not None, f"no goal line for {goal!r}"
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert re.fullmatch(r"-?\d+(\.\d+)?(e[-+]?\d+)?", cells[2]), f"no number measured for {goal!r}: {row}"
        assert cells[3] in ("met", "NOT met"), row

    compare = text.split("## How we compare", 1)[1].split("\n## ", 1)[0]
    for anchor in ANCHORS:
        line = next((line for line in compare.splitlines() if anchor in line), None)
        assert line is not None, f"no comparison row quoting {anchor}"
        assert "not measured" not in line and re.search(r"\d", line.split("|")[3]), line
    fcn = next(line for line in compare.splitlines() if "134M" in line)
    assert re.search(r"13[3-5]\.\d\dM \(our counter\)", fcn), fcn  # FCN-8s counted at ~134.5M parameters
