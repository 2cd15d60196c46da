"""Shared settings for the training tests: a tiny DeepLab on a tiny synthetic dataset."""
import os
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parents[1]
# 24 train / 8 val images of 32x32 px; the DeepLab MobileNetV2 head without ASPP and decoder traces fastest.
TINY_DATASET = "synthetic:24?val=8&size=32"
TINY_FLAGS = ["--dataset", TINY_DATASET, "--image-size", "32", "--batch-size", "4", "--alpha", "0.35",
              "--no-aspp", "--no-decoder", "--warmup-steps", "0", "--learning-rate", "0.01"]
TINY_CONFIG = dict(dataset=TINY_DATASET, image_size=(32, 32), batch_size=4, alpha=0.35, aspp=False, decoder=False,
                   warmup_steps=0, learning_rate=0.01)


def script_env(**extra) -> dict:
    env = dict(os.environ, PYTHONUNBUFFERED="1", TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def run_script(script: str, *args, timeout: float = 400, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, str(ROOT / script), *map(str, args)], cwd=ROOT, env=env or script_env(),
                          capture_output=True, text=True, timeout=timeout)


def load_script(script: str):
    """Import train.py / evaluate.py / predict.py as a module, to call its main() in-process."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(script.replace(".py", "_cli"), ROOT / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
