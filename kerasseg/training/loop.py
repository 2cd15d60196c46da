"""The training loop: a custom tf.distribute step, validation after each epoch, checkpoints, graceful stop.

``fit(setup, run)`` builds the model and optimizer under the strategy, restores the latest checkpoint when
resuming, and trains ``epochs x steps_per_epoch`` steps. After each epoch it validates (the shared
``evaluation.evaluate``) and writes, in this order, the best model and its pictures, the last model,
``metrics.json`` and a checkpoint, so that a crash in between only repeats work on resume. SIGTERM or Ctrl-C
stops it after the current step with a checkpoint.
"""
from __future__ import annotations

import contextlib
import dataclasses
import math
import signal
import sys
import threading
import time

import numpy as np

from kerasseg.backend import keras, tf
from kerasseg.rundir.run import Progress
from kerasseg.training.batchnorm import set_batch_norm_momentum, synchronize_batch_norm
from kerasseg.training.evaluation import evaluate
from kerasseg.training.losses import cross_entropy_sums, label_weight_sum
from kerasseg.training.metrics import ConfusionMatrixMetric
from kerasseg.training.optim import PolyWarmup, build_optimizer

SUMMARY_EVERY = 10  # steps between TensorBoard scalars
VAL_KEYS = ("pixel_accuracy", "mean_accuracy", "mean_iou", "frequency_weighted_iou")


class TrainingInterrupted(Exception):
    """Training stopped on SIGTERM/SIGINT after saving a checkpoint; ``--resume`` continues it."""

    def __init__(self, run_dir: str, step: int, signal_name: str):
        super().__init__(f"stopped by {signal_name} at step {step}; checkpoint saved in {run_dir}. "
                         f"Continue with: python train.py --resume {run_dir}")
        self.run_dir, self.step, self.signal_name = run_dir, step, signal_name


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


@dataclasses.dataclass
class Parts:
    """What the strategy holds: the model, its optimizer and schedule, and the checkpoint over them."""

    model: object
    optimizer: object
    schedule: PolyWarmup
    train_miou: ConfusionMatrixMetric
    best_miou: object          # tf.Variable, saved in the checkpoint
    checkpoint: object         # tf.train.Checkpoint
    saver: object | None       # multi-worker: a local copy of the model to save and draw with


def build(setup) -> Parts:
    """Build the model, optimizer and checkpoint under ``setup.strategy``."""
    from kerasseg.models import build_model

    config = setup.config
    with setup.strategy.scope():
        model = build_model(**setup.model_kwargs, input_shape=(None, None, 3),
                            backbone_weights=config.backbone_weights)
        if config.sync_batch_norm:
            synchronize_batch_norm(model)
        if config.bn_momentum is not None:
            set_batch_norm_momentum(model, config.bn_momentum)
        schedule = PolyWarmup(learning_rate=config.learning_rate, total_steps=setup.total_steps,
                              warmup_steps=min(config.warmup_steps, setup.total_steps - 1))
        optimizer = build_optimizer(name=config.optimizer, learning_rate=schedule, momentum=config.momentum,
                                    weight_decay=config.weight_decay, mixed_float16=setup.policy == "mixed_float16")
        # Its slots made now, not by the first train step: a tf.function that creates variables is traced twice.
        getattr(optimizer, "inner_optimizer", optimizer).build(model.trainable_variables)
        train_miou = ConfusionMatrixMetric(setup.spec.num_classes, ignore_label=setup.spec.ignore_label,
                                           name="train_mean_iou")
        best_miou = tf.Variable(-1.0, dtype=tf.float64, trainable=False, name="best_mean_iou")
        checkpoint = tf.train.Checkpoint(model=model, optimizer=optimizer, best_mean_iou=best_miou)
    saver = None
    if setup.multi_worker:
        saver = build_model(**setup.model_kwargs, input_shape=(None, None, 3))
        if config.bn_momentum is not None:
            set_batch_norm_momentum(saver, config.bn_momentum)
    return Parts(model, optimizer, schedule, train_miou, best_miou, checkpoint, saver)


@dataclasses.dataclass
class Outcome:
    history: list
    steps: int
    elapsed_seconds: float     # over every session of the run, resumes included
    skipped_files: dict        # split -> messages naming each bad file skipped and why


def fit(setup, run, *, resume: bool, log=print, verbose: bool = True, init_source=None) -> Outcome:
    """Train ``setup`` into ``run`` (see the module docstring); returns the whole run's history.

    ``init_source``: the opened ``--init-from`` model (``init_from.InitSource``), if the caller has it."""
    parts = build(setup)
    if setup.config.init_from and not resume:  # a resumed run restores its own checkpoint instead
        from kerasseg.training.init_from import initialize
        initialize(parts.model, setup, source=init_source, log=log)
    with run.checkpoints(parts.checkpoint) as manager:
        start_step = _restore(parts.checkpoint, run, resume=resume, log=log, total_steps=setup.total_steps)
        progress = run.read_progress(before_step=start_step) if resume else Progress([], 0.0, {})
        session = _Session(setup, run, parts, manager, progress, start_step=start_step, log=log, verbose=verbose)
        try:
            with _graceful_stop() as stop:
                for epoch in range(start_step // setup.steps_per_epoch, setup.config.epochs):
                    session.epoch(epoch, stop)
        finally:
            session.record()  # the time spent and the files skipped, whatever ended the loop
    return session.outcome()


def _restore(checkpoint, run, *, resume: bool, log, total_steps: int) -> int:
    if not resume:
        return 0
    latest = run.latest_checkpoint()
    if latest is None:
        raise FileNotFoundError(f"--resume: no checkpoint in {run.path}")
    checkpoint.restore(latest).assert_existing_objects_matched()
    step = int(checkpoint.optimizer.iterations.numpy())
    log(f"Resuming {run.path} from step {step} of {total_steps} ({latest})")
    return step


class _Session:
    """One process's part of a run: the step counter, the history and the pipelines, carried over epochs."""

    def __init__(self, setup, run, parts: Parts, manager, progress: Progress, *, start_step: int, log, verbose):
        self.setup, self.run, self.parts, self.manager = setup, run, parts, manager
        self.log, self.verbose = log, verbose
        self.step, self.history, self.started = start_step, list(progress.history), time.time()
        self.elapsed_before, self.skipped_before = progress.elapsed_seconds, progress.skipped_files
        config, spec, strategy = setup.config, setup.spec, setup.strategy
        train_ds = setup.pipeline("train")
        self.iterator = iter(strategy.experimental_distribute_dataset(_shardable(train_ds.skip(start_step))))
        self.val_ds = setup.pipeline("val")
        self.train_step = make_train_step(parts.model, parts.optimizer, strategy, class_weights=setup.class_weights,
                                          ignore_label=spec.ignore_label, metric=parts.train_miou)
        self.writers = run.summary_writers()
        self.logged_skips = {split: len(messages) for split, messages in self.skipped_files().items()}
        log(f"Training {config.arch} ({parts.model.count_params():,} parameters) on {config.dataset}: "
            f"{config.epochs} epochs x {setup.steps_per_epoch} steps, global batch {config.batch_size} over "
            f"{setup.replicas} replica(s), {setup.policy}; run directory {run.path}")

    def epoch(self, epoch: int, stop) -> None:
        """Train one epoch, validate, write the files, log."""
        started = time.time()
        losses = self._train(epoch, stop)
        val, matrix = self._validate()
        entry = {"epoch": epoch + 1, "step": self.step, "train_loss": float(np.mean(losses)) if losses else None,
                 "train_mean_iou": float(self.parts.train_miou.result()), "val": val,
                 "seconds": round(time.time() - started, 2)}
        self.history.append(entry)
        _write_epoch_summaries(self.writers, entry, self.step)
        improved = val["mean_iou"] is not None and val["mean_iou"] > float(self.parts.best_miou.numpy())
        snapshot = self._snapshot()
        if improved:
            self.parts.best_miou.assign(val["mean_iou"])
            self._save_best(snapshot, matrix, title=f"val, epoch {epoch + 1}, mean IoU {val['mean_iou']:.3f}")
            self.run.last_is_best()
        else:
            self.run.save_model(snapshot, which="last")
        self.record()
        self.manager.save(checkpoint_number=self.step)
        self.log(f"epoch {epoch + 1}/{self.setup.config.epochs}: loss {entry['train_loss']:.4f}  val mean IoU "
                 f"{val['mean_iou']:.4f}  pixel acc {val['pixel_accuracy']:.4f}  {entry['seconds']:.0f} s"
                 + ("  (best)" if improved else ""))
        sys.stdout.flush()  # a log file shows each epoch as it ends
        self._log_new_skips()
        if stop.signal_name:
            raise TrainingInterrupted(self.run.path, self.step, stop.signal_name)

    def _train(self, epoch: int, stop) -> list:
        config, steps = self.setup.config, self.setup.steps_per_epoch
        self.parts.train_miou.reset_state()
        # A progress bar on a terminal only: it redraws with carriage returns, which a log file keeps. Elsewhere
        # the one line per epoch that epoch() logs is all.
        bar = self.verbose and sys.stdout.isatty()
        progbar = keras.utils.Progbar(steps, verbose=1 if bar else 0, interval=0.1, stateful_metrics=["loss", "lr"],
                                      unit_name="step")
        if bar:
            self.log(f"Epoch {epoch + 1}/{config.epochs}")
        losses = []
        while self.step < (epoch + 1) * steps:
            loss = float(self.train_step(self.iterator))
            if not math.isfinite(loss):
                raise NonFiniteLossError(
                    f"loss is {loss} at step {self.step + 1}; stopped without saving. The last good checkpoint is "
                    f"{self.run.latest_checkpoint() or 'none (no epoch finished)'} (try a lower --learning-rate)")
            self.step += 1
            losses.append(loss)
            lr = float(self.parts.schedule(self.step - 1))
            progbar.update(self.step - epoch * steps, [("loss", loss), ("lr", lr)])
            if self.step % SUMMARY_EVERY == 0:
                with self.writers["train"].as_default(step=self.step):
                    tf.summary.scalar("loss", loss)
                    tf.summary.scalar("learning_rate", lr)
            if stop.signal_name:
                self.manager.save(checkpoint_number=self.step)
                raise TrainingInterrupted(self.run.path, self.step, stop.signal_name)
        return losses

    def _validate(self) -> tuple[dict, np.ndarray]:
        setup = self.setup
        out = evaluate(self.parts.model, self.val_ds, num_classes=setup.spec.num_classes, labels=setup.spec.labels,
                       ignore_label=setup.spec.ignore_label, strategy=None if setup.multi_worker else setup.strategy)
        return out["results"], out["matrix"]

    def _snapshot(self):
        """The model to save and draw with. Multi-worker: a local copy, because reading the distributed variables
        runs collectives, which every worker must run in the same order (``model.save`` reads them from threads)."""
        if self.parts.saver is None:
            return self.parts.model
        self.parts.saver.set_weights(self.parts.model.get_weights())  # on every worker, in a fixed order
        return self.parts.saver

    def _save_best(self, model, matrix, *, title: str) -> None:
        self.run.save_model(model, which="best")
        if not self.run.chief:
            return
        count, images, truths = self.setup.config.val_examples, [], []
        for batch_images, batch_masks in self.val_ds:
            images.extend(batch_images.numpy())
            truths.extend(batch_masks.numpy())
            if len(images) >= count:
                break
        images, truths = np.stack(images[:count]), np.stack(truths[:count])
        # A plain call, not predict(): under multi-worker training only the chief gets here.
        predictions = np.argmax(model(images, training=False).numpy(), axis=-1)
        from kerasseg.training import report  # matplotlib, loaded when the first picture is drawn

        report.save_run_pictures(self.run, matrix=matrix, title=title,
                                 images=np.clip(images, 0, 255).astype(np.uint8), truths=truths,
                                 predictions=predictions)

    def skipped_files(self) -> dict:
        """Per split, the bad files skipped over the whole run (earlier sessions first), each with its reason."""
        out = {split: list(messages) for split, messages in self.skipped_before.items()}
        for split, messages in getattr(self.setup.source, "skipped", {}).items():
            known = out.setdefault(split, [])
            known.extend(m for m in messages if m not in known)
        return {split: messages for split, messages in out.items() if messages}

    def _log_new_skips(self) -> None:
        for split, messages in self.skipped_files().items():
            new = messages[self.logged_skips.get(split, 0):]
            if new:
                self.log(f"skipped {len(new)} bad file(s) in {split} ({len(messages)} so far):\n  " + "\n  ".join(new))
            self.logged_skips[split] = len(messages)

    def elapsed(self) -> float:
        return self.elapsed_before + time.time() - self.started

    def record(self) -> None:
        """``metrics.json`` as of now."""
        self.run.write_metrics(history=self.history, elapsed_seconds=self.elapsed(),
                               skipped_files=self.skipped_files())

    def outcome(self) -> Outcome:
        for writer in self.writers.values():
            writer.close()
        return Outcome(self.history, self.step, self.elapsed(), self.skipped_files())


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


def _shardable(dataset):
    """Let tf.distribute shard batches by element, which works for every source (files or in-memory)."""
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _write_epoch_summaries(writers, entry, step) -> None:
    with writers["train"].as_default(step=step):
        tf.summary.scalar("epoch_loss", entry["train_loss"])
        tf.summary.scalar("mean_iou", entry["train_mean_iou"])
    with writers["val"].as_default(step=step):
        for key in VAL_KEYS:
            if entry["val"][key] is not None:
                tf.summary.scalar(key, entry["val"][key])
        for name, value in entry["val"]["per_class_iou"].items():
            if value is not None:
                tf.summary.scalar(f"iou/{name}", value)
    for writer in writers.values():
        writer.flush()


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
