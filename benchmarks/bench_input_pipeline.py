"""Is the input pipeline ever the bottleneck? Training images/s, live pipeline vs cached batches.

One command: ``python benchmarks/bench_input_pipeline.py``. It builds a model
and one train step, then times the same number of steps fed (a) by the live
training pipeline (decode, augment, batch, prefetch on background threads) and
(b) by batches taken from that pipeline beforehand and held in memory. The
two are run alternately ``--repeats`` times; each kind's fastest run is compared
(the least disturbed by other processes on a shared machine), with the medians
beside it. The goal is live / cached >= 0.95. It also prints the pipeline's own throughput with no
model, the headroom it has.

``--generate coco``, ``colour-masks`` or ``palette-masks`` first writes a dataset in that layout to a
temporary folder (``--generate-images`` images of ``--generate-size``: a COCO JSON file with polygon, RLE
and crowd annotations; a CVAT-style export with RGB masks and labelmap.txt; or the same with palette PNG
masks, the baseline) and times the pipeline on it, e.g.
``python benchmarks/bench_input_pipeline.py --generate coco``.
"""
from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import tempfile
import time

import cv2
import numpy as np
from PIL import Image

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [os.path.dirname(HERE), HERE]

import results  # noqa: E402
from kerasseg.backend import keras, tf  # noqa: E402
from kerasseg.data import IGNORE_LABEL, build_pipeline, open_dataset  # noqa: E402
from edge.files import write_bytes, write_json, write_text  # noqa: E402
from kerasseg.models import build_model, list_models  # noqa: E402

GOAL = 0.95
GENERATED = ("coco", "colour-masks", "palette-masks")  # palette masks: the baseline the other two add to
CLASS_COLOURS = {"background": (0, 0, 0), "cat": (250, 50, 83), "dog": (61, 245, 61), "car": (51, 221, 255)}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=str, default="synthetic", help="dataset URI (see kerasseg.data)")
    parser.add_argument("--arch", type=str, default="deeplabv3plus", choices=list_models())
    parser.add_argument("--alpha", type=float, default=0.35,
                        help="MobileNetV2 width multiplier, deeplabv3plus only (train.py's default)")
    parser.add_argument("--image-size", type=int, nargs=2, default=(64, 64), metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--steps", type=int, default=20, help="timed train steps per run")
    parser.add_argument("--warmup", type=int, default=3, help="untimed steps before each run")
    parser.add_argument("--repeats", type=int, default=5, help="runs of each kind, alternated")
    parser.add_argument("--generate", type=str, choices=GENERATED, default=None,
                        help="write a dataset in this layout to a temporary folder and use it (overrides --dataset)")
    parser.add_argument("--generate-images", type=int, default=64, metavar="N", help="images to generate")
    parser.add_argument("--generate-size", type=int, nargs=2, default=(240, 320), metavar=("HEIGHT", "WIDTH"),
                        help="size of the generated images")
    parser.add_argument("--json", default=None, help="also write the results here (benchmarks/results.py)")
    return parser.parse_args(argv)


def generate(layout: str, folder: str, *, count: int, size, seed: int = 0) -> str:
    """Write ``count`` JPEG images and their annotations in ``layout`` under ``folder``; return the dataset URI."""
    rng = np.random.default_rng(seed)
    height, width = size
    names = list(CLASS_COLOURS)
    images, annotations, stems = [], [], []
    palette = np.array(list(CLASS_COLOURS.values()), np.uint8)
    for sub in ("images", "JPEGImages", "SegmentationClass"):
        os.makedirs(os.path.join(folder, sub), exist_ok=True)
    for index in range(count):
        stem = f"img{index:05d}"
        image = cv2.GaussianBlur(rng.integers(0, 256, (height, width, 3), dtype=np.uint8), (0, 0), 3)
        mask = np.zeros((height, width), np.uint8)
        image_dir = "images" if layout == "coco" else "JPEGImages"
        write_bytes(os.path.join(folder, image_dir, stem + ".jpg"), cv2.imencode(".jpg", image)[1].tobytes())
        for number in range(6):  # polygons (and one crowd RLE per image in COCO)
            cx, cy, r = rng.integers(0, width), rng.integers(0, height), rng.integers(8, max(9, height // 3))
            angles = np.sort(rng.uniform(0, 2 * np.pi, 8))
            points = np.stack([cx + r * np.cos(angles), cy + r * np.sin(angles)], 1).clip(0, [width - 1, height - 1])
            category = int(rng.integers(1, len(names)))
            cv2.fillPoly(mask, [points.round().astype(np.int32)], category)
            segmentation = [points.ravel().round(1).tolist()]
            if number == 5:  # an uncompressed RLE crowd region
                region = np.zeros((height, width), np.uint8)
                region[: height // 4, : width // 4] = 1
                flat = region.ravel(order="F")
                runs = np.diff(np.concatenate([[0], np.flatnonzero(np.diff(flat)) + 1, [flat.size]])).tolist()
                segmentation = {"size": [height, width], "counts": ([0] + runs) if flat[0] else runs}
            annotations.append({"id": len(annotations) + 1, "image_id": index, "category_id": category,
                                "segmentation": segmentation, "area": float(np.pi * r * r),
                                "iscrowd": int(number == 5)})
        images.append({"id": index, "file_name": stem + ".jpg", "height": height, "width": width})
        stems.append(stem)
        if layout != "coco":
            buffer = io.BytesIO()
            if layout == "colour-masks":
                Image.fromarray(palette[mask]).save(buffer, format="PNG")
            else:
                indexed = Image.fromarray(mask, mode="L").convert("P")
                indexed.putpalette(palette.ravel().tolist())
                indexed.save(buffer, format="PNG")
            write_bytes(os.path.join(folder, "SegmentationClass", stem + ".png"), buffer.getvalue())
    if layout == "colour-masks":
        write_text(os.path.join(folder, "labelmap.txt"),
                   "".join(f"{name}:{r},{g},{b}::\n" for name, (r, g, b) in CLASS_COLOURS.items()))
    if layout != "coco":
        write_text(os.path.join(folder, "labels.txt"), "".join(f"{name}\n" for name in CLASS_COLOURS))
        return f"voc:{folder}"
    categories = [{"id": i, "name": name} for i, name in enumerate(names[1:], start=1)]
    write_json(os.path.join(folder, "annotations.json"),
               {"images": images, "annotations": annotations, "categories": categories})
    return f"coco:{os.path.join(folder, 'annotations.json')}"


def make_train_step(model):
    optimizer = keras.optimizers.SGD(learning_rate=0.01, momentum=0.9)

    @tf.function
    def train_step(images, masks):
        valid = tf.cast(masks != IGNORE_LABEL, tf.float32)
        labels = tf.where(masks == IGNORE_LABEL, 0, masks)
        with tf.GradientTape() as tape:
            logits = model(images, training=True)
            loss = tf.keras.losses.sparse_categorical_crossentropy(labels, logits, from_logits=True)
            loss = tf.reduce_sum(loss * valid) / tf.maximum(tf.reduce_sum(valid), 1.0)
        optimizer.apply_gradients(zip(tape.gradient(loss, model.trainable_variables), model.trainable_variables))
        return loss

    return train_step


def timed_steps(train_step, batches, *, warmup: int, steps: int) -> float:
    """Seconds for ``steps`` train steps after ``warmup`` untimed ones; ``batches`` is any iterator."""
    for _ in range(warmup):
        train_step(*next(batches)).numpy()
    start = time.perf_counter()
    loss = None
    for _ in range(steps):
        loss = train_step(*next(batches))
    loss.numpy()  # wait for the last step
    return time.perf_counter() - start


def pipeline_alone(ds, *, batches: int) -> float:
    iterator = iter(ds)
    next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return time.perf_counter() - start


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.generate:
        with tempfile.TemporaryDirectory(prefix="kerasseg-bench-") as folder:
            args.dataset = generate(args.generate, folder, count=args.generate_images, size=args.generate_size)
            return run(args)
    return run(args)


def run(args) -> int:
    """Time the live pipeline against cached batches on ``args.dataset`` and print the table."""
    load = os.getloadavg()
    source = open_dataset(args.dataset, seed=0)
    options = {"alpha": args.alpha} if args.arch == "deeplabv3plus" else {}
    model = build_model(arch=args.arch, num_classes=len(source.labels), input_shape=(*args.image_size, 3), **options)
    train_step = make_train_step(model)

    def live_pipeline(seed):
        return build_pipeline(source, split="train", image_size=tuple(args.image_size), batch_size=args.batch_size,
                              training=True, seed=seed)

    per_run = args.warmup + args.steps
    cached = [(x, y) for x, y in live_pipeline(0).take(per_run)]  # the same kind of batches, held in memory
    pipeline_s = pipeline_alone(live_pipeline(1), batches=args.steps)
    live_times, cached_times = [], []
    for repeat in range(args.repeats):
        cached_times.append(timed_steps(train_step, iter(cached), warmup=args.warmup, steps=args.steps))
        live_times.append(timed_steps(train_step, iter(live_pipeline(repeat + 2)), warmup=args.warmup,
                                      steps=args.steps))

    images = args.steps * args.batch_size
    pipeline_ips = images / pipeline_s
    live_best, cached_best = images / min(live_times), images / min(cached_times)
    live_median, cached_median = images / statistics.median(live_times), images / statistics.median(cached_times)
    ratio = live_best / cached_best
    print(f"model {model.name} {args.image_size[0]}x{args.image_size[1]}, batch {args.batch_size}, "
          f"{args.steps} steps x {args.repeats} runs, dataset {source.name}")
    print(f"{'':<28} {'best':>9} {'median':>9}  images/s")
    print(f"{'input pipeline alone':<28} {pipeline_ips:>9.1f}")
    print(f"{'training, cached batches':<28} {cached_best:>9.1f} {cached_median:>9.1f}  runs {_fmt(cached_times)} s")
    print(f"{'training, live pipeline':<28} {live_best:>9.1f} {live_median:>9.1f}  runs {_fmt(live_times)} s")
    print(f"{'ratio live / cached':<28} {ratio:>9.3f} {live_median / cached_median:>9.3f}  "
          f"(goal >= {GOAL} on best: {'met' if ratio >= GOAL else 'NOT met'})")
    results.write(args.json, load_before=load,
                  measured={"model": model.name, "images_per_s": {
                      "pipeline_alone": pipeline_ips, "cached_best": cached_best, "cached_median": cached_median,
                      "live_best": live_best, "live_median": live_median},
                      "run_seconds": {"cached": cached_times, "live": live_times}},
                  ratios={"live_over_cached_best": ratio, "live_over_cached_median": live_median / cached_median},
                  goals=[results.goal("input_pipeline", "input pipeline throughput / cached-data training throughput",
                                      compare=">=", target=GOAL, measured=ratio)])
    return 0


def _fmt(times):
    return " ".join(f"{t:.2f}" for t in times)


if __name__ == "__main__":
    raise SystemExit(main())
