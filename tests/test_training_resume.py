"""Kill-and-resume: SIGTERM mid-epoch saves a checkpoint, --resume continues at that step, nothing is lost."""
import json
import os
import pty
import re
import signal
import subprocess
import sys

import pytest

from training_helpers import ROOT, TINY_FLAGS, run_script, script_env


@pytest.mark.slow
def test_sigterm_mid_epoch_then_resume(tmp_path):
    """Slow: three train.py processes (interrupted, refused, resumed); the run must be its own, since it is
    interrupted."""
    run_dir = tmp_path / "run"
    flags = [*TINY_FLAGS, "--epochs", "2", "--steps-per-epoch", "6", "--output-dir", str(run_dir)]
    # On a terminal, train.py announces each epoch before its first step ("Epoch 2/2", then a progress bar), so a
    # signal sent on that line lands mid-epoch 2; stdout is a pseudo-terminal for that reason.
    terminal, child_stdout = pty.openpty()
    process = subprocess.Popen([sys.executable, str(ROOT / "train.py"), *flags], cwd=ROOT, env=script_env(),
                               stdout=child_stdout, stderr=subprocess.PIPE, text=True)
    os.close(child_stdout)
    try:
        # Epoch 1 finishes (best.keras, metrics.json written), then the signal lands early in epoch 2.
        with open(terminal, "rb", buffering=0, closefd=False) as screen:
            if _wait_for(screen, b"Epoch 2/2"):
                process.send_signal(signal.SIGTERM)
        stderr = process.communicate(timeout=300)[1]
    finally:
        process.kill()
        os.close(terminal)
    assert process.returncode == 143, stderr
    stopped = int(re.search(r"stopped by SIGTERM at step (\d+)", stderr).group(1))
    assert 6 < stopped < 12, stderr  # mid-epoch 2
    checkpoints = os.listdir(run_dir / "checkpoints")
    assert f"ckpt-{stopped}.index" in checkpoints and "ckpt-6.index" in checkpoints
    # Epoch 1's files survive the interruption intact.
    metrics = json.load(open(run_dir / "metrics.json"))
    assert [h["epoch"] for h in metrics["history"]] == [1]
    for name in ("best.keras", "last.keras", "spec.json", "config.yaml", "val_overlays.png"):
        assert (run_dir / name).stat().st_size > 0, name

    # A different configuration is refused, naming the difference.
    out = run_script("train.py", "--resume", run_dir, "--learning-rate", "0.5")
    assert out.returncode == 2 and "learning_rate: checkpoint has 0.01, now 0.5" in out.stderr

    out = run_script("train.py", "--resume", run_dir)
    assert out.returncode == 0, out.stderr
    assert f"from step {stopped} of 12" in out.stdout
    metrics = json.load(open(run_dir / "metrics.json"))
    assert [h["epoch"] for h in metrics["history"]] == [1, 2]
    assert metrics["steps"] == 12 and "ckpt-12.index" in os.listdir(run_dir / "checkpoints")
    assert "mean_iou" in out.stdout


def _wait_for(screen, text: bytes) -> bool:
    """Read the terminal until ``text`` shows (True) or the program closes it (False)."""
    seen = b""
    while text not in seen:
        try:
            chunk = screen.read(4096)
        except OSError:  # EIO: the program ended and closed its end
            return False
        if not chunk:
            return False
        seen = seen[-len(text):] + chunk
    return True
