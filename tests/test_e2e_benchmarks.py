"""The README's ``python benchmarks/run.py``, --quick: every benchmark writes its results file, and the report
built from them has a number and a verdict for each goal."""
import json
import re
import subprocess
import sys

import pytest
from readme_helpers import ROOT, entry_point, readme_commands

GOALS = (
    "main job (`python train.py --arch deeplabv3plus`) wall time, minutes",
    "main job best val mean IoU (built-in dataset)",
    "input pipeline throughput / cached-data training throughput",
    "int8 speed-up over float32",
    "int8 share of the runtime's int8 1x1-conv peak",
    "camera loop FPS / interpreter-only FPS",
    "loop CPU outside invoke, default head / full head",
    "live view with --upsample exact: loop FPS / interpreter-only FPS",
    "live view with --upsample exact: mIoU of the written masks against the full head",
    "per-frame time, full head / default CPU head",
    "per-frame time, DeepLab MobileNetV2 mobile head / LR-ASPP MobileNetV3-Small",
    "default upsampling agrees with the full head's bilinear",
    "QAT mIoU drop from float (points)",
    "PTQ int8 mIoU drop from float (points)",
    "edge start-up + 1 frame, artifact / spec only",
    "flicker with --smooth 0.5 over without, worst sigma",
    "extra CPU per 640x480 frame for --smooth 0.5, ms",
    "per-frame time, released int8 file / our re-export of its weights "
    "(deeplab_mobilenet_edgetpu_slim_cityscapes_quant)",  # --smoke compares Google's MobileNet-EdgeTPU file only
    "pixel agreement of our re-export with the released file (worst photo; "
    "deeplab_mobilenet_edgetpu_slim_cityscapes_quant)",
)
ANCHORS = ("2.75G", "75.32 -> 74.26", "43 ms", "134M")
BENCHMARKS = ("bench_models.py", "bench_input_pipeline.py", "bench_int8.py", "bench_heads.py", "bench_mobilenetv3.py",
              "bench_upsample.py", "bench_edge_loop.py", "bench_edge_startup.py", "bench_smoothing.py",
              "bench_released.py")
NUMBER = r"-?\d+(\.\d+)?(e[-+]?\d+)?"


@pytest.mark.slow
def test_quick_run_writes_every_goal_with_a_number(tmp_path):
    """Slow (about 80 s): benchmarks/run.py --quick trains a 3-step run and runs each benchmark in its own
    process (bench_int8 --smoke fine-tunes and converts a QAT model). It shares nothing: the benchmarks must run
    as a user runs them, and the quick run's flags keep each one small."""
    [command] = [c for c in readme_commands() if c.text == "python benchmarks/run.py"]
    script, argv = entry_point(command)
    output, results = tmp_path / "B.md", tmp_path / "results"
    # Minutes on an idle 2-core machine (tiny models, --quick); several times longer on a loaded one.
    done = subprocess.run([sys.executable, str(ROOT / script), *argv, "--quick", "--output", str(output),
                           "--results", str(results)], cwd=ROOT, capture_output=True, text=True, timeout=3600)
    assert done.returncode == 0, f"stdout:\n{done.stdout[-3000:]}\nstderr:\n{done.stderr[-3000:]}"
    text = output.read_text()

    assert "## Machine" in text and "ai-edge-litert" in text and "SIMD flags" in text
    documents = {}
    for name in BENCHMARKS:
        assert f"## {name}" in text, f"no section for {name}"
        documents[name] = json.loads((results / name.replace(".py", ".json")).read_text())
        document = documents[name]
        assert document["benchmark"] == name and "--json" in document["argv"]
        assert document["machine"]["cores"] >= 1 and "avx2" in document["machine"]["simd_flags"] + \
            document["machine"]["missing_simd_flags"]
    for goal in GOALS:
        row = next((line for line in text.splitlines() if line.startswith(f"| {goal}")), None)
        assert row is not None, f"no goal line for {goal!r}"
        cells = [cell.strip() for cell in row.strip("|").split("|")]
        assert re.fullmatch(NUMBER, cells[2]), f"no number measured for {goal!r}: {row}"
        assert cells[3] in ("met", "NOT met"), row
    # The report's goal rows are the results files' goals, verdicts included.
    for document in documents.values():
        for goal in document["goals"]:
            row = next(line for line in text.splitlines() if line.startswith(f"| {goal['text']} |"))
            assert f"| {goal['target']} | {goal['measured']:.3g} | {'met' if goal['met'] else 'NOT met'} |" in row

    compare = text.split("## How we compare", 1)[1].split("\n## ", 1)[0]
    for anchor in ANCHORS:
        line = next((line for line in compare.splitlines() if anchor in line), None)
        assert line is not None, f"no comparison row quoting {anchor}"
        assert "not measured" not in line and re.search(r"\d", line.split("|")[3]), line
    fcn = next(line for line in compare.splitlines() if "134M" in line)
    assert re.search(r"13[3-5]\.\d\dM \(our counter\)", fcn), fcn  # FCN-8s counted at ~134.5M parameters
