"""The command line of the camera loop: parse, build the pieces, run, map the outcome to an exit code.

The loop itself is ``edge.streaming.stream``, the one a program of yours iterates.

Exit codes: 0 the stream ended, --max-frames was reached, or the user quit
(q, Esc, Ctrl-C, SIGTERM); 1 bad input (model, spec, source, display,
runtime); 2 bad arguments (a bad --serve address, a --record or --stats-json
folder that does not exist and a --masks folder that does not exist or is not writable included: checked before the
model loads); 3 the source was lost mid-stream and did not come back within --reconnect-seconds (the recording is
closed and playable).
"""
from __future__ import annotations

import argparse
import glob
import logging
import os
import signal
import socket
import sys
import threading
import time

from edge import console
from edge.interpreter import RUNTIMES

log = logging.getLogger("edge")

PROG = "python -m edge"

EXIT_OK, EXIT_BAD_INPUT, EXIT_USAGE, EXIT_SOURCE_LOST = 0, 1, 2, 3
UPSAMPLE_CHOICES = ("exact", "nearest")  # edge.upsample.Upsample's values (not imported before the arguments parse)


def _floats3(text: str) -> tuple[float, float, float]:
    values = [float(v) for v in text.replace(",", " ").split()]
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected 1 or 3 numbers (R,G,B), got {text!r}")
    return tuple(values)


def _labels(text: str) -> tuple[str, ...]:
    """A labels file (one a line, as ``read_label_file`` reads them) or a comma-separated list."""
    if os.path.isfile(text):
        from edge.artifact import read_label_file
        return _checked(read_label_file, text)
    return tuple(x.strip() for x in text.split(",") if x.strip())


def _checked(check, *args, **kwargs):
    """``check(*args, **kwargs)``, its ValueError turned into argparse's (exit 2, before the model loads)."""
    try:
        return check(*args, **kwargs)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None


def _address(text: str) -> tuple[str, int]:
    """--serve: "PORT" or "HOST:PORT", with a host that resolves."""
    from edge.serve import parse_address

    host, port = _checked(parse_address, text)
    try:
        socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except OSError as err:
        raise argparse.ArgumentTypeError(f"serve: cannot resolve host {host!r} in {text!r} ({err})") from None
    return host, port


def _record_path(text: str) -> str:
    """--record: a known extension and a folder that exists."""
    from edge.sinks import check_record_path

    return _checked(check_record_path, text)


def _stats_path(text: str) -> str:
    from edge.sinks import check_output_folder

    return _checked(check_output_folder, text, what="stats-json")


def _masks_folder(text: str) -> str:
    """--masks: a folder that exists and is writable."""
    from edge.sinks import check_masks_folder

    return _checked(check_masks_folder, text)


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _smooth(text: str) -> float:
    """--smooth: the previous frames' share in [0, 1); 0 is off."""
    value = float(text)
    if not 0.0 <= value < 1.0:
        raise argparse.ArgumentTypeError(f"expected a weight in [0, 1) (0: off), got {text!r}")
    return value


def _seconds(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = console.ArgumentParser(prog=PROG, description=(
        "Live semantic segmentation with a TFLite model on a camera, video, images or a stream."))
    parser.add_argument("--model", required=True, help=(
        "the .tflite model, or a folder: the newest .tflite under it that passed its parity check (e.g. runs, "
        "after convert.py; with --edgetpu the newest *_edgetpu.tflite)"))
    parser.add_argument("--source", required=True, help=(
        "camera index (0), video file, image file/folder/glob, rtsp:// or http:// URL, or picamera2"))
    parser.add_argument("--runtime", choices=RUNTIMES, default=None,
                        help="TFLite interpreter package (default: the first of these that imports)")
    parser.add_argument("--threads", type=int, default=None, help="interpreter threads (default: the runtime's own choice)")
    parser.add_argument("--edgetpu", action="store_true", help="run on the Coral Edge TPU (libedgetpu delegate)")
    parser.add_argument("--fallback-cpu", dest="fallback_cpu", action="store_true",
                        help="with --edgetpu: run on the CPU, with a warning, when no Edge TPU is available")
    parser.add_argument("--no-spec", dest="use_spec", action="store_false",
                        help="ignore the model's spec and derive everything from its tensors")
    parser.add_argument("--mean", type=_floats3, default=None, help="device-side normalisation mean, pixel units")
    parser.add_argument("--std", type=_floats3, default=None, help="device-side normalisation std, pixel units")
    parser.add_argument("--labels", type=_labels, default=None, help="labels file (one per line) or a,b,c")
    parser.add_argument("--alpha", type=float, default=0.5,
                        help="overlay opacity in [0, 1]; the background class stays untinted (default: %(default)s)")
    parser.add_argument("--upsample", choices=UPSAMPLE_CHOICES, default="exact", help=(
        "how a coarse (native head) score map reaches the frame: exact, the classes of the bilinear scores the "
        "full head computes; nearest, the output-resolution classes in blocks, cheaper and coarser "
        "(default: %(default)s)"))
    parser.add_argument("--smooth", type=_smooth, default=None, metavar="WEIGHT", help=(
        "temporal smoothing: each frame's scores are averaged with the previous frames', which keep this share "
        "(0 off; higher is steadier but slower to follow); restarts when the source jumps. Needs a model with "
        "scores: an argmax head runs unsmoothed by default and is refused with --smooth (default: 0.5)"))
    parser.add_argument("--width", type=int, default=None, help="requested camera width")
    parser.add_argument("--height", type=int, default=None, help="requested camera height")
    parser.add_argument("--no-display", dest="display", action="store_false", help="no OpenCV window")
    _add_output_arguments(parser)
    console.add_log_level(parser)
    return parser


def _add_output_arguments(parser: argparse.ArgumentParser) -> None:
    """Where the results go (recording, masks, preview, stats) and when the run stops."""
    parser.add_argument("--record", type=_record_path, default=None,
                        help="write the overlay video to this .mp4/.avi file (its folder must exist)")
    parser.add_argument("--record-fps", dest="record_fps", type=float, default=None,
                        help="frame rate of the recording (default: the source's, else 15)")
    parser.add_argument("--masks", type=_masks_folder, default=None, metavar="DIR", help=(
        "write each processed frame's class map to DIR/NNNNNN.png (the frame's number): an indexed PNG at the "
        "frame's size, pixel value = class id, palette = the spec's colours (DIR must exist)"))
    parser.add_argument("--masks-every", dest="masks_every", type=_positive, default=1, metavar="N",
                        help="with --masks: only every N-th frame's map (frames 0, N, 2N, ...; default: %(default)s)")
    parser.add_argument("--serve", type=_address, default=None, metavar="[HOST:]PORT",
                        help="live preview page with an MJPEG stream (host defaults to 127.0.0.1)")
    parser.add_argument("--linger", type=_seconds, default=None, metavar="SECONDS",
                        help="with --serve: after a video's or image folder's last frame, keep the page up this "
                             "long (default: until Ctrl-C; 0 exits at once)")
    parser.add_argument("--as-fast-as-possible", dest="as_fast_as_possible", action="store_true",
                        help="do not pace a video file: by default it plays at its own frame rate when a window "
                             "or --serve shows it (headless runs are never paced); for benchmarks")
    parser.add_argument("--stats-json", dest="stats_json", type=_stats_path, default=None,
                        help="append one JSON line of stats per second, and a final summary line (FPS, ms per "
                             "stage, cpu_ms_outside_invoke: CPU per frame spent outside the interpreter, "
                             "class_share: each class's mean share of a frame's pixels)")
    parser.add_argument("--max-frames", dest="max_frames", type=int, default=None, help="stop after N frames")
    parser.add_argument("--reconnect-seconds", dest="reconnect_seconds", type=float, default=10.0,
                        help="how long to try reopening a camera or stream that stopped (default: %(default)s)")
    parser.add_argument("--snapshot-dir", dest="snapshot_dir", default=".", help="where the s key saves snapshots (default: the current folder)")
    parser.add_argument("--no-stats-overlay", dest="show_stats", action="store_false",
                        help="do not draw FPS and latency on the frame")


def pace_fps(source, *, watched: bool, as_fast_as_possible: bool) -> float | None:
    """The frame rate to play ``source`` at: a video file's own while a person watches, else None (no pacing)."""
    if not watched or as_fast_as_possible or source.live:
        return None
    return getattr(source, "fps", None)


def _open_display(args: argparse.Namespace, segmenter):
    """The window and preview server the arguments ask for (None for the others)."""
    from edge.serve import PreviewServer
    from edge.sinks import Window

    window = Window("kerasseg") if args.display else None
    server = None
    try:
        if args.serve is not None:
            model = (f"{os.path.basename(args.model)} ({segmenter.input_size[0]}x{segmenter.input_size[1]} "
                     f"{segmenter.input_dtype.name}, {segmenter.spec.num_classes} classes)")
            runtime = segmenter.loaded.describe().removeprefix("runtime ")
            server = PreviewServer(*args.serve, about={"model": model, "runtime": runtime})
            print(f"preview: {server.url}", flush=True)
    except BaseException:
        if window is not None:
            window.close()
        raise
    return window, server


def linger(server, seconds: float | None) -> None:
    """Keep the preview page up after the last frame: for ``seconds``, or until Ctrl-C or SIGTERM when None."""
    done = threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        previous = {sig: signal.signal(sig, lambda *_: done.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    print(f"preview: the video ended; {server.url} stays up "
          + ("until Ctrl-C" if seconds is None else f"for {seconds:g} s (--linger)"), flush=True)
    deadline = None if seconds is None else time.monotonic() + seconds
    try:
        while not done.wait(0.2 if deadline is None else max(0.0, min(0.2, deadline - time.monotonic()))):
            if deadline is not None and time.monotonic() >= deadline:
                break
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def resolve_model(path: str, *, edgetpu: bool) -> str:
    """``path``, or for a folder the newest ``.tflite`` under it that is compiled for the Edge TPU (it uses
    ``edgetpu-custom-op``) with ``edgetpu`` and is not without, leaving out artifacts that failed their parity
    check (``.FAILED.``) and files that are not models; logs the one it picked. Files are read newest first, up
    to the one it picks."""
    if not os.path.isdir(path):
        return path
    from edge.artifact import FlatbufferError, custom_ops

    candidates = [p for p in glob.glob(os.path.join(path, "**", "*.tflite"), recursive=True)
                  if ".FAILED." not in os.path.basename(p)]
    for candidate in sorted(candidates, key=os.path.getmtime, reverse=True):
        try:
            compiled = "edgetpu-custom-op" in custom_ops(candidate)
        except (OSError, FlatbufferError) as err:
            log.debug("model: skipping %s (%s)", candidate, err)
            continue
        if compiled == edgetpu:
            log.info("model: the newest under %s: %s", path, candidate)
            return candidate
    from edge.interpreter import ModelError
    kind = "Edge TPU-compiled .tflite (from edgetpu_compiler)" if edgetpu else ".tflite"
    raise ModelError(f"model: no {kind} file under the folder {path!r} (convert a run with convert.py first)")


def _smoothing_note(segmenter, smoother) -> str:
    from edge.segmenter import CLASS_IDS

    if smoother is not None:
        return f"each frame's scores averaged with the previous frames' (weight {smoother.weight:g}; --smooth 0: off)"
    if segmenter.kind == CLASS_IDS:
        return ("off: the model outputs class ids (an argmax head), which cannot be averaged; a head with scores "
                "(convert.py --head native) can be smoothed")
    return "off (--smooth 0)"


def run(args: argparse.Namespace) -> int:
    """Build segmenter, source and display from parsed arguments and run the loop (``stream``); the exit code."""
    from edge.segmenter import Segmenter
    from edge.sources import open_source
    from edge.streaming import stream

    segmenter = Segmenter.from_file(args.model, runtime=args.runtime, threads=args.threads, edgetpu=args.edgetpu,
                                    fallback_cpu=args.fallback_cpu, use_spec=args.use_spec, mean=args.mean,
                                    std=args.std, labels=args.labels, upsample=args.upsample)
    print(f"interpreter: {segmenter.loaded.describe()}", flush=True)
    log.info("%s", segmenter.describe())
    source = open_source(args.source, width=args.width, height=args.height)
    window = server = None
    try:
        window, server = _open_display(args, segmenter)
        fps = pace_fps(source, watched=window is not None or server is not None,
                       as_fast_as_possible=args.as_fast_as_possible)
        if fps is not None:
            log.info("playing %s at its own %.3g FPS (--as-fast-as-possible to not wait)", source.name, fps)
        frames = stream(segmenter, source, smooth=args.smooth, alpha=args.alpha, max_frames=args.max_frames,
                        record=args.record, record_fps=args.record_fps, masks=args.masks,
                        masks_every=args.masks_every, stats_json=args.stats_json, window=window, server=server,
                        show_stats=args.show_stats, pace_fps=fps, reconnect_seconds=args.reconnect_seconds,
                        snapshot_dir=args.snapshot_dir, handle_signals=True)
        log.info("smoothing: %s", _smoothing_note(segmenter, frames.loop.smoother))
        for _ in frames:
            pass
        result = frames.outcome
        if server is not None and result.reason == "end_of_stream" and args.linger != 0:
            linger(server, args.linger)
    finally:
        source.close()
        for sink in (server, window):
            if sink is not None:
                sink.close()
    log.info("stopped (%s) after %d frames, %.1f FPS", result.reason, result.frames, result.stats["fps"])
    if args.record:
        log.info("recorded %d frames to %s", result.stats["recorded_frames"], args.record)
    if args.masks:
        log.info("wrote %d masks to %s", result.stats["masks_written"], args.masks)
    return EXIT_SOURCE_LOST if result.reason == "source_lost" else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.linger is not None and args.serve is None:
        parser.error("--linger keeps the --serve page up; it needs --serve")
    if args.masks_every != 1 and args.masks is None:
        parser.error("--masks-every picks the frames --masks writes; it needs --masks")
    console.configure(args.log_level)
    from edge.interpreter import EdgeTPUError, ModelError, RuntimeNotFound
    from edge.sinks import DisplayError
    from edge.sources import SourceError
    from edge.artifact import FlatbufferError, SpecError
    from edge.smoothing import SmoothingError
    try:
        args.model = resolve_model(args.model, edgetpu=args.edgetpu)
        return run(args)
    except SmoothingError as err:
        console.error(PROG, err)
        return EXIT_USAGE
    except EdgeTPUError as err:
        console.error(PROG, f"{err}; or run with --fallback-cpu to use the CPU instead")
        return EXIT_BAD_INPUT
    except (ModelError, FlatbufferError, SpecError, SourceError, RuntimeNotFound,
            DisplayError, ValueError, OSError) as err:
        console.error(PROG, err)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
