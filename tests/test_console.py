"""edge.console: native start-up chatter held back (and shown at DEBUG), real lines kept, one-line argument errors."""
import logging
import os

import pytest

from edge import console

ABSL_PREAMBLE = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
ONEDNN = ("I0000 00:00:1796397031.252305    5718 port.cc:153] oneDNN custom operations are on. You may see slightly "
          "different numerical results")
NO_DRIVER = ("I0000 00:00:1796397031.252688    5718 cudart_stub.cc:31] Could not find cuda drivers on your machine, "
             "GPU will not be used.")
CUINIT = ("E0000 00:00:1796397033.587138    5718 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
          "Failed call to cuInit: UNKNOWN ERROR (303)")
QUANTIZER = "fully_quantize: 0, inference_type: 6, input_inference_type: UINT8, output_inference_type: FLOAT32"
XNNPACK = "INFO: Created TensorFlow Lite XNNPACK delegate for CPU."


@pytest.fixture
def fresh(monkeypatch):
    """The module's state and level as in a new process; the logging that ``configure`` sets is restored after."""
    monkeypatch.delenv(console.ENV, raising=False)
    monkeypatch.setattr(console, "_held", [])
    monkeypatch.setattr(console, "_no_cuda_driver", False)
    monkeypatch.setattr(console, "_configured", None)
    loggers = [logging.getLogger(), *map(logging.getLogger, console.LIBRARY_LOGGERS)]
    saved = [(logger, logger.level, logger.propagate, list(logger.handlers)) for logger in loggers]
    yield
    for logger, level, propagate, handlers in saved:
        logger.setLevel(level)
        logger.propagate = propagate
        logger.handlers[:] = handlers


def test_chatter_and_real_lines(fresh):
    for line in (ABSL_PREAMBLE, ONEDNN, QUANTIZER, XNNPACK):
        assert console.is_chatter(line), line
    for line in ("error: no such file", "W0000 00:00:1.0 1 foo.cc:1] something odd", "Traceback (most recent call last):",
                 "WARNING: a real TFLite warning", "E0000 00:00:1.0 1 kernel.cc:9] op failed"):
        assert not console.is_chatter(line), line


def test_cuinit_failure_is_chatter_only_where_absl_said_there_is_no_driver(fresh):
    assert not console.is_chatter(CUINIT)  # a machine with a driver whose cuInit fails: a real error
    assert console.is_chatter(NO_DRIVER)
    assert console.is_chatter(CUINIT)


def test_native_output_holds_back_chatter_and_writes_back_the_rest_in_order(fresh, capfd):
    with console.native_output():
        os.write(2, f"{ABSL_PREAMBLE}\n{ONEDNN}\nW0000 00:00:1.0 1 x.cc:3] a real warning\n{QUANTIZER}\n".encode())
        os.write(2, b"a real error\n")
        with console.native_output():  # nested: shares the outer capture
            os.write(2, f"{XNNPACK}\n".encode())
    err = capfd.readouterr().err
    assert err == "W0000 00:00:1.0 1 x.cc:3] a real warning\na real error\n"
    assert console.held_back() == [f"{line}\n" for line in (ABSL_PREAMBLE, ONEDNN, QUANTIZER, XNNPACK)]
    # After the block, fd 2 is the real stderr again.
    os.write(2, b"after\n")
    assert capfd.readouterr().err == "after\n"


def test_native_output_writes_back_when_the_block_raises(fresh, capfd):
    with pytest.raises(RuntimeError):
        with console.native_output():
            os.write(2, b"what went wrong natively\n")
            raise RuntimeError("boom")
    assert capfd.readouterr().err == "what went wrong natively\n"


def test_debug_prints_what_was_held_back_and_then_lets_everything_through(fresh, capfd):
    with console.native_output():
        os.write(2, f"{ONEDNN}\n".encode())
    assert capfd.readouterr().err == ""
    assert console.configure("DEBUG") == "DEBUG" and console.verbose() and console.ENV not in os.environ
    assert capfd.readouterr().err == f"{ONEDNN}\n"
    with console.native_output():
        os.write(2, f"{XNNPACK}\n".encode())
    assert capfd.readouterr().err == f"{XNNPACK}\n"
    console.configure("INFO")


def test_log_level_flag_defaults_to_the_environment_and_argument_errors_are_one_line(fresh, monkeypatch, capsys):
    parser = console.ArgumentParser(prog="prog")
    parser.add_argument("--count", type=int, required=True)
    console.add_log_level(parser)
    assert parser.parse_args(["--count", "1"]).log_level == "INFO"
    monkeypatch.setenv(console.ENV, "debug")
    assert console.ArgumentParser.parse_args(parser, ["--count", "1"]).log_level == "INFO"  # read when added
    parser = console.ArgumentParser(prog="prog")
    console.add_log_level(parser)
    assert parser.parse_args([]).log_level == "DEBUG"
    monkeypatch.setenv(console.ENV, "LOUD")
    parser = console.ArgumentParser(prog="prog")
    console.add_log_level(parser)
    with pytest.raises(SystemExit) as exit_:
        parser.parse_args([])
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and err.count("\n") == 1 and "LOUD" in err and console.ENV in err
