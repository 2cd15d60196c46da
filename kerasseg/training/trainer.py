"""The training loop: tf.distribute, checkpoints with resume, validation by mean IoU, the run directory.

One ``train(config)`` call builds the model and data from the config, trains for ``epochs x steps_per_epoch``
steps with a custom loop under the chosen strategy, validates after each epoch, and writes the run directory
described in ``kerasseg.training.run``. SIGTERM or Ctrl-C stops it after the current step with a checkpoint
(model, optimizer, step), and ``train(config, output_dir=..., resume=True)`` continues from that step.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

import numpy as np

from kerasseg import files
from kerasseg.artifact import Spec
from kerasseg.backend import keras, tf
from kerasseg.training import distribute, report
from kerasseg.training import run as rundir
from kerasseg.training.config import CONFIG_FILENAME, TrainConfig, config_differences
from kerasseg.training.losses import cross_entropy_sums, label_weight_sum
from kerasseg.training.metrics import ConfusionMatrix, ConfusionMatrixMetric, confusion_batch
from kerasseg.training.optim import PolyWarmup, build_optimizer

SUMMARY_EVERY = 10  # steps between TensorBoard scalars


class TrainingInterrupted(Exception):
    """Training stopped on SIGTERM/SIGINT after saving a checkpoint; ``--resume`` continues it."""

    def __init__(self, run_dir: str, step: int, signal_name: str):
        super().__init__(f"stopped by {signal_name} at step {step}; checkpoint saved in {run_dir}. "
                         f"Continue with: python train.py --resume {run_dir}")
        self.run_dir, self.step, self.signal_name = run_dir, step, signal_name


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclasses.dataclass
class TrainResult:
    run_dir: str
    steps: int
    best_epoch: int
    best: dict          # val results of the best epoch (ConfusionMatrix.results)
    last: dict          # val results of the last epoch
    history: list
    seconds: float


def train(config: TrainConfig, *, output_dir: str | None = None, resume: bool = False, check_data: bool = False,
          verbose: bool = True) -> TrainResult:
    """Train ``config`` into ``output_dir`` (default: a new folder under ``runs/``); see the module docstring."""
    log = print if verbose else (lambda *a, **k: None)
    started = time.time()

    # Hardware first: multi-worker collectives must be configured before any op runs, and the
    # mixed-precision policy set before any layer is built.
    strategy = distribute.make_strategy(config.strategy)
    keras.utils.set_random_seed(config.seed)  # the initial weights (and dropout) follow the seed
    chief = distribute.is_chief(strategy)
    multi_worker = distribute.is_multi_worker(strategy)
    policy = distribute.mixed_precision_policy(config.mixed_precision, strategy)
    distribute.set_policy(policy)
    replicas = strategy.num_replicas_in_sync
    if config.batch_size % replicas:
        raise ValueError(f"batch_size: the global batch {config.batch_size} must be divisible by the "
                         f"{replicas} replicas of strategy {config.strategy!r}")

    # Data and the spec that travels with the model.
    from kerasseg import data as kdata
    from kerasseg import models as kmodels

    source = kdata.open_dataset(config.dataset, seed=config.seed, skip_bad_files=config.skip_bad_files)
    if check_data:
        log(kdata.check_dataset(source))
    labels = tuple(source.labels)
    num_classes = len(labels)
    # The exact build_model arguments, defaults filled in, so that config.yaml rebuilds the same layers.
    model_kwargs = kmodels.model_config(**config.model_kwargs(num_classes=num_classes))
    preprocessing = kmodels.preprocessing_for(arch=model_kwargs["arch"], backbone=model_kwargs["backbone"])
    spec = Spec(labels=labels, colors=source.colors or (), input_size=config.image_size,
                mean=preprocessing["mean"], std=preprocessing["std"], channel_order=preprocessing["channel_order"],
                ignore_label=source.ignore_label, output_kind="logits")
    steps_per_epoch = config.steps_per_epoch or _steps_per_epoch(source, config.batch_size)
    total_steps = steps_per_epoch * config.epochs
    weights = _class_weights(config, source, kdata)

    # The run directory: refuse to overwrite a run, or to resume one with a different configuration.
    if multi_worker and not output_dir:
        raise ValueError("output_dir: multi-worker training needs the same --output-dir on every worker "
                         "(on a filesystem they share, for --resume)")
    run_dir = output_dir or rundir.new_run_dir(arch=config.arch)
    resolved = {
        "train": config.to_dict(),
        "model": model_kwargs,
        "dataset": config.dataset,
        "image_size": list(config.image_size),
        "scale_range": list(config.scale_range or source.scale_range),
        "seed": config.seed,
        "labels": list(labels),
        "steps_per_epoch": steps_per_epoch,
        "total_steps": total_steps,
        "class_weights": weights,
        "strategy": distribute.describe(strategy),
        "replicas": replicas,
        "precision_policy": policy,
    }
    _prepare_run_dir(run_dir, resolved, resume=resume, chief=chief)
    if chief:
        os.makedirs(run_dir, exist_ok=True)
        files.write_yaml(os.path.join(run_dir, CONFIG_FILENAME), resolved)
        spec.save(os.path.join(run_dir, "spec.json"))

    with strategy.scope():
        model = kmodels.build_model(**model_kwargs, input_shape=(None, None, 3),
                                    backbone_weights=config.backbone_weights)
        if config.sync_batch_norm:
            synchronize_batch_norm(model)
        if config.bn_momentum is not None:
            set_batch_norm_momentum(model, config.bn_momentum)
        schedule = PolyWarmup(learning_rate=config.learning_rate, total_steps=total_steps,
                              warmup_steps=min(config.warmup_steps, total_steps - 1))
        optimizer = build_optimizer(name=config.optimizer, learning_rate=schedule, momentum=config.momentum,
                                    weight_decay=config.weight_decay, mixed_float16=policy == "mixed_float16")
        train_miou = ConfusionMatrixMetric(num_classes, ignore_label=spec.ignore_label, name="train_mean_iou")
        best_miou = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="best_mean_iou")
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, best_mean_iou=best_miou)

    saver = None
    if multi_worker:
        saver = kmodels.build_model(**model_kwargs, input_shape=(None, None, 3))
        if config.bn_momentum is not None:
            set_batch_norm_momentum(saver, config.bn_momentum)
    checkpoint_dir = os.path.join(run_dir, rundir.CHECKPOINTS)
    manager = tf.train.CheckpointManager(checkpoint, _writable_dir(checkpoint_dir, chief), max_to_keep=3)
    start_step = 0
    if resume:
        latest = tf.train.latest_checkpoint(checkpoint_dir)
        if latest is None:
            raise FileNotFoundError(f"--resume: no checkpoint in {checkpoint_dir}")
        checkpoint.restore(latest).assert_existing_objects_matched()
        start_step = int(optimizer.iterations.numpy())
        log(f"Resuming {run_dir} from step {start_step} of {total_steps} ({latest})")
    history = _load_history(run_dir, before_step=start_step) if resume else []

    train_ds = kdata.build_pipeline(source, split="train", image_size=config.image_size,
                                    batch_size=config.batch_size, training=True, seed=config.seed,
                                    mean_pixel=spec.mean, scale_range=config.scale_range)
    train_ds = _shardable(train_ds.skip(start_step))
    val_ds = kdata.build_pipeline(source, split="val", image_size=config.image_size, batch_size=config.batch_size,
                                  training=False, seed=config.seed, mean_pixel=spec.mean)
    iterator = iter(strategy.experimental_distribute_dataset(train_ds))

    train_step = make_train_step(model, optimizer, strategy, class_weights=weights, ignore_label=spec.ignore_label,
                                 metric=train_miou)

    writers = _summary_writers(run_dir, chief)
    interactive = sys.stdout.isatty()
    step = start_step
    log(f"Training {config.arch} ({model.count_params():,} parameters) on {config.dataset}: {config.epochs} epochs x "
        f"{steps_per_epoch} steps, global batch {config.batch_size} over {replicas} replica(s), {policy}; "
        f"run directory {run_dir}")
    with _graceful_stop() as stop:
        for epoch in range(start_step // steps_per_epoch, config.epochs):
            epoch_start = time.time()
            epoch_end = (epoch + 1) * steps_per_epoch
            train_miou.reset_state()
            progbar = keras.utils.Progbar(steps_per_epoch, verbose=1 if verbose else 0,
                                          interval=0.1 if interactive else 15.0,
                                          stateful_metrics=["loss", "lr"], unit_name="step")
            if verbose:
                log(f"Epoch {epoch + 1}/{config.epochs}")
            losses = []
            while step < epoch_end:
                loss = float(train_step(iterator))
                if not math.isfinite(loss):
                    raise NonFiniteLossError(
                        f"loss is {loss} at step {step + 1}; stopped without saving. The last good checkpoint is "
                        f"{tf.train.latest_checkpoint(checkpoint_dir)} (try a lower --learning-rate)")
                step += 1
                losses.append(loss)
                lr = float(schedule(step - 1))
                progbar.update(step - epoch * steps_per_epoch, [("loss", loss), ("lr", lr)])
                if step % SUMMARY_EVERY == 0:
                    with writers["train"].as_default(step=step):
                        tf.summary.scalar("loss", loss)
                        tf.summary.scalar("learning_rate", lr)
                if stop.signal_name:
                    manager.save(checkpoint_number=step)
                    raise TrainingInterrupted(run_dir, step, stop.signal_name)

            # Validation, then files: models first, metrics next, checkpoint last, so that a crash in between
            # only repeats work on resume.
            matrix = evaluate_matrix(model, val_ds, num_classes=num_classes, ignore_label=spec.ignore_label,
                                     strategy=None if multi_worker else strategy)
            results = ConfusionMatrix(num_classes, ignore_label=spec.ignore_label)
            results.matrix[:] = matrix
            val = results.results(labels=list(labels))
            entry = {"epoch": epoch + 1, "step": step, "train_loss": float(np.mean(losses)) if losses else None,
                     "train_mean_iou": float(train_miou.result()), "val": val,
                     "seconds": round(time.time() - epoch_start, 2)}
            history.append(entry)
            _write_epoch_summaries(writers, entry, step)
            improved = val["mean_iou"] is not None and val["mean_iou"] > float(best_miou.numpy())
            if improved:
                best_miou.assign(val["mean_iou"])
                snapshot = _snapshot(model, saver)
                _save_model(snapshot, os.path.join(run_dir, rundir.BEST_MODEL), chief)
                if chief:
                    report.save_confusion_matrix(os.path.join(run_dir, rundir.CONFUSION), matrix, labels=labels,
                                                 title=f"val, epoch {epoch + 1}, mean IoU {val['mean_iou']:.3f}")
                    _save_overlays(snapshot, val_ds, spec, os.path.join(run_dir, rundir.OVERLAYS), config.val_examples)
            _save_model(_snapshot(model, saver), os.path.join(run_dir, rundir.LAST_MODEL), chief)
            if chief:
                files.write_json(os.path.join(run_dir, rundir.METRICS),
                                 _metrics_document(history, total_steps, time.time() - started))
            manager.save(checkpoint_number=step)
            log(f"epoch {epoch + 1}: loss {entry['train_loss']:.4f}  val mean IoU {val['mean_iou']:.4f}  "
                f"pixel acc {val['pixel_accuracy']:.4f}" + ("  (best)" if improved else ""))
            if stop.signal_name:
                raise TrainingInterrupted(run_dir, step, stop.signal_name)

    if not chief:
        shutil.rmtree(manager.directory, ignore_errors=True)
    best_index = _best_index(history)
    result = TrainResult(run_dir=run_dir, steps=step, best_epoch=history[best_index]["epoch"],
                         best=history[best_index]["val"], last=history[-1]["val"], history=history,
                         seconds=time.time() - started)
    return result


def make_train_step(model, optimizer, strategy, *, class_weights=None, ignore_label: int = 255, metric=None):
    """A ``tf.function(iterator) -> loss`` running one optimiser step on each replica.

    The loss is the weighted mean cross-entropy over the labelled pixels of the *global* batch (each replica
    divides its sum by the global weight total), so any number of replicas gives the same loss and
    gradients as one device. A ``LossScaleOptimizer`` (mixed_float16) gets its loss scaled.
    """
    scaled_loss = isinstance(optimizer, keras.mixed_precision.LossScaleOptimizer)

    def weight_fn(masks):
        return label_weight_sum(masks, class_weights=class_weights, ignore_label=ignore_label)

    def step_fn(images, masks, global_weight):
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            total, _ = cross_entropy_sums(masks, logits, class_weights=class_weights, ignore_label=ignore_label)
            loss = total / tf.maximum(global_weight, 1.0)
            if model.losses:
                loss += tf.nn.scale_regularization_loss(tf.add_n(model.losses))
            to_differentiate = optimizer.get_scaled_loss(loss) if scaled_loss else loss
        grads = tape.gradient(to_differentiate, model.trainable_variables)
        if scaled_loss:
            grads = optimizer.get_unscaled_gradients(grads)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        if metric is not None:
            metric.update_state(masks, logits)
        return loss

    @tf.function
    def train_step(iterator):
        images, masks = next(iterator)
        # The global pixel-weight total is reduced before the step, so that no collective inside the step
        # has to line up with the gradient all-reduce.
        global_weight = strategy.reduce("sum", strategy.run(weight_fn, args=(masks,)), axis=None)
        losses = strategy.run(step_fn, args=(images, masks, global_weight))
        return strategy.reduce("sum", losses, axis=None)

    return train_step


def set_batch_norm_momentum(model, momentum: float) -> int:
    """Set the moving-average momentum of every BatchNormalization layer; returns how many."""
    count = 0
    for layer in model.submodules:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.momentum = float(momentum)
            count += 1
    return count


def synchronize_batch_norm(model) -> int:
    """Make every BatchNormalization layer compute batch statistics over all replicas; returns how many."""
    count = 0
    for layer in model.submodules:
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.synchronized = True
            layer.fused = False
            count += 1
    return count


def evaluate_matrix(model, dataset, *, num_classes: int, ignore_label: int = 255, strategy=None) -> np.ndarray:
    """The (C, C) confusion matrix of ``model`` on ``dataset`` batches ``(images, masks)``.

    With a ``strategy`` the batches are spread over its replicas; without one the model runs locally
    (every worker of a multi-worker run evaluates the whole set, so no worker waits on another).
    """
    if strategy is None:
        @tf.function
        def batch_matrix(images, masks):
            logits = model(images, training=False)
            return confusion_batch(masks, logits, num_classes=num_classes, ignore_label=ignore_label)

        total = np.zeros((num_classes, num_classes), np.float64)
        for images, masks in dataset:
            total += batch_matrix(images, masks).numpy()
        return total.round().astype(np.int64)

    @tf.function
    def distributed_matrix(images, masks):
        def replica_fn(images, masks):
            logits = model(images, training=False)
            return confusion_batch(masks, logits, num_classes=num_classes, ignore_label=ignore_label)

        return strategy.reduce("sum", strategy.run(replica_fn, args=(images, masks)), axis=None)

    total = np.zeros((num_classes, num_classes), np.float64)
    for images, masks in strategy.experimental_distribute_dataset(dataset):
        total += distributed_matrix(images, masks).numpy()
    return total.round().astype(np.int64)


# ---------------------------------------------------------------------------------------------- helpers


def _steps_per_epoch(source, batch_size: int) -> int:
    count = source.num_examples("train")
    if not count:
        raise ValueError(f"steps_per_epoch: dataset {source.name!r} does not know its train size; "
                         f"give --steps-per-epoch")
    return max(1, count // batch_size)


def _class_weights(config, source, kdata) -> list | None:
    if config.class_weights == "none":
        return None
    weights = kdata.class_weights(source)
    return [float(w) for w in weights]


def _prepare_run_dir(run_dir: str, resolved: dict, *, resume: bool, chief: bool) -> None:
    config_path = os.path.join(run_dir, CONFIG_FILENAME)
    if not resume:
        if not chief:
            return  # the chief writes config.yaml, perhaps before this worker gets here
        if os.path.exists(config_path):
            raise FileExistsError(f"output_dir {run_dir} already holds a run; continue it with --resume "
                                  f"or choose another --output-dir")
        return
    saved = rundir.read_config(run_dir)
    differences = config_differences(saved["train"], resolved["train"])
    # The hardware may change between runs (the batch size is global); everything else must match.
    hardware = ("train", "strategy", "replicas", "precision_policy")
    differences += config_differences({k: v for k, v in saved.items() if k not in hardware},
                                      {k: v for k, v in resolved.items() if k not in hardware})
    if differences:
        raise ValueError(f"--resume {run_dir}: the configuration differs from the checkpoint's, refusing to resume:\n  "
                         + "\n  ".join(differences))


def _writable_dir(directory: str, chief: bool) -> str:
    """Non-chief workers of a multi-worker run write their (required) checkpoint copies to a temporary folder."""
    return directory if chief else tempfile.mkdtemp(prefix="kerasseg-worker-")


def _snapshot(model, saver):
    """The model to save and draw with. Multi-worker: a local copy, because reading the distributed variables
    runs collectives, which every worker must run in the same order (``model.save`` reads them from threads)."""
    if saver is None:
        return model
    weights = model.get_weights()  # on every worker, in a fixed order
    saver.set_weights(weights)
    return saver


def _save_model(model, path: str, chief: bool) -> None:
    if chief:
        with files.atomic_path(path) as tmp:
            model.save(tmp)


def _shardable(dataset):
    """Let tf.distribute shard batches by element, which works for every source (files or in-memory)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _summary_writers(run_dir: str, chief: bool) -> dict:
    if not chief:
        return {"train": tf.summary.create_noop_writer(), "val": tf.summary.create_noop_writer()}
    return {name: tf.summary.create_file_writer(os.path.join(run_dir, rundir.LOGS, name)) for name in ("train", "val")}


def _write_epoch_summaries(writers, entry, step) -> None:
    with writers["train"].as_default(step=step):
        tf.summary.scalar("epoch_loss", entry["train_loss"])
        tf.summary.scalar("mean_iou", entry["train_mean_iou"])
    with writers["val"].as_default(step=step):
        for key in ("pixel_accuracy", "mean_accuracy", "mean_iou", "frequency_weighted_iou"):
            if entry["val"][key] is not None:
                tf.summary.scalar(key, entry["val"][key])
        for name, value in entry["val"]["per_class_iou"].items():
            if value is not None:
                tf.summary.scalar(f"iou/{name}", value)
    for writer in writers.values():
        writer.flush()


def _save_overlays(model, val_ds, spec: Spec, path: str, count: int) -> None:
    images, truths = [], []
    for batch_images, batch_masks in val_ds:
        images.extend(batch_images.numpy())
        truths.extend(batch_masks.numpy())
        if len(images) >= count:
            break
    images, truths = np.stack(images[:count]), np.stack(truths[:count])
    # A plain call, not predict(): under multi-worker training only the chief gets here.
    predictions = np.argmax(model(images, training=False).numpy(), axis=-1)
    report.save_overlays(path, images=np.clip(images, 0, 255).astype(np.uint8), truths=truths,
                         predictions=predictions, labels=spec.labels, colors=spec.colors,
                         ignore_label=spec.ignore_label)


def _best_index(history) -> int:
    scores = [(-1.0 if h["val"]["mean_iou"] is None else h["val"]["mean_iou"]) for h in history]
    return int(np.argmax(scores))


def _metrics_document(history, total_steps, seconds) -> dict:
    best = history[_best_index(history)]
    return {"best_epoch": best["epoch"], "best": best["val"], "last": history[-1]["val"],
            "steps": history[-1]["step"], "total_steps": total_steps, "elapsed_seconds": round(seconds, 1),
            "history": history}


def _load_history(run_dir: str, *, before_step: int) -> list:
    path = os.path.join(run_dir, rundir.METRICS)
    if not os.path.exists(path):
        return []
    import json

    with open(path, encoding="utf-8") as f:
        return [h for h in json.load(f).get("history", []) if h["step"] <= before_step]


class _StopFlag:
    signal_name: str | None = None


@contextlib.contextmanager
def _graceful_stop():
    """Turn the first SIGTERM/SIGINT into a flag the loop checks after each step; a second Ctrl-C aborts at once."""
    flag = _StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return

    def handler(signum, frame):
        if flag.signal_name and signum == signal.SIGINT:
            raise KeyboardInterrupt
        flag.signal_name = signal.Signals(signum).name
        print(f"\n{flag.signal_name} received: saving a checkpoint after this step "
              f"(Ctrl-C again to abort without saving)", file=sys.stderr, flush=True)

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
