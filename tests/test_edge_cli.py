import argparse
import json

import pytest

from edge import cli
from edge_helpers import write_video


def test_labels_from_a_file_or_a_list(tmp_path):
    path = tmp_path / "labels.txt"
    path.write_text("background\nperson\n\ncar\n")
    assert cli._labels(str(path)) == ("background", "person", "car")
    assert cli._labels("a, b,c") == ("a", "b", "c")


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

