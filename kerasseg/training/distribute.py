"""Choosing a tf.distribute strategy and the mixed-precision policy."""
from __future__ import annotations

import json
import os

from kerasseg.backend import keras, tf
from kerasseg.training.config import STRATEGIES


def make_strategy(name: str, *, tpu: str = ""):
    """The strategy for ``--strategy``.

    * ``auto``: ``MirroredStrategy`` over all GPUs when there are several, one GPU when there is one,
      else the default (single-device) strategy.
    * ``one_device``: the first GPU, else the CPU.
    * ``mirrored``: ``MirroredStrategy`` over the local GPUs (or the logical CPUs when there is no GPU).
    * ``multi_worker``: ``MultiWorkerMirroredStrategy``; the cluster comes from the ``TF_CONFIG`` variable.
    * ``tpu``: ``TPUStrategy`` on the TPU found by ``TPUClusterResolver`` (``tpu`` = name or address,
      "" for the local TPU VM or the ``TPU_NAME`` variable).
    """
    if name == "multi_worker":
        # Before anything else touches the runtime: collectives must be configured at start-up.
        _configure_coordination(check_tf_config())
        return tf.distribute.MultiWorkerMirroredStrategy()
    gpus = tf.config.list_logical_devices("GPU")
    if name == "auto":
        if len(gpus) > 1:
            return tf.distribute.MirroredStrategy()
        if len(gpus) == 1:
            return tf.distribute.OneDeviceStrategy(gpus[0].name)
        return tf.distribute.get_strategy()
    if name == "one_device":
        return tf.distribute.OneDeviceStrategy(gpus[0].name if gpus else "/cpu:0")
    if name == "mirrored":
        if gpus:
            return tf.distribute.MirroredStrategy([d.name for d in gpus])
        # CPUs only: reduce through one device; collective all-reduce between logical CPUs can mis-order.
        return tf.distribute.MirroredStrategy([d.name for d in tf.config.list_logical_devices("CPU")],
                                              cross_device_ops=tf.distribute.ReductionToOneDevice())
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, tf.errors.NotFoundError) as err:
            raise RuntimeError(f"strategy 'tpu': no TPU found (tpu={tpu!r}): {err}") from None
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"strategy: expected one of {STRATEGIES}, got {name!r}")


# TensorFlow's coordination service ends a multi-worker run when a task misses its heartbeats for 10 s. A worker
# that the OS starves that long (a loaded 2-core machine) is slow, not gone, so it gets a minute.
HEARTBEAT_TIMEOUT_MS = 60_000


def _configure_coordination(config: dict) -> None:
    """The coordination service as MultiWorkerMirroredStrategy configures it (which it skips when one is
    configured already), with ``HEARTBEAT_TIMEOUT_MS``; tf.distribute has no public setting for it."""
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2  # where tf.distribute takes it from
    from tensorflow.python.distribute import multi_worker_util
    from tensorflow.python.eager import context

    cluster = tf.train.ClusterSpec(config["cluster"])
    jobs = [coordination_config_pb2.CoordinatedJob(name=job, num_tasks=cluster.num_tasks(job))
            for job in ("chief", "worker") if job in cluster.jobs]
    context.context().configure_coordination_service(
        service_type="standalone", service_leader=multi_worker_util.coordination_leader(cluster),
        coordinated_jobs=jobs, heartbeat_timeout_in_ms=HEARTBEAT_TIMEOUT_MS)


def check_tf_config() -> dict:
    """Parse ``TF_CONFIG`` for multi-worker training, with a clear error when it is missing or malformed."""
    raw = os.environ.get("TF_CONFIG")
    if not raw:
        raise ValueError("strategy 'multi_worker' needs the TF_CONFIG environment variable, e.g. "
                         '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, "task": {"type": "worker", "index": 0}}')
    try:
        config = json.loads(raw)
        workers = config["cluster"]["worker"]
        task = config["task"]
        task["type"], int(task["index"])
    except (json.JSONDecodeError, KeyError, TypeError, ValueError) as err:
        raise ValueError(f"TF_CONFIG: expected cluster.worker and task.type/index, got {raw!r} ({err})") from None
    if not workers:
        raise ValueError(f"TF_CONFIG: cluster.worker is empty: {raw!r}")
    return config


def is_chief(strategy) -> bool:
    """True on the worker that writes files (always true outside multi-worker training)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    if task_type is None:
        return True
    has_chief = "chief" in resolver.cluster_spec().as_dict()
    return task_type == "chief" or (not has_chief and task_type == "worker" and task_id == 0)


def is_multi_worker(strategy) -> bool:
    """True when training spans several worker processes."""
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return False
    spec = strategy.cluster_resolver.cluster_spec().as_dict()
    return sum(len(spec.get(job, [])) for job in ("chief", "worker")) > 1


def mixed_precision_policy(enabled: bool, strategy) -> str:
    """``float32``, or the mixed policy for the hardware: ``mixed_float16`` on GPU, ``mixed_bfloat16`` on CPU/TPU."""
    if not enabled:
        return "float32"
    if isinstance(strategy, tf.distribute.TPUStrategy) or not tf.config.list_logical_devices("GPU"):
        return "mixed_bfloat16"
    return "mixed_float16"


def set_policy(name: str) -> None:
    keras.mixed_precision.set_global_policy(name)


def describe(strategy) -> str:
    """The public class name of ``strategy`` (MultiWorkerMirroredStrategy's own class is an internal alias)."""
    for cls, name in ((tf.distribute.MultiWorkerMirroredStrategy, "MultiWorkerMirroredStrategy"),
                      (tf.distribute.MirroredStrategy, "MirroredStrategy"), (tf.distribute.TPUStrategy, "TPUStrategy"),
                      (tf.distribute.OneDeviceStrategy, "OneDeviceStrategy")):
        if isinstance(strategy, cls):
            return name
    return "default"
