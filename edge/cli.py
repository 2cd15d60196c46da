"""The command line of the camera loop: parse, build the pieces, run, map the outcome to an exit code.

Exit codes: 0 the stream ended, --max-frames was reached, or the user quit
(q, Esc, Ctrl-C, SIGTERM); 1 bad input (model, spec, source, display,
runtime); 2 bad arguments; 3 the source was lost mid-stream and did not come
back within --reconnect-seconds (the recording is closed and playable).
"""
from __future__ import annotations

import argparse
import logging
import os
import sys

from edge.interpreter import RUNTIMES

log = logging.getLogger("edge")

EXIT_OK, EXIT_BAD_INPUT, EXIT_USAGE, EXIT_SOURCE_LOST = 0, 1, 2, 3


def _floats3(text: str) -> tuple[float, float, float]:
    values = [float(v) for v in text.replace(",", " ").split()]
    if len(values) == 1:
        values *= 3
    if len(values) != 3:
        raise argparse.ArgumentTypeError(f"expected 1 or 3 numbers (R,G,B), got {text!r}")
    return tuple(values)


def _labels(text: str) -> tuple[str, ...]:
    """A labels file (one per line) or a comma-separated list."""
    if os.path.isfile(text):
        with open(text, encoding="utf-8") as f:
            return tuple(line.strip() for line in f if line.strip())
    return tuple(x.strip() for x in text.split(",") if x.strip())


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m edge", description=(
        "Live semantic segmentation with a TFLite model on a camera, video, images or a stream."))
    parser.add_argument("--model", required=True, help="the .tflite model")
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
    parser.add_argument("--alpha", type=float, default=0.5, help="overlay opacity in [0, 1] (default: %(default)s)")
    parser.add_argument("--width", type=int, default=None, help="requested camera width")
    parser.add_argument("--height", type=int, default=None, help="requested camera height")
    parser.add_argument("--no-display", dest="display", action="store_false", help="no OpenCV window")
    parser.add_argument("--record", default=None, help="write the overlay video to this .mp4/.avi file")
    parser.add_argument("--record-fps", dest="record_fps", type=float, default=None,
                        help="frame rate of the recording (default: the source's, else 15)")
    parser.add_argument("--serve", default=None, metavar="[HOST:]PORT",
                        help="live preview page with an MJPEG stream (host defaults to 127.0.0.1)")
    parser.add_argument("--stats-json", dest="stats_json", default=None,
                        help="append one JSON line of stats per second, and a final summary line (FPS, ms per "
                             "stage, cpu_ms_outside_invoke: CPU per frame spent outside the interpreter)")
    parser.add_argument("--max-frames", dest="max_frames", type=int, default=None, help="stop after N frames")
    parser.add_argument("--reconnect-seconds", dest="reconnect_seconds", type=float, default=10.0,
                        help="how long to try reopening a camera or stream that stopped (default: %(default)s)")
    parser.add_argument("--snapshot-dir", dest="snapshot_dir", default=".", help="where the s key saves snapshots (default: the current folder)")
    parser.add_argument("--no-stats-overlay", dest="show_stats", action="store_false",
                        help="do not draw FPS and latency on the frame")
    parser.add_argument("--log-level", dest="log_level", default="INFO",
                        choices=("DEBUG", "INFO", "WARNING", "ERROR"))
    return parser


def run(args: argparse.Namespace) -> int:
    """Build segmenter, source and sinks from parsed arguments and run the loop; returns the exit code."""
    from edge.loop import Loop, Recorder, Window
    from edge.segmenter import Segmenter
    from edge.serve import PreviewServer, parse_address
    from edge.sources import open_source

    segmenter = Segmenter.from_file(args.model, runtime=args.runtime, threads=args.threads, edgetpu=args.edgetpu,
                                    fallback_cpu=args.fallback_cpu, use_spec=args.use_spec, mean=args.mean,
                                    std=args.std, labels=args.labels)
    print(f"interpreter: {segmenter.loaded.describe()}", flush=True)
    log.info("%s", segmenter.describe())
    source = open_source(args.source, width=args.width, height=args.height)
    window = server = recorder = None
    try:
        window = Window("kerasseg") if args.display else None
        if args.serve is not None:
            host, port = parse_address(args.serve)
            server = PreviewServer(host, port)
            print(f"preview: {server.url}", flush=True)
        if args.record:
            recorder = Recorder(args.record, fps=args.record_fps or getattr(source, "fps", None) or 15.0)
        if args.stats_json and os.path.exists(args.stats_json):
            os.remove(args.stats_json)
        loop = Loop(segmenter, source, alpha=args.alpha, max_frames=args.max_frames, window=window,
                    recorder=recorder, server=server, stats_json=args.stats_json,
                    reconnect_seconds=args.reconnect_seconds, snapshot_dir=args.snapshot_dir,
                    show_stats=args.show_stats)
        result = loop.run()
    finally:
        source.close()
        if server is not None:
            server.close()
        if window is not None:
            window.close()
    log.info("stopped (%s) after %d frames, %.1f FPS", result.reason, result.frames, result.stats["fps"])
    if recorder is not None:
        log.info("recorded %d frames to %s", recorder.frames, args.record)
    return EXIT_SOURCE_LOST if result.reason == "source_lost" else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level, format="%(asctime)s %(levelname)s %(message)s")
    from edge.interpreter import EdgeTPUError, ModelError, RuntimeNotFound
    from edge.loop import DisplayError
    from kerasseg.artifact import FlatbufferError
    from edge.sources import SourceError
    from kerasseg.artifact import SpecError
    try:
        return run(args)
    except (ModelError, FlatbufferError, SpecError, SourceError, EdgeTPUError, RuntimeNotFound,
            DisplayError, ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
