"""What a command prints: its own lines first, not the native libraries' start-up chatter.

TensorFlow's C++ core, absl and the TFLite converter and interpreter write to the C-level stderr
(file descriptor 2), where Python's logging cannot reach: absl prints everything logged before
``absl::InitializeLog()`` (which TensorFlow never calls) whatever ``TF_CPP_MIN_LOG_LEVEL`` says,
TensorFlow looks for CUDA at start-up and logs a ``failed call to cuInit`` error on a machine that
has no GPU driver, and the MLIR quantizer prints its settings (``fully_quantize: 0, ...``).
:func:`native_output` runs a block with fd 2 sent to a temporary file, then writes back every line
that is not known chatter (:data:`CHATTER`), so a real warning or error still shows, in order. The
held-back lines are kept: ``--log-level DEBUG`` (or ``KERASSEG_LOG_LEVEL=DEBUG``) prints them and
turns the filter off.

Every entry point does the same four things (see ``train.py``)::

    parser = console.ArgumentParser(prog=PROG, ...)  # a bad argument is one line on stderr, exit 2
    console.add_log_level(parser)          # --log-level, defaulting to $KERASSEG_LOG_LEVEL
    console.configure(args.log_level)      # Python logging; DEBUG brings the native lines back
    console.error(PROG, err)               # a bad input found later: the same one line, ``PROG: error: ...``

and code that wakes a native library wraps it in ``with console.native_output():`` (kerasseg's
backend does so around ``import tensorflow``). This module imports nothing beyond the standard library.
"""
from __future__ import annotations

import argparse
import contextlib
import logging
import os
import re
import sys
import tempfile
import threading

ENV = "KERASSEG_LOG_LEVEL"
LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")
DEFAULT_LEVEL = "INFO"

# Lines the native libraries print on every start, in every command, whatever happens next.
CHATTER = (
    re.compile(r"WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"),
    re.compile(r"I\d{4} [\d:.]+ +\d+ [\w.-]+:\d+\] "),  # absl's INFO lines (oneDNN on, CUDA drivers not found)
    re.compile(r"fully_quantize: \d+, inference_type: \d+, input_inference_type: \w+, output_inference_type: \w+"),
    re.compile(r"INFO: "),  # TFLite's INFO lines ("Created TensorFlow Lite XNNPACK delegate for CPU.")
)
# absl says so when the machine has no CUDA driver; only then is TensorFlow's cuInit error no news.
NO_CUDA_DRIVER = re.compile(r"I\d{4} .*cudart_stub\.cc:\d+\] Could not find cuda drivers on your machine")
CUINIT_ERROR = re.compile(r"E\d{4} [\d:.]+ +\d+ cuda_platform\.cc:\d+\] failed call to cuInit: ")

# Python loggers of the libraries underneath, kept at WARNING unless DEBUG.
LIBRARY_LOGGERS = ("tensorflow", "absl", "h5py", "matplotlib", "PIL")

_lock = threading.RLock()
_depth = 0
_held: list[str] = []  # the chatter held back so far, printed by configure("DEBUG")
_no_cuda_driver = False
_configured: str | None = None  # set by configure(); until then the environment decides


def level() -> str:
    """The log level in force: the one :func:`configure` set, else ``$KERASSEG_LOG_LEVEL``, else INFO."""
    value = (_configured or os.environ.get(ENV, DEFAULT_LEVEL)).strip().upper()
    return value if value in LEVELS else DEFAULT_LEVEL


def verbose() -> bool:
    """True at DEBUG: native libraries print as they like."""
    return level() == "DEBUG"


def tensorflow_environment() -> None:
    """Settings TensorFlow reads once, at import: keep its own C++ log to errors unless DEBUG (or the user set it)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose() else "2")


def is_chatter(line: str) -> bool:
    """Whether ``line`` (without its newline) is start-up chatter rather than something the user must see."""
    global _no_cuda_driver
    if NO_CUDA_DRIVER.match(line):
        _no_cuda_driver = True
    if CUINIT_ERROR.match(line):
        return _no_cuda_driver  # on a machine with a driver, a failing cuInit is a real error
    return any(pattern.match(line) for pattern in CHATTER)


@contextlib.contextmanager
def native_output():
    """Run the block with the C-level stderr captured; afterwards write back every line that is not chatter.

    A use inside another (or in another thread meanwhile) shares the outer capture. At DEBUG nothing is
    captured. What the block writes to ``sys.stderr`` is captured too and written back in its place.
    """
    global _depth
    saved = captured = None
    with _lock:
        if not _depth and not verbose():
            try:
                sys.stderr.flush()
                saved = os.dup(2)
            except (OSError, ValueError, AttributeError):  # no usable fd 2 (an embedded interpreter)
                saved = None
            if saved is not None:
                captured = tempfile.TemporaryFile()
                os.dup2(captured.fileno(), 2)
                _depth = 1
    if captured is None:
        yield
        return
    try:
        yield
    finally:
        with _lock:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            _depth = 0
            captured.seek(0)
            text = captured.read().decode("utf-8", "replace")
            captured.close()
            _write_back(text)


def _write_back(text: str) -> None:
    kept = []
    for line in text.splitlines(keepends=True):
        (_held if is_chatter(line.rstrip("\r\n")) else kept).append(line)
    if kept:
        sys.stderr.write("".join(kept))
        sys.stderr.flush()


def held_back() -> list[str]:
    """The chatter lines held back so far (with their newlines)."""
    return list(_held)


def configure(log_level: str | None = None) -> str:
    """Set the log level of this process (``$KERASSEG_LOG_LEVEL`` sets a whole shell's); Python logging follows it.
    Returns the level. At DEBUG the chatter held back so far is printed, and later native output passes unfiltered.
    """
    global _configured
    chosen = (log_level or level()).upper()
    if chosen not in LEVELS:
        raise ValueError(f"log level: expected one of {', '.join(LEVELS)}, got {log_level!r}")
    _configured = chosen
    logging.basicConfig(level=chosen, format="%(asctime)s %(levelname)s %(message)s")
    logging.getLogger().setLevel(chosen)
    for name in LIBRARY_LOGGERS:  # their INFO lines are progress notes for their developers
        library = logging.getLogger(name)
        library.setLevel(chosen if chosen != "INFO" else "WARNING")
        if library.handlers:  # TensorFlow's prints through its own handler: not a second time through ours
            library.propagate = False
    if chosen == "DEBUG" and _held:
        sys.stderr.write("".join(_held))
        sys.stderr.flush()
        _held.clear()
    return chosen


def _level_argument(text: str) -> str:
    value = text.strip().upper()
    if value not in LEVELS:
        raise argparse.ArgumentTypeError(f"expected one of {', '.join(LEVELS)}, got {text!r}"
                                         + (f" (from ${ENV})" if text == os.environ.get(ENV) else ""))
    return value


def add_log_level(parser: argparse.ArgumentParser) -> None:
    """``--log-level``, defaulting to ``$KERASSEG_LOG_LEVEL`` or INFO; DEBUG shows the native libraries' lines."""
    parser.add_argument("--log-level", dest="log_level", type=_level_argument,
                        default=os.environ.get(ENV, DEFAULT_LEVEL), metavar="|".join(LEVELS),
                        help=f"how much to print (default: ${ENV}, else {DEFAULT_LEVEL}); DEBUG also shows "
                             f"TensorFlow's and TFLite's own start-up lines")


def error(prog: str, message) -> None:
    """Report a bad input as every entry point does: one line on stderr, ``PROG: error: MESSAGE``, where PROG is
    what the user typed (``convert.py``, ``python -m edge``). The caller chooses the exit status."""
    text = " ".join(str(message).split("\n"))
    print(f"{prog}: error: {text}", file=sys.stderr, flush=True)


class ArgumentParser(argparse.ArgumentParser):
    """argparse's parser, but a bad argument is one line on stderr (exit 2) instead of the usage and the error,
    in :func:`error`'s form."""

    def error(self, message: str):
        error(self.prog, f"{message} (--help lists the options)")
        self.exit(2)


__all__ = ["CHATTER", "ENV", "LEVELS", "ArgumentParser", "add_log_level", "configure", "error", "held_back",
           "is_chatter", "level", "native_output", "tensorflow_environment", "verbose"]
