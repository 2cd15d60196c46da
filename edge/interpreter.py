"""Choose a TFLite interpreter and, on request, the Edge TPU delegate.

Order of preference: ``ai_edge_litert`` (LiteRT, the maintained wheel),
``tflite_runtime`` (the older Coral-era wheel), then ``tensorflow.lite`` as a
last resort, since importing TensorFlow costs seconds and hundreds of MB.
"""
from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import platform

from edge import console

log = logging.getLogger(__name__)

RUNTIMES = ("ai_edge_litert", "tflite_runtime", "tensorflow")
_MODULES = {
    "ai_edge_litert": "ai_edge_litert.interpreter",
    "tflite_runtime": "tflite_runtime.interpreter",
    "tensorflow": "tensorflow",
}
_INSTALL = {
    "ai_edge_litert": "pip install ai-edge-litert",
    "tflite_runtime": "pip install tflite-runtime",
    "tensorflow": "pip install tensorflow",
}
EDGETPU_LIBRARIES = {"Linux": "libedgetpu.so.1", "Darwin": "libedgetpu.1.dylib", "Windows": "edgetpu.dll"}
EDGETPU_INSTALL = (
    "install the Edge TPU runtime from Coral's apt repository: "
    "echo 'deb https://packages.cloud.google.com/apt coral-edgetpu-stable main' | "
    "sudo tee /etc/apt/sources.list.d/coral-edgetpu.list; "
    "curl https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo apt-key add -; "
    "sudo apt-get update && sudo apt-get install libedgetpu1-std "
    "(see https://coral.ai/docs/accelerator/get-started/ for macOS and Windows)")


class RuntimeNotFound(ImportError):
    """No usable TFLite interpreter package is installed."""


class EdgeTPUError(RuntimeError):
    """The Edge TPU delegate library is missing or found no device."""


class ModelError(ValueError):
    """A file that is not a loadable TFLite model."""


@dataclasses.dataclass
class LoadedInterpreter:
    """An allocated interpreter and how it was made."""

    interpreter: object
    runtime: str
    threads: int | None
    delegate: str | None  # "edgetpu" when the Edge TPU runs it, else None

    def describe(self) -> str:
        device = "Edge TPU" if self.delegate == "edgetpu" else "CPU"
        threads = "default" if self.threads is None else self.threads
        return f"runtime {self.runtime} on {device}, threads {threads}"


def _import_runtime(name: str):
    module = importlib.import_module(_MODULES[name])
    if name == "tensorflow":  # the public API object, not the tensorflow/lite source package
        return module.lite.Interpreter, module.lite.experimental.load_delegate
    return module.Interpreter, module.load_delegate


def resolve_runtime(runtime: str | None = None) -> str:
    """The runtime to use: ``runtime`` if given and importable, else the first importable one."""
    if runtime is not None:
        if runtime not in RUNTIMES:
            raise ValueError(f"runtime: expected one of {RUNTIMES}, got {runtime!r}")
        try:
            _import_runtime(runtime)
        except ImportError as err:
            raise RuntimeNotFound(
                f"runtime {runtime!r} was requested but cannot be imported ({err}); "
                f"install it with: {_INSTALL[runtime]}") from None
        return runtime
    for name in RUNTIMES:
        try:
            _import_runtime(name)
        except ImportError:
            continue
        return name
    raise RuntimeNotFound(
        f"no TFLite interpreter found; tried {', '.join(RUNTIMES)}. "
        f"Install one: {_INSTALL['ai_edge_litert']} (or {_INSTALL['tflite_runtime']} on a Coral set-up)")


def edgetpu_library() -> str:
    """The Edge TPU delegate library name for this operating system."""
    system = platform.system()
    if system not in EDGETPU_LIBRARIES:
        raise EdgeTPUError(f"the Edge TPU runtime has no build for {system!r}; supported: {sorted(EDGETPU_LIBRARIES)}")
    return EDGETPU_LIBRARIES[system]


def load_edgetpu_delegate(load_delegate, *, device: str | None = None):
    """Load ``libedgetpu``; raise :class:`EdgeTPUError` saying whether the library or the device is missing."""
    library = edgetpu_library()
    if not _library_loadable(library):
        raise EdgeTPUError(
            f"the Edge TPU delegate library {library} is not installed (the loader cannot find it); "
            f"{EDGETPU_INSTALL}")
    options = {"device": device} if device else {}
    try:
        return load_delegate(library, options)
    except (ValueError, OSError, RuntimeError) as err:
        # The library is there, so the delegate failed for want of an accelerator.
        raise EdgeTPUError(
            f"{library} is installed but found no Edge TPU device ({err}). Plug in the Coral USB Accelerator "
            f"(a USB 3 port; on Linux your user needs the plugdev group, and re-plug after installing), or check "
            f"the Dev Board's apex driver (ls /dev/apex_0)") from None


def _library_loadable(library: str) -> bool:
    import ctypes
    try:
        ctypes.CDLL(library)
    except OSError:
        return False
    return True


def load_interpreter(model_path: str, *, runtime: str | None = None, threads: int | None = None,
                     edgetpu: bool = False, fallback_cpu: bool = False,
                     fuse_delegate_nodes: bool = True) -> LoadedInterpreter:
    """Make an allocated interpreter for ``model_path``.

    With ``edgetpu`` the Edge TPU delegate is loaded; if it cannot be, an
    :class:`EdgeTPUError` is raised unless ``fallback_cpu``, which logs a
    warning and runs on the CPU. ``fuse_delegate_nodes=False`` (ai_edge_litert
    only) makes each op a delegate takes a node of its own, to see which it took.
    """
    if threads is not None and threads < 1:
        raise ValueError(f"threads: expected a positive integer, got {threads}")
    model_path = os.fspath(model_path)
    if not os.path.isfile(model_path):
        raise ModelError(f"model: no such file {model_path!r}")
    name = resolve_runtime(runtime)
    options = {}
    if not fuse_delegate_nodes:
        if name != "ai_edge_litert":
            raise ValueError(f"fuse_delegate_nodes=False: only ai_edge_litert can turn delegate node fusion off, "
                             f"not {name}")
        options["experimental_disable_delegate_node_fusion"] = True
    Interpreter, load_delegate = _import_runtime(name)
    delegates, delegate_name = [], None
    if edgetpu:
        try:
            delegates = [load_edgetpu_delegate(load_delegate)]
            delegate_name = "edgetpu"
        except EdgeTPUError as err:
            if not fallback_cpu:
                raise
            log.warning("Edge TPU unavailable, running on the CPU (--fallback-cpu): %s", err)
    try:
        with console.native_output():  # the runtime's "INFO: Created TensorFlow Lite XNNPACK delegate" line
            interpreter = Interpreter(model_path=model_path, experimental_delegates=delegates or None,
                                      num_threads=threads, **options)
            interpreter.allocate_tensors()
    except (ValueError, RuntimeError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ModelError(f"model {model_path!r}: {name} cannot load it as a TFLite model: {first}") from None
    return LoadedInterpreter(interpreter=interpreter, runtime=name, threads=threads, delegate=delegate_name)
