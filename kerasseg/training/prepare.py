"""The first step of training: from a ``TrainConfig`` to the hardware, the data, the spec and the model arguments.

Nothing here touches the run directory; ``Setup.document()`` is the ``config.yaml`` the run will hold.
"""
from __future__ import annotations

import dataclasses

from edge.artifact import Spec
from kerasseg.backend import keras
from kerasseg.rundir.run import config_document
from kerasseg.training import distribute
from kerasseg.training.config import TrainConfig


@dataclasses.dataclass
class Setup:
    """Everything ``train`` derives from its config before it opens the run directory."""

    config: TrainConfig
    strategy: object          # a tf.distribute strategy
    policy: str               # the mixed-precision policy name
    chief: bool               # this process writes the run directory
    multi_worker: bool
    source: object            # a kerasseg.data.DatasetSource
    spec: Spec
    model_kwargs: dict        # the exact build_model arguments, defaults filled in
    steps_per_epoch: int
    class_weights: list | None

    @property
    def total_steps(self) -> int:
        return self.steps_per_epoch * self.config.epochs

    @property
    def replicas(self) -> int:
        return self.strategy.num_replicas_in_sync

    def pipeline(self, split: str):
        """The run's tf.data pipeline of ``split`` ("train": shuffled and augmented; "val": in order)."""
        from kerasseg.data import build_pipeline

        config = self.config
        return build_pipeline(self.source, split=split, image_size=config.image_size, batch_size=config.batch_size,
                              training=split == "train", seed=config.seed, mean_pixel=self.spec.mean,
                              scale_range=config.scale_range)

    def document(self) -> dict:
        """The resolved configuration, as ``config.yaml`` stores it (see ``kerasseg.rundir.run``)."""
        return config_document(
            train=self.config.to_dict(),
            model=self.model_kwargs,
            derived={"labels": list(self.spec.labels),
                     "scale_range": list(self.config.scale_range or self.source.scale_range),
                     "class_weights": self.class_weights, "steps_per_epoch": self.steps_per_epoch,
                     "total_steps": self.total_steps},
            hardware={"strategy": distribute.describe(self.strategy), "replicas": self.replicas,
                      "precision_policy": self.policy})


def prepare(config: TrainConfig, *, check_data: bool = False, log=print) -> Setup:
    """Set up the hardware (strategy, seed, precision policy), open the dataset and derive the spec."""
    # Hardware first: multi-worker collectives must be configured before any op runs, and the
    # mixed-precision policy set before any layer is built.
    strategy = distribute.make_strategy(config.strategy)
    keras.utils.set_random_seed(config.seed)  # the initial weights (and dropout) follow the seed
    policy = distribute.mixed_precision_policy(config.mixed_precision, strategy)
    distribute.set_policy(policy)
    if config.batch_size % strategy.num_replicas_in_sync:
        raise ValueError(f"batch_size: the global batch {config.batch_size} must be divisible by the "
                         f"{strategy.num_replicas_in_sync} replicas of strategy {config.strategy!r}")

    from kerasseg import data as kdata
    from kerasseg import models as kmodels

    source = kdata.open_dataset(config.dataset, seed=config.seed, skip_bad_files=config.skip_bad_files)
    if not source.labelled:
        raise ValueError(f"dataset {config.dataset}: images without masks serve convert.py's calibration and "
                         f"parity; training needs masks (voc:, folder:, coco:, ...)")
    if check_data:
        log(kdata.check_dataset(source))
    model_kwargs = kmodels.model_config(**config.model_kwargs(num_classes=len(source.labels)))
    preprocessing = kmodels.preprocessing_for(arch=model_kwargs["arch"], backbone=model_kwargs["backbone"])
    spec = Spec(labels=tuple(source.labels), colors=source.colors or (), input_size=config.image_size,
                mean=preprocessing["mean"], std=preprocessing["std"], channel_order=preprocessing["channel_order"],
                ignore_label=source.ignore_label, label_ids=source.label_ids, output_kind="logits")
    weights = None if config.class_weights == "none" else [float(w) for w in kdata.class_weights(source)]
    return Setup(config=config, strategy=strategy, policy=policy, chief=distribute.is_chief(strategy),
                 multi_worker=distribute.is_multi_worker(strategy), source=source, spec=spec,
                 model_kwargs=model_kwargs, steps_per_epoch=config.steps_per_epoch or _steps_per_epoch(source, config),
                 class_weights=weights)


def _steps_per_epoch(source, config: TrainConfig) -> int:
    count = source.num_examples("train")
    if not count:
        raise ValueError(f"steps_per_epoch: dataset {source.name!r} does not know its train size; "
                         f"give --steps-per-epoch")
    return max(1, count // config.batch_size)
