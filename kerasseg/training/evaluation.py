"""Evaluation and prediction with a trained model: single or multi-scale, optional flip, optional dense CRF.

Multi-scale inference as in DeepLab (Chen et al., 2017, https://arxiv.org/abs/1706.05587, section 4.1):
the image is resized by each scale, the model's softmax is resized back to the image size, and the
probabilities are averaged over scales (and their left-right flips). The optional refinement is the fully
connected CRF of DeepLab v1/v2 (Krähenbühl and Koltun, 2011, https://arxiv.org/abs/1210.5644), through
the ``pydensecrf2`` package (``pip install pydensecrf2``).
"""
from __future__ import annotations

import dataclasses
from typing import Sequence

import numpy as np

from kerasseg.backend import tf
from kerasseg.training.metrics import ConfusionMatrix, confusion_batch, scores_from_confusion

@dataclasses.dataclass(frozen=True)
class CRFParams:
    """Dense CRF settings (DeepLab's defaults for PASCAL VOC, scaled for small images by the caller)."""

    iterations: int = 5
    gaussian_sxy: float = 3.0
    gaussian_compat: float = 3.0
    bilateral_sxy: float = 50.0
    bilateral_srgb: float = 5.0
    bilateral_compat: float = 4.0


def probabilities(model, images, *, scales: Sequence[float] = (1.0,), flip: bool = False, size_multiple: int = 1):
    """Softmax (B, H, W, C) of ``model`` on float RGB ``images`` (B, H, W, 3), averaged over scales and flips.

    A TensorFlow function of a batch with a fixed image size. Each scaled size is rounded to a multiple of
    ``size_multiple`` (at least one multiple).
    """
    _check_scales(scales)
    images = tf.convert_to_tensor(images, tf.float32)
    height, width = images.shape[1], images.shape[2]
    if height is None or width is None:
        raise ValueError(f"images: evaluation needs batches of one fixed image size, got shape {images.shape}")
    total = None
    for scale in scales:
        scaled_size = [max(size_multiple, int(round(side * scale / size_multiple)) * size_multiple)
                       for side in (height, width)]
        scaled = images if scaled_size == [height, width] else tf.image.resize(images, scaled_size, "bilinear")
        variants = [scaled, tf.reverse(scaled, axis=[2])] if flip else [scaled]
        for index, variant in enumerate(variants):
            probs = tf.nn.softmax(tf.cast(model(variant, training=False), tf.float32), axis=-1)
            if index == 1:
                probs = tf.reverse(probs, axis=[2])
            probs = tf.image.resize(probs, [height, width], "bilinear")
            total = probs if total is None else total + probs
    return total / float(len(scales) * (2 if flip else 1))


def _check_scales(scales) -> None:
    if not scales or any(s <= 0 for s in scales):
        raise ValueError(f"scales: expected positive numbers, got {list(scales)}")


def crf_refine(image: np.ndarray, probs: np.ndarray, *, params: CRFParams = CRFParams()) -> np.ndarray:
    """Refine one softmax map (H, W, C) with a dense CRF over the uint8 RGB ``image`` (H, W, 3); returns class ids."""
    try:
        import pydensecrf.densecrf as dcrf
    except ImportError:
        raise ImportError("--crf needs the pydensecrf2 package: pip install pydensecrf2 "
                          "(or pip install -e '.[crf]')") from None
    height, width, num_classes = probs.shape
    crf = dcrf.DenseCRF2D(width, height, num_classes)
    unary = -np.log(np.clip(probs, 1e-8, 1.0)).transpose(2, 0, 1).reshape(num_classes, -1)
    crf.setUnaryEnergy(np.ascontiguousarray(unary, dtype=np.float32))
    crf.addPairwiseGaussian(sxy=params.gaussian_sxy, compat=params.gaussian_compat)
    crf.addPairwiseBilateral(sxy=params.bilateral_sxy, srgb=params.bilateral_srgb,
                             rgbim=np.ascontiguousarray(image, dtype=np.uint8), compat=params.bilateral_compat)
    q = np.array(crf.inference(params.iterations)).reshape(num_classes, height, width)
    return q.argmax(axis=0).astype(np.int32)


def evaluate(model, dataset, *, num_classes: int, labels: Sequence[str] | None = None,
             scales: Sequence[float] = (1.0,), flip: bool = False, crf: bool = False, ignore_label: int = 255,
             size_multiple: int = 1, crf_params: CRFParams = CRFParams(), strategy=None) -> dict:
    """The FCN metrics of ``model`` on ``dataset`` batches ``(images float [0,255], masks)``.

    The one evaluation loop: training validates with it after each epoch, and ``evaluate.py`` calls it.
    Returns ``{"results": ..., "matrix": ...}`` and, with ``crf``, also ``"crf_results"`` / ``"crf_matrix"``
    for the same predictions refined by the dense CRF. With a ``strategy`` the batches are spread over its
    replicas; without one the model runs locally (so every worker of a multi-worker run evaluates the whole
    set, and no worker waits on another).
    """
    _check_scales(scales)
    if crf and strategy is not None:
        raise ValueError("crf: the dense CRF runs on local batches; evaluate without a strategy")
    step = _batch_step(model, num_classes=num_classes, ignore_label=ignore_label, scales=tuple(scales), flip=flip,
                       size_multiple=size_multiple, strategy=strategy, keep_probabilities=crf)
    batches = dataset if strategy is None else strategy.experimental_distribute_dataset(dataset)
    total = np.zeros((num_classes, num_classes), np.float64)
    refined = ConfusionMatrix(num_classes, ignore_label=ignore_label) if crf else None
    for images, masks in batches:
        matrix, probs = step(images, masks)
        total += matrix.numpy()
        if crf:
            pixels = np.clip(np.asarray(images), 0, 255).astype(np.uint8)
            refined.update(np.asarray(masks), np.stack([crf_refine(image, p, params=crf_params)
                                                        for image, p in zip(pixels, probs.numpy())]))
    matrix = total.round().astype(np.int64)
    out = {"results": scores_from_confusion(matrix, labels=labels), "matrix": matrix}
    if crf:
        out.update(crf_results=refined.results(labels=labels), crf_matrix=refined.matrix.copy())
    return out


def _batch_step(model, *, num_classes, ignore_label, scales, flip, size_multiple, strategy, keep_probabilities):
    """A ``tf.function(images, masks) -> (confusion matrix, probabilities or None)`` for one batch."""
    averaged = keep_probabilities or flip or scales != (1.0,)

    def matrix_and_probabilities(images, masks):
        # One plain pass is argmaxed from the logits; averaging needs probabilities.
        scores = (probabilities(model, images, scales=scales, flip=flip, size_multiple=size_multiple) if averaged
                  else model(images, training=False))
        return confusion_batch(masks, scores, num_classes=num_classes, ignore_label=ignore_label), scores

    if strategy is None:
        @tf.function
        def local_step(images, masks):
            matrix, scores = matrix_and_probabilities(images, masks)
            return matrix, (scores if keep_probabilities else None)

        return local_step

    @tf.function
    def distributed_step(images, masks):
        matrices = strategy.run(lambda i, m: matrix_and_probabilities(i, m)[0], args=(images, masks))
        return strategy.reduce("sum", matrices, axis=None), None

    return distributed_step
