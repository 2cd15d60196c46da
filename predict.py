#!/usr/bin/env python
"""Segment a folder of images with a trained run: colourised masks and overlays, in the spec's colours.

    python predict.py --run runs/20260101-120000-deeplabv3plus --input photos/ --output predictions/

For each image NAME.ext it writes NAME_mask.png (colours), NAME_overlay.png (mask over the image, with a
legend) and NAME_labels.png (class ids, 8-bit). The image is stretched to the spec's input size, as on the
device, and the class map is resized back (nearest neighbour).
"""
from __future__ import annotations

import argparse
import os
import sys

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=str, required=True, metavar="RUN_DIR", help="a training run directory")
    parser.add_argument("--input", type=str, required=True, metavar="FOLDER", help="folder of images")
    parser.add_argument("--output", type=str, required=True, metavar="DIR", help="where to write the results")
    parser.add_argument("--which", type=str, choices=("best", "last"), default="best", help="default: best")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity in [0, 1] (default: 0.5)")
    return parser.parse_args(argv)


def list_images(folder: str) -> list[str]:
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--input: no such folder: {folder}")
    names = sorted(n for n in os.listdir(folder) if n.lower().endswith(IMAGE_EXTENSIONS))
    if not names:
        raise ValueError(f"--input {folder}: no images with extensions {IMAGE_EXTENSIONS}")
    return [os.path.join(folder, n) for n in names]


def predict_image(model, spec, image_bgr):
    """Class ids (H, W) uint8 for one BGR image, at the image's own size."""
    import cv2
    import numpy as np

    height, width = spec.input_size
    rgb = cv2.cvtColor(cv2.resize(image_bgr, (width, height), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
    logits = model.predict_on_batch(rgb[None].astype(np.float32))[0]
    class_map = np.argmax(logits, axis=-1).astype(np.uint8)
    return cv2.resize(class_map, (image_bgr.shape[1], image_bgr.shape[0]), interpolation=cv2.INTER_NEAREST)


def main(argv=None) -> int:
    args = parse_args(argv)
    import cv2

    from edge import visualize
    from kerasseg.training import RunError, load_run

    try:
        if not 0.0 <= args.alpha <= 1.0:
            raise ValueError(f"--alpha: expected a value in [0, 1], got {args.alpha}")
        run = load_run(args.run)
        paths = list_images(args.input)
        model = run.load_model(which=args.which)
        spec = run.spec
        os.makedirs(args.output, exist_ok=True)
        for path in paths:
            image = cv2.imread(path, cv2.IMREAD_COLOR)
            if image is None:
                raise ValueError(f"{path}: not a readable image")
            class_map = predict_image(model, spec, image)
            stem = os.path.join(args.output, os.path.splitext(os.path.basename(path))[0])
            drawn = visualize.overlay(image, class_map, spec.colors, alpha=args.alpha, ignore_label=spec.ignore_label)
            present = visualize.classes_present(class_map, spec.num_classes, ignore_label=spec.ignore_label)
            drawn = visualize.draw_legend(drawn, present, spec.labels, spec.colors)
            cv2.imwrite(stem + "_mask.png", visualize.colorize(class_map, spec.colors, ignore_label=spec.ignore_label))
            cv2.imwrite(stem + "_overlay.png", drawn)
            cv2.imwrite(stem + "_labels.png", class_map)
    except (ValueError, FileNotFoundError, RunError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    print(f"Wrote {3 * len(paths)} files for {len(paths)} images to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
