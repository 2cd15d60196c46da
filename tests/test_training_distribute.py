"""tf.distribute on CPU: MirroredStrategy over 2 logical devices, MultiWorkerMirroredStrategy over 2 processes."""
import json
import os
import socket
import subprocess
import sys

import pytest

from training_helpers import ROOT, TINY_CONFIG, TINY_FLAGS, script_env

MIRRORED_SCRIPT = r"""
import json, sys
import numpy as np
from kerasseg.backend import tf
tf.config.threading.set_inter_op_parallelism_threads(8)
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from kerasseg.training import TrainConfig, train
from kerasseg.training.optim import build_optimizer
from kerasseg.training.batchnorm import synchronize_batch_norm
from kerasseg.training.loop import make_train_step

from kerasseg.backend import keras, layers

# A small conv + batch-norm net keeps the traces short; the maths under test is make_train_step's.
def build():
    image = keras.Input((None, None, 3))
    x = layers.Rescaling(1 / 127.5, offset=-1)(image)
    for filters in (8, 8):
        x = layers.ReLU()(layers.BatchNormalization()(layers.Conv2D(filters, 3, padding="same")(x)))
    return keras.Model(image, layers.Conv2D(5, 1)(x))

rng = np.random.default_rng(0)
images = rng.uniform(0, 255, (4, 16, 16, 3)).astype(np.float32)
masks = rng.integers(0, 5, (4, 16, 16)).astype(np.int32)
masks[:, :4] = 255
masks[2:, 4:8] = 255  # the replicas hold different numbers of labelled pixels
initial = build().get_weights()

def run(strategy, sync):
    with strategy.scope():
        model = build()
        model.set_weights(initial)
        if sync:
            synchronize_batch_norm(model)
        optimizer = build_optimizer(name="sgd", learning_rate=0.01, momentum=0.9)
    data = tf.data.Dataset.from_tensors((images, masks)).repeat()
    iterator = iter(strategy.experimental_distribute_dataset(data))
    step = make_train_step(model, optimizer, strategy, class_weights=[1.0, 2.0, 0.5, 1.0, 1.0])
    return [float(step(iterator)) for _ in range(3)], model.get_weights()

one_losses, one_weights = run(tf.distribute.OneDeviceStrategy("/cpu:0"), False)
mirrored = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
mirrored_losses, mirrored_weights = run(mirrored, True)
weight_diff = max(float(np.abs(a - b).max()) for a, b in zip(one_weights, mirrored_weights))
result = train(TrainConfig(**CONFIG, strategy="mirrored", epochs=1, steps_per_epoch=2),
               output_dir=sys.argv[1], verbose=False)
print(json.dumps({"replicas": mirrored.num_replicas_in_sync, "one": one_losses, "mirrored": mirrored_losses,
                  "weight_diff": weight_diff, "steps": result.steps, "miou": result.best["mean_iou"]}))
"""


@pytest.mark.slow
def test_mirrored_two_logical_cpus_matches_one_device(tmp_path):
    """Slow: a subprocess (two logical CPUs must be set before TensorFlow starts) that trains the same small
    net under two strategies, then a tiny train() under MirroredStrategy."""
    script = MIRRORED_SCRIPT.replace("CONFIG", repr(TINY_CONFIG))
    out = subprocess.run([sys.executable, "-c", script, str(tmp_path / "run")], cwd=ROOT, env=script_env(),
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    # Same global loss (sync batch norm, loss divided by the global pixel count) and the same updates.
    assert result["mirrored"] == pytest.approx(result["one"], rel=1e-5)
    assert result["one"][2] != pytest.approx(result["one"][0], rel=1e-3)  # the steps did change the weights
    assert result["weight_diff"] < 1e-4
    assert result["steps"] == 2 and 0 <= result["miou"] <= 1
    assert (tmp_path / "run" / "best.keras").is_file() and (tmp_path / "run" / "config.yaml").is_file()


def _free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


@pytest.mark.slow
def test_multi_worker_two_local_processes(tmp_path):
    """Slow: two train.py processes that train together; nothing to share across processes."""
    workers = [f"127.0.0.1:{port}" for port in _free_ports(2)]
    run_dir = tmp_path / "run"
    processes = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        processes.append(subprocess.Popen(
            [sys.executable, str(ROOT / "train.py"), *TINY_FLAGS, "--strategy", "multi_worker", "--epochs", "1",
             "--steps-per-epoch", "3", "--output-dir", str(run_dir), "--quiet"],
            cwd=ROOT, env=script_env(TF_CONFIG=tf_config), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True))
    outputs = []
    try:
        for process in processes:
            outputs.append(process.communicate(timeout=600))
    finally:
        for process in processes:
            process.kill()
    for process, (stdout, stderr) in zip(processes, outputs):
        assert process.returncode == 0, stderr[-3000:]
    config = json.loads(json.dumps(__import__("yaml").safe_load(open(run_dir / "config.yaml"))))
    assert config["hardware"]["strategy"] == "MultiWorkerMirroredStrategy" and config["hardware"]["replicas"] == 2
    metrics = json.load(open(run_dir / "metrics.json"))
    assert metrics["steps"] == 3
    # Only the chief (worker 0) writes the run directory.
    assert sorted(n for n in os.listdir(run_dir / "checkpoints") if n.endswith(".index")) == ["ckpt-3.index"]
    assert "mean_iou" in outputs[0][0]


def test_multi_worker_needs_tf_config(monkeypatch):
    from kerasseg.training.distribute import check_tf_config, make_strategy

    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ValueError, match="needs the TF_CONFIG environment variable"):
        make_strategy("multi_worker")
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {}}')
    with pytest.raises(ValueError, match="TF_CONFIG: expected cluster.worker"):
        check_tf_config()
    with pytest.raises(ValueError, match="strategy: expected one of"):
        make_strategy("gpu_farm")


def test_mixed_precision_policy_per_device():
    from kerasseg.backend import tf
    from kerasseg.training.distribute import mixed_precision_policy

    strategy = tf.distribute.get_strategy()
    assert mixed_precision_policy(False, strategy) == "float32"
    expected = "mixed_float16" if tf.config.list_logical_devices("GPU") else "mixed_bfloat16"
    assert mixed_precision_policy(True, strategy) == expected
