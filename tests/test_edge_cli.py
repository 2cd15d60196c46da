import argparse
import json
import time

import numpy as np
import pytest

from edge import cli
from edge.interpreter import ModelError
from edge_helpers import write_video


def test_labels_from_a_file_or_a_list(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("\nbackground\nperson\ncar\n\nThe names end at the first blank line after them.\n")
    assert cli._labels(str(path)) == ("background", "person", "car")
    (tmp_path / "empty.txt").write_text("\n\n")
    with pytest.raises(argparse.ArgumentTypeError, match="empty.txt: no class names"):
        cli._labels(str(tmp_path / "empty.txt"))
    assert cli._labels("a, b,c") == ("a", "b", "c")


def test_a_model_folder_resolves_to_its_newest_passing_model_compiled_or_not_as_asked(tiny_models, tmp_path,
                                                                                     monkeypatch):
    import os
    import shutil

    import edge.artifact

    def place(name: str, age: int) -> str:
        path = tmp_path / "export" / name
        path.parent.mkdir(exist_ok=True)
        shutil.copy(tiny_models.float32, path)
        os.utime(path, (time.time() - age, time.time() - age))
        return str(path)

    cpu = place("m_edgetpu.tflite", 30)  # convert.py's uncompiled Edge TPU model runs on the CPU
    compiled = place("m_edgetpu_edgetpu.tflite", 20)
    place("m_int8.FAILED.tflite", 0)
    (tmp_path / "export" / "junk.tflite").write_bytes(b"not a model")
    real = edge.artifact.custom_ops
    # edgetpu_compiler is not here: the compiled copy reports the op that the compiler puts in.
    monkeypatch.setattr(edge.artifact, "custom_ops",
                        lambda p: ["edgetpu-custom-op"] if str(p) == compiled else real(p))
    assert cli.resolve_model(str(tmp_path), edgetpu=False) == cpu
    assert cli.resolve_model(str(tmp_path), edgetpu=True) == compiled
    os.remove(compiled)
    with pytest.raises(ModelError, match="no Edge TPU-compiled .tflite .from edgetpu_compiler. file under the folder"):
        cli.resolve_model(str(tmp_path), edgetpu=True)
    assert cli.resolve_model(cpu, edgetpu=True) == cpu  # a file is taken as named


def test_mean_std_take_one_or_three_numbers():
    assert cli._floats3("127.5") == (127.5, 127.5, 127.5)
    assert cli._floats3("1,2,3") == (1.0, 2.0, 3.0)
    with pytest.raises(argparse.ArgumentTypeError, match="1 or 3 numbers"):
        cli._floats3("1,2")


def test_parser_choices_and_defaults():
    args = cli.build_parser().parse_args(["--model", "m.tflite", "--source", "0"])
    assert args.display is True and args.runtime is None and args.reconnect_seconds == 10.0
    assert args.use_spec is True and args.alpha == 0.5
    with pytest.raises(SystemExit) as info:
        cli.build_parser().parse_args(["--model", "m", "--source", "0", "--runtime", "onnx"])
    assert info.value.code == 2


def test_spec_less_float_model_from_the_command_line(tiny_models, tmp_path, capsys):
    video = write_video(str(tmp_path / "v.avi"), frames=3)
    stats = tmp_path / "s.jsonl"
    code = cli.main(["--model", tiny_models.float32, "--source", video, "--no-display", "--mean", "0",
                     "--std", "1", "--labels", "r,g,b", "--stats-json", str(stats), "--log-level", "WARNING"])
    assert code == 0
    assert "interpreter: runtime ai_edge_litert" in capsys.readouterr().out
    assert json.loads(stats.read_text().splitlines()[-1])["frames"] == 3
    code = cli.main(["--model", tiny_models.float32, "--source", video, "--no-display", "--labels", "r,g"])
    assert code == 1 and "3 classes, got 2 labels" in capsys.readouterr().err



def run_main(argv):
    """``cli.main(argv)``: its exit code, argparse's SystemExit included."""
    try:
        return cli.main(argv)
    except SystemExit as stop:
        return stop.code


def final_stats(path):
    return json.loads(path.read_text().splitlines()[-1])


@pytest.mark.parametrize("address,needle", [
    ("8765x", "serve: expected PORT or HOST:PORT, got '8765x'"),
    ("127.0.0.1:70000", "serve: port must be 0..65535, got 70000"),
    ("no-such-host.invalid:8080", "serve: cannot resolve host 'no-such-host.invalid'"),
])
def test_a_bad_serve_address_exits_2_before_the_model_loads(tiny_models, tmp_path, capsys, address, needle):
    video = write_video(str(tmp_path / "v.avi"), frames=2)
    code = run_main(["--model", tiny_models.uint8, "--source", video, "--no-display", "--serve", address,
                     "--stats-json", str(tmp_path / "s.jsonl")])
    out = capsys.readouterr()
    assert code == 2 and needle in out.err
    assert "interpreter:" not in out.out  # the model was never loaded
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.avi"]


@pytest.mark.parametrize("flag,name,needle", [
    ("--record", "no/such/dir/out.mp4", "record: the folder '{tmp}/no/such/dir' does not exist"),
    ("--record", "out.xyz", "record: unsupported extension '.xyz'"),
    ("--stats-json", "gone/stats.jsonl", "stats-json: the folder '{tmp}/gone' does not exist"),
])
def test_an_output_that_cannot_be_written_exits_2_naming_why(tiny_models, tmp_path, capsys, flag, name, needle):
    video = write_video(str(tmp_path / "v.avi"), frames=2)
    code = run_main(["--model", tiny_models.uint8, "--source", video, "--no-display", flag, str(tmp_path / name)])
    out = capsys.readouterr()
    assert code == 2 and needle.format(tmp=tmp_path) in out.err, out.err
    assert "codec" not in out.err and "interpreter:" not in out.out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["v.avi"]


def test_fallback_cpu_warns_without_suggesting_itself(tiny_models, tmp_path, capsys, caplog):
    video = write_video(str(tmp_path / "v.avi"), frames=2)
    stats = tmp_path / "s.jsonl"
    code = run_main(["--model", tiny_models.uint8, "--source", video, "--no-display", "--edgetpu", "--fallback-cpu",
                     "--stats-json", str(stats)])
    assert code == 0 and final_stats(stats)["frames"] == 2
    assert "on CPU" in capsys.readouterr().out
    assert "Edge TPU unavailable, running on the CPU" in caplog.text and "libedgetpu.so.1" in caplog.text
    assert "or run with --fallback-cpu" not in caplog.text
    stats.unlink()
    code = run_main(["--model", tiny_models.uint8, "--source", video, "--no-display", "--edgetpu",
                     "--stats-json", str(stats)])
    err = capsys.readouterr().err
    assert code == 1 and "libedgetpu.so.1" in err and "or run with --fallback-cpu to use the CPU instead" in err
    assert not stats.exists()


class ScriptedWindow:
    """Stands in for the OpenCV window (headless OpenCV has none): shows frames, no key pressed."""

    def __init__(self, title):
        self.shown = 0

    def show(self, frame):
        self.shown += 1

    def poll(self, wait_ms=1):
        return 255

    def close(self):
        pass


def test_a_watched_video_plays_at_its_own_frame_rate(tiny_models, tmp_path, monkeypatch):
    from edge import sinks

    video = write_video(str(tmp_path / "v.avi"), frames=8, fps=8.0)  # 1 s at its own rate
    stats = tmp_path / "s.jsonl"
    base = ["--model", tiny_models.uint8, "--source", video, "--stats-json", str(stats)]
    start = time.monotonic()
    assert run_main(base + ["--no-display", "--serve", "127.0.0.1:0", "--linger", "0"]) == 0
    took, final = time.monotonic() - start, final_stats(stats)
    assert final["pace_fps"] == 8.0 and final["frames"] == 8
    assert took >= 0.85 and final["elapsed_s"] >= 0.85  # frame 8 is due 7 / 8 s after frame 1
    monkeypatch.setattr(sinks, "Window", ScriptedWindow)  # a window paces it too
    assert run_main(base + ["--max-frames", "4"]) == 0
    final = final_stats(stats)
    assert final["pace_fps"] == 8.0 and final["frames"] == 4 and final["elapsed_s"] >= 0.35
    for flags in (["--as-fast-as-possible"], ["--no-display"]):  # asked for, or nobody watches: not paced
        assert run_main(base + flags) == 0
        assert final_stats(stats)["pace_fps"] is None and final_stats(stats)["frames"] == 8


def test_linger_needs_serve_and_keeps_the_page_up_for_that_long(tiny_models, tmp_path, capsys):
    video = write_video(str(tmp_path / "v.avi"), frames=3, fps=30.0)
    base = ["--model", tiny_models.uint8, "--source", video]
    assert run_main(base + ["--no-display", "--linger", "1"]) == 2
    assert "--linger keeps the --serve page up; it needs --serve" in capsys.readouterr().err
    start = time.monotonic()
    assert run_main(base + ["--no-display", "--serve", "127.0.0.1:0", "--linger", "1"]) == 0
    assert time.monotonic() - start >= 1.0
    assert "stays up for 1 s (--linger)" in capsys.readouterr().out
    assert run_main(base + ["--no-display", "--serve", "127.0.0.1:0", "--max-frames", "2"]) == 0  # an asked-for stop


def test_a_short_recording_shows_a_running_fps_from_the_first_frame(tiny_models, tmp_path, monkeypatch):
    from edge import visualize
    from edge_helpers import read_video

    drawn, render = [], visualize.render

    def spy(*args, **kwargs):
        image = render(*args, **kwargs)
        drawn.append((args, kwargs, image))
        return image

    monkeypatch.setattr(visualize, "render", spy)
    video = write_video(str(tmp_path / "v.avi"), frames=6, height=240, width=320)
    record = tmp_path / "out.avi"
    assert run_main(["--model", tiny_models.uint8, "--source", video, "--no-display", "--record", str(record)]) == 0
    assert len(drawn) == 6 and all(kwargs["fps"] > 0 for _, kwargs, _ in drawn)
    recorded = read_video(record)
    assert len(recorded) == 6
    # On disk: each frame's stats panel is the one drawn with the estimate, not the one "FPS 0.0" would draw.
    for (args, kwargs, image), frame in zip(drawn, recorded):
        zero = render(*args, **{**kwargs, "fps": 0.0})
        panel = (slice(0, 30), slice(0, 120))
        assert np.abs(frame[panel].astype(int) - image[panel]).mean() < np.abs(frame[panel].astype(int) - zero[panel]).mean()
