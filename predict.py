#!/usr/bin/env python
"""Segment a folder of images with a trained model: colourised masks and overlays, in the spec's colours.

    python predict.py --input photos/ --output predictions/               # the newest run under runs/
    python predict.py --run runs/20260101-120000-deeplabv3plus --input photos/ --output predictions/
    python predict.py --model best.keras --spec spec.json --input photos/ --output predictions/
    python predict.py --input photo.jpg --output predictions/           # one image

For each image NAME.ext it writes NAME_mask.png (colours), NAME_overlay.png (mask over the image, the background
class untinted, with a legend of the other classes present: on the image, its text scaled with the image, or on a
panel to its right when the image is too small to hold it) and NAME_labels.png (class ids, 8-bit). The image is
stretched to the spec's input size, as on the device, and the class map is resized back (nearest neighbour).

Every image is decoded before the model loads and before anything is written: if any cannot be read, predict.py
names each one, writes nothing and exits 2 (as for any bad input).
"""
from __future__ import annotations

import argparse
import os
import sys

from edge import console

PROG = "predict.py"
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def parse_args(argv=None) -> argparse.Namespace:
    parser = console.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--run", type=str, metavar="RUN_DIR",
                       help="a training run directory (default: the newest under runs/)")
    model.add_argument("--model", type=str, metavar="FILE", help="a .keras model (spec.json beside it, or --spec)")
    parser.add_argument("--spec", type=str, metavar="FILE", help="the spec of --model")
    parser.add_argument("--input", type=str, required=True, metavar="FOLDER_OR_IMAGE",
                        help="a folder of images, or one image file")
    parser.add_argument("--output", type=str, required=True, metavar="DIR", help="where to write the results")
    parser.add_argument("--which", type=str, choices=("best", "last"), default="best",
                        help="for --run: best.keras or last.keras (default: best)")
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity in [0, 1] (default: 0.5)")
    console.add_log_level(parser)
    args = parser.parse_args(argv)
    if args.spec and not args.model:
        parser.error("--spec goes with --model")
    if not 0.0 <= args.alpha <= 1.0:
        parser.error(f"--alpha: expected a value in [0, 1], got {args.alpha}")
    return args


def list_images(path: str) -> list[str]:
    """The image files of ``path`` (a folder, by extension, sorted; or one image file); each must decode, else
    ValueError naming them all. A missing path is a FileNotFoundError saying which kind was expected."""
    image_file = path.lower().endswith(IMAGE_EXTENSIONS)
    if os.path.isfile(path):
        paths = [path]
    elif os.path.isdir(path):
        paths = [os.path.join(path, n) for n in sorted(os.listdir(path)) if n.lower().endswith(IMAGE_EXTENSIONS)]
        if not paths:
            raise ValueError(f"--input {path}: no images with extensions {IMAGE_EXTENSIONS} in this folder")
    else:
        raise FileNotFoundError(f"--input: no such {'image file' if image_file else 'folder'}: {path}")
    unreadable = [p for p in paths if read_image(p) is None]
    if os.path.isfile(path) and unreadable:
        raise ValueError(f"--input {path}: not an image OpenCV can read ({', '.join(IMAGE_EXTENSIONS)}); nothing "
                         f"was written")
    if unreadable:
        raise ValueError(f"--input {path}: {len(unreadable)} of {len(paths)} images cannot be read: "
                         f"{', '.join(unreadable)}; nothing was written (fix or remove them)")
    return paths


def check_output(path: str) -> None:
    """``--output`` must be a folder or not exist yet (it is made when the results are written)."""
    if os.path.exists(path) and not os.path.isdir(path):
        raise ValueError(f"--output {path}: a file, not a folder; nothing was written")


def read_image(path: str):
    """The BGR image at ``path``, or None if it does not decode."""
    import cv2

    return cv2.imread(path, cv2.IMREAD_COLOR) if os.path.isfile(path) else None


def predict_image(model, spec, image_bgr):
    """Class ids (H, W) uint8 for one BGR image, at the image's own size."""
    import cv2
    import numpy as np

    height, width = spec.input_size
    rgb = cv2.cvtColor(cv2.resize(image_bgr, (width, height), interpolation=cv2.INTER_LINEAR), cv2.COLOR_BGR2RGB)
    logits = model.predict_on_batch(rgb[None].astype(np.float32))[0]
    class_map = np.argmax(logits, axis=-1).astype(np.uint8)
    return cv2.resize(class_map, (image_bgr.shape[1], image_bgr.shape[0]), interpolation=cv2.INTER_NEAREST)


def write_png(path: str, image) -> None:
    import cv2

    from edge.files import write_bytes

    ok, buffer = cv2.imencode(".png", image)
    if not ok:
        raise ValueError(f"{path}: OpenCV could not encode a {image.shape} {image.dtype} image as PNG")
    write_bytes(path, buffer.tobytes())


def write_outputs(stem: str, image, class_map, spec, *, alpha: float) -> None:
    """STEM_mask.png, STEM_overlay.png (with a legend of the classes present) and STEM_labels.png."""
    from edge import visualize

    untinted = visualize.untinted_classes(spec.labels, spec.ignore_label)  # the background keeps the photo's look
    drawn = visualize.overlay(image, class_map, spec.colors, alpha=alpha, untinted=untinted)
    present = [c for c in visualize.classes_present(class_map, spec.num_classes) if c not in untinted]
    write_png(stem + "_mask.png", visualize.colorize(class_map, spec.colors, ignore_label=spec.ignore_label))
    write_png(stem + "_overlay.png", visualize.legend_with_image(drawn, present, spec.labels, spec.colors))
    write_png(stem + "_labels.png", class_map)


def main(argv=None) -> int:
    args = parse_args(argv)
    console.configure(args.log_level)
    try:
        paths = list_images(args.input)  # every input is checked before a model loads
        check_output(args.output)
        from kerasseg.rundir import open_trained, target_or_newest

        trained = open_trained(target_or_newest(args.model or args.run), spec_path=args.spec, which=args.which)
        os.makedirs(args.output, exist_ok=True)
        for path in paths:
            image = read_image(path)
            if image is None:  # it decoded a moment ago
                raise ValueError(f"{path}: no longer a readable image")
            class_map = predict_image(trained.model, trained.spec, image)
            stem = os.path.join(args.output, os.path.splitext(os.path.basename(path))[0])
            write_outputs(stem, image, class_map, trained.spec, alpha=args.alpha)
    except (ValueError, FileNotFoundError) as err:
        console.error(PROG, err)
        return 2
    print(f"Wrote {3 * len(paths)} files for {len(paths)} images to {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
