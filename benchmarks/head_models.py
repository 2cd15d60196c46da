"""The DeepLab artifacts the head and loop benchmarks time: built, cut, converted once, cached.

    python benchmarks/head_models.py OUT_DIR MODEL:HEAD:MODE ...     # what the benchmarks run in a subprocess

Random weights (speed only), 21 classes, calibration on random images. Each file carries its spec
(stride and alignment included), so ``edge.Segmenter`` runs it as it runs any artifact. The
benchmarks import :func:`ensure` only: the build runs in a subprocess, so they never import TensorFlow.
:func:`ensure_imported` makes real weights the same way: Coral's released VOC file imported and re-exported.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data")
VOC_RELEASED = os.path.join(DATA, "deeplabv3_mnv2_dm05_pascal_quant.tflite")  # Coral: depth 0.5, OS16, 513
PHOTOS = ("cat.bmp", "grace_hopper.bmp")
VOC_CALIBRATION_STEPS = 32
CLASSES = 21
MODELS = {
    "mobile513": dict(size=513, alpha=1.0, aspp=False, decoder=False),  # DeepLab MobileNetV2's mobile head, OS16
    "mobile257": dict(size=257, alpha=1.0, aspp=False, decoder=False),
    "plus513": dict(size=513, alpha=1.0, aspp=True, decoder=True),  # DeepLabv3+: decoder at stride 4
    "tiny65": dict(size=65, alpha=0.35, aspp=False, decoder=False),  # benchmarks/run.py --quick: checks, not numbers
}
CACHE = os.path.join(tempfile.gettempdir(), "kerasseg-bench-models")


def filename(model: str, head: str, mode: str) -> str:
    return f"{model}_{head}_{mode}.tflite"


def ensure(jobs, *, cache: str = CACHE) -> dict:
    """{(model, head, mode): path}, building the missing files in one subprocess."""
    os.makedirs(cache, exist_ok=True)
    paths = {job: os.path.join(cache, filename(*job)) for job in jobs}
    missing = [":".join(job) for job, path in paths.items() if not os.path.isfile(path)]
    if missing:
        print(f"building {len(missing)} model(s) into {cache}: {' '.join(missing)} ...", flush=True)
        env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
        done = subprocess.run([sys.executable, os.path.abspath(__file__), cache, *missing], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"building the models failed:\n{done.stdout[-3000:]}")
    return paths


def ensure_imported(*, cache: str = CACHE) -> dict:
    """{"native": path, "full": path}: Coral's depth-0.5 VOC file imported (``python -m kerasseg import``)
    and exported by ``convert.py --int8 --head native full`` at its 513x513, calibrated on the two photos of
    tests/data (``images:``), as the README's commands do; made once in subprocesses, then cached."""
    run, photos = os.path.join(cache, "voc-dm05"), os.path.join(cache, "voc-photos")
    paths = {head: os.path.join(run, "export", f"deeplabv3plus_mobilenetv2_int8{suffix}.tflite")
             for head, suffix in (("native", ""), ("full", "_full"))}
    if all(os.path.isfile(p) for p in paths.values()):
        return paths
    print(f"importing {VOC_RELEASED} and exporting it int8 (native and full heads) into {run} ...", flush=True)
    shutil.rmtree(run, ignore_errors=True)
    os.makedirs(photos, exist_ok=True)
    for name in PHOTOS:
        shutil.copy(os.path.join(DATA, name), photos)
    env = dict(os.environ, PYTHONPATH=ROOT, TF_CPP_MIN_LOG_LEVEL="2")
    for command in (["-m", "kerasseg", "import", VOC_RELEASED, "--output", run],
                    ["convert.py", "--run", run, "--int8", "--head", "native", "full", "--dataset", f"images:{photos}",
                     "--calibration-steps", str(VOC_CALIBRATION_STEPS)]):
        done = subprocess.run([sys.executable, *command], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
        if done.returncode != 0:
            raise RuntimeError(f"{' '.join(command)} failed:\n{done.stdout[-3000:]}")
    return paths


def build(out_dir: str, model_name: str, head: str, mode: str) -> str:
    """Build, cut and convert one model; write it with its spec embedded."""
    import numpy as np

    from edge.artifact import Spec, embed_spec
    from kerasseg.export import heads, tflite
    from kerasseg.export.modes import Mode
    from edge.files import write_bytes
    from kerasseg.models import build_model

    entry = MODELS[model_name]
    size = entry["size"]
    model = build_model(arch="deeplabv3plus", backbone="mobilenetv2", num_classes=CLASSES, alpha=entry["alpha"],
                        aspp=entry["aspp"], decoder=entry["decoder"], input_shape=(size, size, 3))
    cut, fields = heads.cut(model, head)
    rng = np.random.default_rng(0)
    calibration = lambda: (rng.uniform(0, 255, (1, size, size, 3)).astype(np.float32) for _ in range(4))  # noqa: E731
    content = tflite.convert(cut, mode=Mode.parse(mode), input_size=(size, size), calibration=calibration)
    spec = Spec(labels=[f"class {i}" for i in range(CLASSES)], input_size=(size, size), **fields)
    path = os.path.join(out_dir, filename(model_name, head, mode))
    return write_bytes(path, embed_spec(content, spec))


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    out_dir, jobs = argv[0], argv[1:]
    for job in jobs:
        print(build(out_dir, *job.split(":")), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
