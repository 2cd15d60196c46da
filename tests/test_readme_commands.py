"""Every shell command in README.md is classified here, and each class is checked, so the README cannot rot.

- RUN: run for real, in-process through the entry point's ``main(argv)``, in a scratch folder laid out as the
  README's user would have it (PLACEHOLDERS), with SCALE_DOWN flags appended (argparse keeps the last value).
- ELSEWHERE: run for real by another test (named); here its arguments are parsed by the entry point.
- ARGUMENTS_ONLY: needs hardware or another machine; its arguments are parsed by the entry point's parser, and
  for train.py ``main`` runs up to the call that would train, whose configuration must carry every flag.
- BY_CI: ``.ci/run`` runs it verbatim. PIP_INSTALL: the extras it names exist. SYSTEM: not a project command.

A README command that is in none of them fails ``test_every_readme_command_is_classified`` with its text.
"""
import contextlib
import io
import json
import os
import shutil
import tomllib

import cv2
import numpy as np
import pytest
import yaml

from data_helpers import make_folder, make_voc
from edge_helpers import write_video
from readme_helpers import ROOT, entry_point, load_entry_point, parse_arguments, readme_commands, split_commands

QUICK_START = "python train.py --arch deeplabv3plus"
CONVERT_INT8 = "python convert.py --int8"
EXAMPLE_RUN = "runs/20260101-120000-deeplabv3plus"  # the README's name for "the run directory train.py printed"

BY_CI = {"pip install -e '.[train,edge,dev]'", "python -m pytest"}

PIP_INSTALL = {"pip install -e '.[train,edge]'", "pip install -e '.[edge]'"}

SYSTEM = {  # Debian, the Pi's venv and Coral's apt repository: set-up of the machine, not run here
    "sudo apt install python3-venv python3-picamera2",
    "python3 -m venv --system-site-packages ~/seg",
    ". ~/seg/bin/activate",
    "echo 'deb https://packages.cloud.google.com/apt coral-edgetpu-stable main' | sudo tee "
    "/etc/apt/sources.list.d/coral-edgetpu.list",
    "curl https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo apt-key add -",
    "sudo apt-get update",
    "sudo apt-get install libedgetpu1-std",
}

RUN = {
    QUICK_START,
    f"python train.py --resume {EXAMPLE_RUN}",
    f"python evaluate.py {EXAMPLE_RUN} --scales 0.5 0.75 1.0 1.25 1.5 1.75 --flip",
    f"python predict.py --run {EXAMPLE_RUN} --input photos/ --output predictions/",
    CONVERT_INT8,
    "python convert.py --qat",
    f"python -m edge --model {EXAMPLE_RUN}/export/deeplabv3plus_mobilenetv2_int8.tflite --source clip.mp4 "
    "--no-display --max-frames 300",
    f"python -m edge --model {EXAMPLE_RUN}/export/deeplabv3plus_mobilenetv2_int8.tflite --source clip.mp4 "
    "--no-display --serve 127.0.0.1:8080",
    "python train.py --dataset voc:/data/VOCdevkit/VOC2012 --image-size 513 513",
    "python train.py --dataset folder:/data/mydata --image-size 256 256",
    "python train.py --dataset 'folder:/data/mydata?val_fraction=0.1' --seed 3",
    "python train.py --dataset tfds:oxford_iiit_pet --image-size 256 256",
    "python train.py --dataset 'tfds:scene_parse150?data_dir=/data/tfds' --image-size 512 512",
    "python train.py --dataset 'tfds:cityscapes?manual_dir=/data/cityscapes-zips' --image-size 512 1024",
    "python -m kerasseg.data check voc:/data/VOCdevkit/VOC2012",
    "python -m kerasseg.data check folder:/data/mydata --splits val --max-examples 200 --json report.json",
    "python train.py --dataset folder:/data/mydata --check-data",
    "python -m edge --model model.tflite --source clip.mp4 --no-display --record out.mp4 --stats-json stats.jsonl "
    "--max-frames 300",
    "python -m edge.benchmark --model model_int8.tflite --vs model_float.tflite --threads 1 2 4 --runs 100",
    "python -m edge.benchmark --model model_int8_edgetpu.tflite --edgetpu",
}

# Commands RUN expects to fail here, with the status and a phrase their error must hold.
FAILS_HERE = {
    "python -m edge.benchmark --model model_int8_edgetpu.tflite --edgetpu": (1, "libedgetpu"),
}

ELSEWHERE = {  # command -> the test that runs it for real
    "python convert.py --edgetpu": "tests/test_export_cli.py::test_edgetpu_from_the_newest_run",
    "python benchmarks/run.py": "tests/test_e2e_benchmarks.py::test_quick_run_writes_every_goal_with_a_number",
}

_TF_CONFIG = ("TF_CONFIG='{\"cluster\": {\"worker\": [\"host1:12345\", \"host2:12345\"]}, \"task\": "
              "{\"type\": \"worker\", \"index\": %d}}' python train.py --strategy multi_worker --batch-size 64 "
              "--output-dir /shared/runs/voc-x65")
ARGUMENTS_ONLY = {  # command -> why it does not run here
    "python train.py --arch fcn8s --dataset voc:/data/VOCdevkit/VOC2012 --image-size 320 --batch-size 8":
        "FCN-8s writes 2 GB of models per run; tests/test_e2e.py trains it through train.py, and the VOC "
        "command above reads the same dataset",
    "python train.py --arch deeplabv3plus --backbone xception65 --output-stride 16 --optimizer sgd "
    "--learning-rate 0.007": "Xception-65 (41M parameters) takes a minute per step here; "
                             "tests/test_models_build.py builds and runs it",
    "CUDA_VISIBLE_DEVICES=0,1,2,3 python train.py --arch deeplabv3plus --backbone xception65 "
    "--dataset voc:/data/VOC2012 --image-size 512 --batch-size 32 --sync-batch-norm --mixed-precision":
        "four GPUs",
    _TF_CONFIG % 0: "a second machine",
    _TF_CONFIG % 1: "a second machine",
    "TPU_NAME=my-tpu python train.py --strategy tpu --dataset 'tfds:cityscapes?data_dir=gs://bucket/tfds' "
    "--image-size 512 --batch-size 64 --mixed-precision --output-dir runs/cityscapes-tpu": "a Cloud TPU",
    "python -m edge --model model.tflite --source 0 --no-display --serve 8080": "a camera",
    "python -m edge --model model_int8.tflite --source picamera2 --no-display --serve 0.0.0.0:8080 --threads 4":
        "a Raspberry Pi camera",
    "python -m edge --model model_int8_edgetpu.tflite --edgetpu --source 0 --no-display --serve 8080":
        "a Coral Edge TPU and a camera",
    "python benchmarks/run.py --run runs/X": "an idle machine for an hour; the --quick run of "
                                            "tests/test_e2e_benchmarks.py runs the same script",
}

CATEGORIES = {"BY_CI": BY_CI, "PIP_INSTALL": PIP_INSTALL, "SYSTEM": SYSTEM, "RUN": RUN, "ELSEWHERE": ELSEWHERE,
              "ARGUMENTS_ONLY": ARGUMENTS_ONLY}
COMMANDS = {command.text: command for command in readme_commands()}
PYTHON_ENTRY_POINTS = sorted(RUN | set(ELSEWHERE) | set(ARGUMENTS_ONLY))


# ---------------------------------------------------------------------------------------------------------------
# Fast: the classification is complete, and every command's arguments are what its entry point takes.

def test_every_readme_command_is_classified():
    unclassified = [f"README line {c.line}: {text}" for text, c in COMMANDS.items()
                    if not any(text in members for members in CATEGORIES.values())]
    assert not unclassified, ("README commands no test covers; add each to a category in "
                              "tests/test_readme_commands.py:\n" + "\n".join(unclassified))
    twice = [text for text in COMMANDS if sum(text in members for members in CATEGORIES.values()) > 1]
    assert not twice, f"commands in more than one category: {twice}"
    stale = [f"{name}: {text}" for name, members in CATEGORIES.items() for text in members if text not in COMMANDS]
    assert not stale, "classified commands the README no longer has:\n" + "\n".join(stale)


def test_the_parser_reads_continuations_comments_chains_and_environment(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("""text
```bash
A=1 B='x y' python \\
    train.py --seed 3   # a comment && not a command
pip install -e '.[edge]' && python -m pytest -m 'not slow'; echo a | tee b
```
```text
not shell
```
```
python -m edge --help
```
""")
    commands = readme_commands(readme)
    assert [c.text for c in commands] == ["A=1 B='x y' python train.py --seed 3", "pip install -e '.[edge]'",
                                          "python -m pytest -m 'not slow'", "echo a | tee b", "python -m edge --help"]
    assert commands[0].env == (("A", "1"), ("B", "x y")) and commands[0].words == ("python", "train.py", "--seed", "3")
    assert [c.line for c in commands] == [3, 5, 5, 5, 11]


def test_ci_runs_the_readme_test_commands_verbatim():
    # .ci/run may add pip's -q (less output); nothing else may differ.
    ci = [c.text.replace("pip install -q ", "pip install ") for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if not line.lstrip().startswith("#") for c in split_commands(line)]
    for text in BY_CI:
        assert text in ci, f".ci/run does not run the README command {text!r}"


def test_pip_install_names_existing_extras():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for text in PIP_INSTALL | BY_CI:
        words = COMMANDS[text].words
        if words[:2] != ("pip", "install"):
            continue
        assert words[2:4] and words[2] == "-e" and words[3].startswith(".["), text
        named = words[3][2:-1].split(",")
        assert set(named) <= set(extras), f"{text}: no extra {sorted(set(named) - set(extras))} in pyproject.toml"


def test_system_commands_run_no_project_entry_point():
    for text in SYSTEM:
        with pytest.raises(ValueError, match="runs no known entry point"):
            entry_point(COMMANDS[text])


@pytest.mark.parametrize("text", PYTHON_ENTRY_POINTS)
def test_arguments_are_what_the_entry_point_takes(text):
    name, argv = entry_point(COMMANDS[text])
    parse_arguments(name, argv)


@pytest.mark.parametrize("text", sorted(ELSEWHERE))
def test_the_test_that_runs_it_exists_and_passes_its_flags(text):
    path, test = ELSEWHERE[text].split("::")
    source = (ROOT / path).read_text()
    assert f"def {test}(" in source, f"{ELSEWHERE[text]} does not exist"
    body = source.split(f"def {test}(", 1)[1].split("\ndef ", 1)[0]
    _, argv = entry_point(COMMANDS[text])
    script = COMMANDS[text].words[1]
    assert script.rsplit("/", 1)[-1].replace(".py", "") in body, f"{ELSEWHERE[text]} does not run {script}"
    for flag in (word for word in argv if word.startswith("--")):
        assert f'"{flag}"' in body, f"{ELSEWHERE[text]} does not pass {flag}"


class _WouldTrain(Exception):
    pass


@pytest.mark.parametrize("text", sorted(t for t in ARGUMENTS_ONLY if entry_point(COMMANDS[t])[0] == "train.py"))
def test_train_command_resolves_to_a_config_with_its_flags(text, monkeypatch):
    """train.py's main up to the training call: settings merged and validated; the call is replaced here."""
    import kerasseg.training

    command = COMMANDS[text]
    for name, value in command.env:
        monkeypatch.setenv(name, value)
    if "TF_CONFIG" in dict(command.env):
        cluster = json.loads(dict(command.env)["TF_CONFIG"])
        assert 0 <= cluster["task"]["index"] < len(cluster["cluster"]["worker"]), cluster

    captured = {}

    def fake_train(config, **options):
        captured.update(config=config, **options)
        raise _WouldTrain

    monkeypatch.setattr(kerasseg.training, "train", fake_train)
    _, argv = entry_point(command)
    with pytest.raises(_WouldTrain):
        load_entry_point("train.py").main(argv)
    assert_config_has_flags(captured["config"].to_dict(), argv)
    args = parse_arguments("train.py", argv)
    assert captured["output_dir"] == args.output_dir


def assert_config_has_flags(config: dict, argv, *, ignore=()):
    """Each train.py flag given in ``argv`` reached the resolved configuration with its value."""
    from kerasseg.training.config import FIELDS, normalize_image_size

    args = parse_arguments("train.py", argv)
    for key, value in vars(args).items():
        if key in FIELDS and value is not None and key not in ignore:
            if key == "image_size":
                value = list(normalize_image_size(value))
            got = config[key]
            assert (list(got) if isinstance(got, tuple) else got) == value, f"{key}: {argv} gave {value}, got {got}"


# ---------------------------------------------------------------------------------------------------------------
# Slow: the RUN commands, for real.
