"""Every command in README.md is classified here, and each class is checked, so the README cannot rot.

The commands are those of the fenced shell blocks and the inline ones in the prose (`python train.py --help`).

- RUN: run for real, in-process through the entry point's ``main(argv)``, with SCALE_DOWN flags appended (argparse
  keeps the last value). The commands of each section (a level-2 heading) run in the order written, in one folder,
  as a user walks the README: what an earlier command wrote is what a later one reads, and only what no command of
  the section makes is laid out beforehand, as the README's user would have it (PLACEHOLDERS).
- ELSEWHERE: run for real by another test (named); here its arguments are parsed by the entry point. In a section's
  walk, one whose output a later command reads is stood in for by a copy of what that test's fixture wrote with
  the same arguments (STAND_INS).
- ARGUMENTS_ONLY: needs hardware or another machine; its arguments are parsed by the entry point's parser, and
  for train.py ``main`` runs up to the call that would train, whose configuration must carry every flag.
- BY_CI: ``.ci/run`` runs it verbatim. PIP_INSTALL: what it installs is declared in pyproject.toml.
  PYTEST_SELECTIONS: the markers exist. NAMES_ONLY: the program exists. SYSTEM: not a project command, not run.

A README command that is in none of them fails ``test_every_readme_command_is_classified`` with its text.
"""
import contextlib
import dataclasses
import importlib
import io
import json
import os
import pathlib
import re
import shutil
import tomllib

import cv2
import numpy as np
import pytest
import yaml
from ai_edge_litert.interpreter import Interpreter

from data_helpers import make_folder, make_voc
from edge_helpers import write_video
from readme_helpers import (ENTRY_POINTS, README, ROOT, code_blocks, entry_point, file_tables, help_flags,
                            load_entry_point, parse_arguments, readme_commands, sections, split_commands)
from shared_helpers import copy_run

QUICK_START = "python train.py --arch deeplabv3plus"
CONVERT_INT8 = "python convert.py --int8"
CONVERT_HEADS = "python convert.py --int8 --head full-argmax full"
EXAMPLE_RUN = "runs/20260101-120000-deeplabv3plus"  # where a README command that takes the newest run finds one
SAMPLE_CLIP = "python -m kerasseg.data clip --output clip.mp4 --stills samples/"
RESUME = "python train.py --resume"
IMPORT_OFFLINE = ("python -m kerasseg import tests/data/deeplabv3_mnv2_dm05_pascal_quant.tflite "
                  "--output runs/voc-dm05")
CONVERT_IMPORTED = "python convert.py --run runs/voc-dm05 --int8 --dataset images:tests/data/"
IMPORTED_INT8 = "runs/voc-dm05/export/deeplabv3plus_mobilenetv2_int8.tflite"

BY_CI = {"pip install -e '.[train,edge,dev]'", "python -m pytest"}

PIP_INSTALL = {"pip install -e '.[train,edge]'", "pip install -e '.[edge]'", "pip install pydensecrf2",
               "pip install 'numpy<2'", "pip install ai-edge-litert"}

PYTEST_SELECTIONS = {"python -m pytest -m 'not slow'"}  # the markers it names are declared

# Programs named in a sentence; their command lines are in code blocks.
NAMES_ONLY = {"python -m edge.benchmark", "python -m edge", "python -m kerasseg import"}

SYSTEM = {  # Debian, the Pi's venv and Coral's apt repository: set-up of the machine, not run here
    "sudo apt install python3-venv python3-picamera2",
    "python3 -m venv --system-site-packages ~/seg",
    ". ~/seg/bin/activate",
    "echo 'deb https://packages.cloud.google.com/apt coral-edgetpu-stable main' | sudo tee "
    "/etc/apt/sources.list.d/coral-edgetpu.list",
    "curl https://packages.cloud.google.com/apt/doc/apt-key.gpg | sudo apt-key add -",
    "sudo apt-get update",
    "sudo apt-get install libedgetpu1-std",
    "apt-get install chromium",
    "apt-get install edgetpu-compiler",
    "edgetpu_compiler",
    "edgetpu_compiler -s",
    "tensorboard --logdir runs",
    "wget https://github.com/google-coral/test_data/raw/master/deeplabv3_mnv2_dm05_pascal_quant.tflite",
    "wget http://download.tensorflow.org/models/deeplabv3_mnv2_pascal_trainval_2018_01_29.tar.gz",
    "wget https://github.com/google-coral/test_data/raw/master/deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite",
}

RUN = {
    QUICK_START,
    "python train.py --help",
    "python -m kerasseg.models",
    RESUME,
    "python evaluate.py --scales 0.5 0.75 1.0 1.25 1.5 1.75 --flip",
    SAMPLE_CLIP,
    "python predict.py --input samples/ --output predictions/",
    CONVERT_INT8,
    "python convert.py --qat",
    CONVERT_HEADS,
    "python -m edge --model runs --source clip.mp4 --no-display --max-frames 300",
    "python -m edge --model runs --source clip.mp4 --no-display --serve 127.0.0.1:8080",
    "python train.py --dataset voc:/data/VOCdevkit/VOC2012 --image-size 513 513",
    "python train.py --dataset folder:/data/mydata --image-size 256 256",
    "python train.py --dataset 'folder:/data/mydata?val_fraction=0.1' --seed 3",
    "python train.py --dataset tfds:oxford_iiit_pet --image-size 256 256",
    "python train.py --dataset 'tfds:scene_parse150?data_dir=/data/tfds' --image-size 512 512",
    "python train.py --dataset 'tfds:cityscapes?manual_dir=/data/cityscapes-zips' --image-size 512 1024",
    "python -m kerasseg.data check voc:/data/VOCdevkit/VOC2012",
    "python -m kerasseg.data check folder:/data/mydata --splits val --max-examples 200 --json report.json",
    "python train.py --dataset folder:/data/mydata --check-data",
    "python -m edge --model runs --source clip.mp4 --no-display --record out.mp4 --stats-json stats.jsonl "
    "--max-frames 300",
    "python -m edge.benchmark --model model_int8.tflite --vs model_float.tflite --threads 1 2 4 --runs 100",
    "python -m edge.benchmark --model model_int8_edgetpu.tflite --edgetpu",
    # Start from a trained model, offline: the import and its conversion are STAND_INS.
    "python predict.py --run runs/voc-dm05 --input tests/data/ --output predictions/",
    f"python -m edge --model {IMPORTED_INT8} --source tests/data/ --no-display",
}

# Commands RUN expects to fail here, with the status and a phrase their error must hold.
FAILS_HERE = {
    "python -m edge.benchmark --model model_int8_edgetpu.tflite --edgetpu": (1, "libedgetpu"),
}

_LAYOUTS_TEST = ("tests/test_data_layouts.py::"
                 "test_each_layout_trains_through_train_py_and_its_spec_carries_names_and_colours")
_IMPORTED = "tests/test_released.py::test_import_writes_a_run_directory_the_tools_open"
ELSEWHERE = {  # command -> the test that runs it for real
    # Start from a trained model: the released files in tests/data, imported and converted once per session.
    IMPORT_OFFLINE: _IMPORTED,
    "python -m kerasseg import deeplabv3_mnv2_dm05_pascal_quant.tflite --output runs/voc-dm05": _IMPORTED,
    "python evaluate.py runs/voc-dm05 --dataset voc:/data/VOCdevkit/VOC2012": _IMPORTED,
    CONVERT_IMPORTED: "tests/test_released.py::test_round_trip_import_convert_int8_edge_agrees_with_the_released_file",
    "python -m kerasseg import deeplabv3_mnv2_pascal_trainval_2018_01_29.tar.gz --output runs/voc-mnv2 "
    "--output-stride 16":
        "tests/test_released.py::test_checkpoint_reader_restores_a_checkpoint_under_the_official_names_exactly",
    "python benchmarks/bench_released.py":
        "tests/test_e2e_benchmarks.py::test_quick_run_writes_every_goal_with_a_number",
    # Google's MobileNet-EdgeTPU Cityscapes file (tests/data): imported once per session, fine-tuned and exported once.
    "python -m kerasseg import deeplab_mobilenet_edgetpu_slim_cityscapes_quant.tflite --output "
    "runs/cityscapes-edgetpu": "tests/test_mobilenet_edgetpu.py::test_import_writes_a_cityscapes_run",
    "python train.py --init-from runs/cityscapes-edgetpu --dataset folder:/data/streets --image-size 513 513 "
    "--output-dir runs/streets":
        "tests/test_mobilenet_edgetpu.py::test_train_init_from_the_import_fine_tunes_it_to_other_classes",
    "python convert.py --run runs/streets --qat --edgetpu":
        "tests/test_mobilenet_edgetpu.py::test_qat_and_edgetpu_exports_keep_parity",
    "python convert.py --edgetpu": "tests/test_export_cli.py::test_edgetpu_from_the_newest_run",
    "python benchmarks/run.py": "tests/test_e2e_benchmarks.py::test_quick_run_writes_every_goal_with_a_number",
    "python benchmarks/bench_models.py": "tests/test_e2e_benchmarks.py::test_quick_run_writes_every_goal_with_a_number",
    "python benchmarks/bench_edge_loop.py":  # there with --built tiny65 --upsample-models built (random weights)
        "tests/test_e2e_benchmarks.py::test_quick_run_writes_every_goal_with_a_number",
    "python benchmarks/bench_smoothing.py --run RUN":  # there with --tiny (the quick run's model barely flickers)
        "tests/test_e2e_benchmarks.py::test_quick_run_writes_every_goal_with_a_number",
    **{f"python train.py --dataset {rest}": _LAYOUTS_TEST for rest in (  # one fixture per export, trained
        "voc:/data/labelme-export --val-fraction 0.1", "voc:/data/cvat-export",
        "voc:/data/rgb-export --colormap colours.txt", "coco:/data/hub-export", "coco:/data/coco2017",
        "ade20k:/data/ADEChallengeData2016 --image-size 512 512")},
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
    f"python -m edge --model {IMPORTED_INT8} --source 0 --no-display --serve 8080": "a camera",
    "python train.py --init-from runs/voc-dm05 --dataset folder:/data/mydata --image-size 321 321":
        "tests/test_released.py::test_train_init_from_loads_every_layer_but_the_classifier_trains_and_resumes "
        "fine-tunes the same import on the built-in dataset; here its configuration resolves from the import",
    "python -m edge --model model_int8.tflite --source picamera2 --no-display --serve 0.0.0.0:8080 --threads 4":
        "a Raspberry Pi camera",
    "python -m edge --model model_int8_edgetpu.tflite --edgetpu --source 0 --no-display --serve 8080":
        "a Coral Edge TPU and a camera",
    "python benchmarks/bench_heads.py": "converts and times nine DeepLab MobileNetV2 artifacts at 513 and 257 "
                                        "(minutes); tests/test_export_heads.py converts every head on tiny models",
    "python benchmarks/run.py --run runs/X": "an idle machine for an hour; the --quick run of "
                                            "tests/test_e2e_benchmarks.py runs the same script",
    "python train.py --arch lraspp --backbone mobilenetv3_large": "20 epochs of a 3M-parameter model; "
                                                                  "tests/test_mnv3_pipeline.py trains LR-ASPP "
                                                                  "MobileNetV3-Small through train.py",
    "python benchmarks/bench_mobilenetv3.py": "trains, converts and times five models at 513 and 257 (most of an "
                                              "hour); the --quick run of tests/test_e2e_benchmarks.py runs its "
                                              "--smoke path",
}

CATEGORIES = {"BY_CI": BY_CI, "PIP_INSTALL": PIP_INSTALL, "PYTEST_SELECTIONS": PYTEST_SELECTIONS,
              "NAMES_ONLY": NAMES_ONLY, "SYSTEM": SYSTEM, "RUN": RUN, "ELSEWHERE": ELSEWHERE,
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
Prose with `python -m kerasseg.models` and `not a command`.
""")
    commands = readme_commands(readme)
    assert [c.text for c in commands] == ["A=1 B='x y' python train.py --seed 3", "pip install -e '.[edge]'",
                                          "python -m pytest -m 'not slow'", "echo a | tee b", "python -m edge --help",
                                          "python -m kerasseg.models"]
    assert commands[0].env == (("A", "1"), ("B", "x y")) and commands[0].words == ("python", "train.py", "--seed", "3")
    assert [c.line for c in commands] == [3, 5, 5, 5, 11, 13]


def test_ci_runs_the_readme_test_commands_verbatim():
    # .ci/run may add pip's -q (less output); nothing else may differ.
    ci = [c.text.replace("pip install -q ", "pip install ") for line in (ROOT / ".ci" / "run").read_text().splitlines()
          if not line.lstrip().startswith("#") for c in split_commands(line)]
    for text in BY_CI:
        assert text in ci, f".ci/run does not run the README command {text!r}"


def _requirement_name(requirement: str) -> str:
    return re.match(r"[A-Za-z0-9._-]+", requirement).group(0).lower().replace("_", "-")


def test_pip_install_names_what_pyproject_declares():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    declared = {_requirement_name(r) for r in project["dependencies"] + sum(extras.values(), [])}
    for text in PIP_INSTALL | BY_CI:
        words = COMMANDS[text].words
        if words[:2] != ("pip", "install"):
            continue
        if words[2] == "-e":  # the project itself, with extras
            assert words[3].startswith(".["), text
            named = words[3][2:-1].split(",")
            assert set(named) <= set(extras), f"{text}: no extra {sorted(set(named) - set(extras))} in pyproject.toml"
        else:
            for requirement in words[2:]:
                assert _requirement_name(requirement) in declared, f"{text}: pyproject.toml does not declare it"


def test_pytest_selections_name_declared_markers():
    markers = {line.split(":")[0] for line in
               tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]["markers"]}
    for text in PYTEST_SELECTIONS:
        words = COMMANDS[text].words
        expression = words[words.index("-m", 3) + 1]
        named = set(re.findall(r"\w+", expression)) - {"not", "and", "or"}
        assert named <= markers, f"{text}: markers {sorted(named - markers)} are not declared in pyproject.toml"


def test_programs_named_in_sentences_exist():
    for text in NAMES_ONLY:
        assert callable(load_entry_point(entry_point(COMMANDS[text])[0]).main), text


def test_system_commands_run_no_project_entry_point():
    for text in SYSTEM:
        with pytest.raises(ValueError, match="runs no known entry point"):
            entry_point(COMMANDS[text])


OTHER_PROGRAMS_FLAGS = {"--logdir": "tensorboard", "--system-site-packages": "python3 -m venv", "--durations": "pytest"}


def test_every_flag_the_readme_names_exists():
    """Prose included: a --flag the README mentions is listed by some entry point's --help."""
    listed = set().union(*(help_flags(name) for name in set(ENTRY_POINTS.values())))
    named = set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", README.read_text(encoding="utf-8")))
    unknown = sorted(named - listed - set(OTHER_PROGRAMS_FLAGS))
    assert not unknown, f"README.md names flags no entry point takes: {unknown}"


@pytest.mark.parametrize("text", PYTHON_ENTRY_POINTS)
def test_arguments_are_what_the_entry_point_takes(text):
    name, argv = entry_point(COMMANDS[text])
    parse_arguments(name, argv)


@pytest.mark.parametrize("text", sorted(ELSEWHERE))
def test_the_test_named_to_run_it_exists(text):
    """ELSEWHERE names a test function of a test module (its flags are parsed by the test above)."""
    import importlib

    path, name = ELSEWHERE[text].split("::")
    module = importlib.import_module(pathlib.Path(path).stem)  # tests/ is on sys.path, as pytest imports them
    assert callable(getattr(module, name, None)) and name.startswith("test_"), f"{ELSEWHERE[text]} does not exist"


class _WouldTrain(Exception):
    pass


@pytest.mark.parametrize("text", sorted(t for t in ARGUMENTS_ONLY if entry_point(COMMANDS[t])[0] == "train.py"))
def test_train_command_resolves_to_a_config_with_its_flags(text, monkeypatch, tmp_path, request):
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
    argv = lay_out(entry_point(command)[1], tmp_path, request)
    with pytest.raises(_WouldTrain):
        load_entry_point("train.py").main(argv)
    config = captured["config"]
    assert_config_has_flags(config.to_dict(), argv)
    assert captured["output_dir"] == parse_arguments("train.py", argv).output_dir
    if config.dataset.split(":")[0] in ("voc", "folder"):  # a local fixture: read an example of each split
        from kerasseg.data import open_dataset

        source = open_dataset(config.dataset)
        for split in ("train", "val"):
            assert next(iter(source.iter_examples(split))).mask.ndim == 2, (config.dataset, split)


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
# Slow: each section's commands, for real, in the order written, in one folder.

# Flags appended to a RUN command, by entry point. argparse keeps an option's last value, so these shrink the
# run (fewer steps, images and frames, a smaller DeepLab head) without changing what the command does.
SCALE_DOWN = {
    "train.py": ["--epochs", "1", "--steps-per-epoch", "1", "--batch-size", "2", "--image-size", "32", "--no-aspp",
                 "--no-decoder"],
    # --max-drop: a model trained for two steps has near-tied class scores, which int8 rounding flips (the parity
    # bound is checked on a trained model by tests/test_e2e.py).
    "convert.py": ["--calibration-steps", "2", "--qat-steps", "2", "--parity-images", "4", "--max-drop", "100"],
    "edge.cli": ["--max-frames", "5"],
    "edge.benchmark": ["--runs", "3", "--warmup", "1"],
}
TINY_SYNTHETIC = ["--dataset", "synthetic?train=8&val=4"]  # for a train.py command that names no dataset
# The quick start's run trains two epochs, so that --resume can restart it after its first.
SCALE_DOWN_MORE = {QUICK_START: ["--epochs", "2"], SAMPLE_CLIP: ["--images", "2", "--seconds-per-image", "0.5"]}
MAX_FRAMES = 5
MODEL_NAME = "deeplabv3plus_mobilenetv2"
# The flags whose value a command writes: a placeholder there is the command's output, not laid out beforehand.
OUTPUT_FLAGS = {"--output", "--stills", "--record", "--json", "--stats-json", "--output-dir"}


def _voc(cwd, request, argv):
    path = cwd / "VOCdevkit" / "VOC2012"
    if not path.exists():
        make_voc(str(path))
    return str(path)


def _folder(cwd, request, argv):
    path = cwd / "mydata"
    if not path.exists():
        make_folder(str(path), stems=[f"s{i}" for i in range(10)], size=(40, 48))
    return str(path)


def _empty_dir(name):
    def make(cwd, request, argv):
        (cwd / name).mkdir(exist_ok=True)
        return str(cwd / name)
    return make


def _example_run(cwd, request, argv):
    """A run the quick start leaves: its run, converted (int8, QAT and the other heads)."""
    if not (cwd / EXAMPLE_RUN).exists():
        shutil.copytree(request.getfixturevalue("exported").run_dir, cwd / EXAMPLE_RUN)
    return EXAMPLE_RUN


def _stopped_after_first_epoch(cwd, request):
    """What ``train.py --resume`` is for: the newest run, as if stopped (Ctrl-C) after its first epoch."""
    from kerasseg.backend import tf
    from kerasseg.rundir import latest_run

    checkpoints = os.path.join(latest_run(cwd / "runs", require_model=False).path, "checkpoints")
    first = os.path.basename(tf.train.get_checkpoint_state(checkpoints).all_model_checkpoint_paths[0])
    tf.compat.v1.train.update_checkpoint_state(checkpoints, first, all_model_checkpoint_paths=[first])


def _imported(cwd, request, argv=None):
    """Coral's int8 VOC model as the README's import writes it: a copy of the session's import of the same file
    (``imported_runs``, tests/released_helpers.py)."""
    path = cwd / "runs" / "voc-dm05"
    if not path.exists():
        copy_run(pathlib.Path(request.getfixturevalue("imported_runs").runs["int8"]), path)
    return str(path)


def _imported_export(cwd, request):
    """``convert.py --run runs/voc-dm05 --int8 --dataset images:tests/data/``: a copy of what the session's
    ``imported_int8_export`` wrote with the same arguments (and 8 calibration steps) from the same two photos."""
    model = pathlib.Path(request.getfixturevalue("imported_int8_export"))
    export = pathlib.Path(_imported(cwd, request)) / "export"
    export.mkdir(exist_ok=True)
    for path in model.parent.glob(model.name.replace(".tflite", ".*")):
        shutil.copy(path, export / path.name)


def _photos(cwd, request, argv):
    folder = "samples" if "samples/" in argv else "photos"
    if not (cwd / folder).exists():
        rng = np.random.default_rng(0)
        (cwd / folder).mkdir()
        for name, size in (("beach.jpg", (40, 56)), ("street.png", (30, 30))):
            cv2.imwrite(str(cwd / folder / name), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
    return f"{folder}/"


def _clip(cwd, request, argv):
    if not (cwd / "clip.mp4").exists():
        write_video(str(cwd / "clip.mp4"), frames=MAX_FRAMES + 3)
    return "clip.mp4"


def _copy_model(name, *, fixture="exported", mode="int8"):
    def copy(cwd, request, argv):
        if not (cwd / name).exists():
            shutil.copy(request.getfixturevalue(fixture).model(mode), cwd / name)
        return name
    return copy


# What each placeholder of the README stands for here: made in the walk's folder unless an earlier command made
# it; the text it is replaced by (a relative path is made under its own name).
PLACEHOLDERS = {
    "/data/VOCdevkit/VOC2012": _voc,
    "/data/VOC2012": _voc,
    "/data/mydata": _folder,
    "/data/tfds": _empty_dir("tfds"),
    "/data/cityscapes-zips": _empty_dir("cityscapes-zips"),
    EXAMPLE_RUN: _example_run,
    "runs/voc-dm05": _imported,
    "tests/data/": lambda cwd, request, argv: str(ROOT / "tests" / "data") + os.sep,  # a clone's, read only
    "photos/": _photos,
    "samples/": _photos,
    "clip.mp4": _clip,
    "model.tflite": _copy_model("model.tflite"),
    "model_int8.tflite": _copy_model("model_int8.tflite"),
    "model_float.tflite": _copy_model("model_float.tflite", fixture="float_model", mode="float32"),
    # Not compiled (no edgetpu_compiler here): the missing Edge TPU is reported before the model matters.
    "model_int8_edgetpu.tflite": _copy_model("model_int8_edgetpu.tflite"),
    "127.0.0.1:8080": lambda cwd, request, argv: "127.0.0.1:0",  # any free port
}
# ELSEWHERE commands whose output a later command of their section reads: what stands in for them in the walk.
STAND_INS = {IMPORT_OFFLINE: _imported, CONVERT_IMPORTED: _imported_export}
# What a command assumes has happened, which no README command does: made just before it runs in the walk.
BEFORE = {RESUME: _stopped_after_first_epoch}


@dataclasses.dataclass
class Outcome:
    """A README command run in-process: its entry point, final argv, exit status and output."""
    text: str
    cwd: pathlib.Path
    name: str
    argv: list
    status: int
    out: str
    err: str
    readme_argv: list  # after the placeholders, before the scale-down flags
    run: pathlib.Path | None = None  # for train.py and convert.py, the run as the command left it (see run_dir)

    def tail(self):
        return (f"{self.text}\nran as {self.name} {self.argv}\n--- stdout\n{self.out[-3000:]}\n"
                f"--- stderr\n{self.err[-3000:]}")

    @property
    def run_dir(self):
        """The run a train.py or convert.py command wrote into, or converted: the one named, else the newest under
        runs/ when the command ended (a later command of the walk may have made a newer one)."""
        from kerasseg.rundir import latest_run

        if self.run is not None:
            return self.run
        args = parse_arguments(self.name, self.argv)
        given = getattr(args, "resume", None) or getattr(args, "run", None) or getattr(args, "output_dir", None)
        return self.cwd / given if given else pathlib.Path(latest_run(self.cwd / "runs").path)

    def model(self, mode, head=None):
        """The artifact a convert.py command wrote for ``mode`` and ``head`` (None: the mode's default)."""
        from kerasseg.export.export import target_paths
        from kerasseg.export.heads import Head
        from kerasseg.export.modes import Mode

        head = None if head is None else Head.parse(head)
        return pathlib.Path(target_paths(str(self.run_dir / "export"), MODEL_NAME, Mode.parse(mode), head)["tflite"])


def lay_out(argv, cwd, request=None):
    """Make what the placeholders in ``argv`` stand for in ``cwd`` (see PLACEHOLDERS); ``argv`` with their
    replacements. The value of an output flag is the command's to write, and stays as written."""
    outputs = {i + 1 for i, word in enumerate(argv[:-1]) if word in OUTPUT_FLAGS}
    for key in sorted(PLACEHOLDERS, key=len, reverse=True):
        if any(key in word for i, word in enumerate(argv) if i not in outputs):
            replacement = PLACEHOLDERS[key](cwd, request, argv)
            argv = [word if i in outputs else word.replace(key, replacement) for i, word in enumerate(argv)]
    return argv


def run_readme(text, cwd, request=None):
    """Lay out the command's placeholders in ``cwd``, then run its entry point's main() there."""
    name, argv = entry_point(COMMANDS[text])
    argv = lay_out(argv, cwd, request)
    readme_argv = list(argv)
    if not {"--resume", "--help"} & set(argv):  # a resumed run must keep its checkpoint's settings
        argv += SCALE_DOWN.get(name, []) + SCALE_DOWN_MORE.get(text, [])
        if name == "train.py" and "--dataset" not in argv:
            argv += TINY_SYNTHETIC
    newest = (name in ("evaluate.py", "predict.py", "convert.py") and not {"--run", "--model"} & set(argv)
              or name == "train.py" and argv[-1:] == ["--resume"] or argv[:2] == ["--model", "runs"])
    if newest and not (cwd / "runs").is_dir():  # the command takes the newest run (or artifact) under runs/
        _example_run(cwd, request, argv)
    if name == "edge.cli" and "--stats-json" not in argv:
        argv += ["--stats-json", "readme-stats.jsonl"]
    return invoke(name, argv, cwd, text=text, readme_argv=readme_argv)


def invoke(name, argv, cwd, *, text="", readme_argv=None):
    """``name``'s main(argv) in ``cwd``, its output captured; TFDS datasets read mock records."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.ExitStack() as stack:
        stack.enter_context(contextlib.chdir(cwd))
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        if any(word.startswith("tfds:") for word in argv):
            import tensorflow_datasets as tfds
            from test_data_tfds import SIZES, fake_records

            stack.enter_context(tfds.testing.mock_data(num_examples=len(SIZES), as_dataset_fn=fake_records))
        try:
            status = load_entry_point(name).main(argv)
        except SystemExit as exit_:  # argparse's --help
            status = exit_.code
    outcome = Outcome(text or f"{name} {' '.join(argv)}", cwd, name, argv, status, out.getvalue(), err.getvalue(),
                      readme_argv or argv)
    if name in ("train.py", "convert.py") and status == 0:
        outcome.run = outcome.run_dir
    return outcome


SECTIONS = sections()
QUICK_START_SECTION = next(title for title in SECTIONS if title.startswith("Quick start"))
NOT_WALKED = {"Set-up: two commands": "its main job is the quick start's first command, walked there"}
WALKED = [title for title, commands in SECTIONS.items() if title not in NOT_WALKED
          and any(c.text in RUN or c.text in STAND_INS for c in commands)]


def walk(title, cwd, request, *, done=()):
    """Section ``title``'s commands in the order written, in ``cwd``: RUN ones for real (after what BEFORE
    assumes), STAND_INS from their fixtures; the others are skipped (their category says how they are checked).
    ``done`` holds outcomes already run there (the quick start's training). Returns the outcomes."""
    outcomes = list(done)
    for command in SECTIONS[title]:
        if command.text in STAND_INS:
            STAND_INS[command.text](cwd, request)
        elif command.text in RUN and command.text not in {o.text for o in done}:
            if command.text in BEFORE:
                BEFORE[command.text](cwd, request)
            outcomes.append(run_readme(command.text, cwd, request))
    return outcomes


@pytest.fixture(scope="module")
def quick_start(tmp_path_factory):
    """The README's main job, scaled down: the first command of the quick start's walk."""
    return run_readme(QUICK_START, tmp_path_factory.mktemp("quick_start"))


@pytest.fixture(scope="module")
def quick_start_walk(quick_start, request):
    """The quick start's commands after its training, in order, in its folder (see ``walk``)."""
    return walk(QUICK_START_SECTION, quick_start.cwd, request, done=[quick_start])


@pytest.fixture(scope="module")
def exported(quick_start_walk):
    """``python convert.py --int8`` in the quick start's walk: the run every other section's newest run copies."""
    return next(outcome for outcome in quick_start_walk if outcome.text == CONVERT_INT8)


@pytest.fixture(scope="module")
def float_model(exported):
    """The same run at float32, for the benchmark's --vs."""
    done = invoke("convert.py", ["--run", str(exported.run_dir), "--float32", "--parity-images", "2"], exported.cwd)
    assert done.status == 0, done.tail()
    return done


def check_train(outcome):
    args = parse_arguments("train.py", outcome.argv)
    run_dir = outcome.run_dir
    for name in ("config.yaml", "spec.json", "best.keras", "last.keras", "metrics.json", "checkpoints"):
        assert (run_dir / name).exists(), f"{outcome.text}: no {name} in {run_dir}"
    config = yaml.safe_load((run_dir / "config.yaml").read_text())
    epochs = [h["epoch"] for h in json.loads((run_dir / "metrics.json").read_text())["history"]]
    assert "Final val metrics" in outcome.out, outcome.tail()
    if args.resume is not None:  # stopped after epoch 1 of 2 (BEFORE); "" is the newest
        assert "from step 1 of 2" in outcome.out and epochs == [1, 2], outcome.tail()
        return
    assert epochs == list(range(1, args.epochs + 1)), epochs
    scaled = vars(parse_arguments("train.py", SCALE_DOWN["train.py"] + SCALE_DOWN_MORE.get(outcome.text, [])))
    assert_config_has_flags(config["train"], outcome.readme_argv,
                            ignore=[key for key, value in scaled.items() if value is not None])
    if args.check_data:
        assert "label values found" in outcome.out, outcome.tail()


def check_convert(outcome):
    args = parse_arguments("convert.py", outcome.argv)
    for mode in args.modes:
        for head in args.head or [None]:
            model = outcome.model(mode.value, head)
            for path in (model, model.with_suffix(".spec.json"), model.with_suffix(".parity.json")):
                assert path.is_file(), f"{outcome.text}: no {path}"
            parity = json.loads(model.with_suffix(".parity.json").read_text())
            assert parity["mode"] == mode.value and parity["num_images"] == args.parity_images, parity
            interpreter = Interpreter(model_path=str(model))
            dtypes = interpreter.get_input_details()[0]["dtype"], interpreter.get_output_details()[0]["dtype"]
            # raw pixels in; uint8 scores (or ids) out of the full-integer modes (what MediaPipe reads)
            assert dtypes == (np.uint8, np.uint8 if mode.full_integer else np.float32), dtypes


def check_evaluate(outcome):
    args = parse_arguments("evaluate.py", outcome.argv)
    assert f"scales {args.scales}" + (" + flip" if args.flip else "") in outcome.out, outcome.tail()
    assert "mean_iou" in outcome.out and "per-class IoU" in outcome.out, outcome.tail()


def _images(folder):
    return sorted(name for name in os.listdir(folder) if name.lower().endswith((".jpg", ".png", ".bmp")))


def check_predict(outcome):
    from edge.artifact import Spec
    from kerasseg.rundir import latest_run

    args = parse_arguments("predict.py", outcome.argv)
    run = outcome.cwd / args.run if args.run else pathlib.Path(latest_run(outcome.cwd / "runs").path)
    classes = Spec.load(run).num_classes
    assert _images(outcome.cwd / args.input), outcome.tail()
    for photo in _images(outcome.cwd / args.input):
        stem = os.path.splitext(photo)[0]
        image = cv2.imread(str(outcome.cwd / args.input / photo))
        labels = cv2.imread(str(outcome.cwd / args.output / f"{stem}_labels.png"), cv2.IMREAD_UNCHANGED)
        assert labels.shape == image.shape[:2] and labels.max() < classes, photo
        assert cv2.imread(str(outcome.cwd / args.output / f"{stem}_mask.png")).shape == image.shape, photo
        overlay = cv2.imread(str(outcome.cwd / args.output / f"{stem}_overlay.png"))  # a small one's legend beside
        assert overlay.shape[0] >= image.shape[0] and overlay.shape[1] >= image.shape[1], photo


def check_edge(outcome):
    args = parse_arguments("edge.cli", outcome.argv)
    assert "interpreter:" in outcome.out, outcome.tail()
    lines = (outcome.cwd / args.stats_json).read_text().splitlines()
    final = json.loads(lines[-1])
    source = outcome.cwd / args.source
    frames = min(MAX_FRAMES, len(_images(source))) if source.is_dir() else MAX_FRAMES  # a folder ends sooner
    assert final["final"] is True and final["frames"] == frames, final
    if args.record:
        assert _count_frames(outcome.cwd / args.record) == MAX_FRAMES
    if args.serve:
        assert "preview: http://127.0.0.1:" in outcome.out, outcome.tail()


def _count_frames(path):
    video, frames = cv2.VideoCapture(str(path)), 0
    while video.read()[0]:
        frames += 1
    return frames


def check_benchmark(outcome):
    args = parse_arguments("edge.benchmark", outcome.argv)
    delegation = [line for line in outcome.out.splitlines() if "XNNPACK partition" in line]
    rows = [line for line in outcome.out.splitlines() if ".tflite" in line and line not in delegation]
    assert len(rows) == (1 + len(args.vs)) * len(args.threads), outcome.tail()  # Edge TPU rows: none here
    # Then one line per model on how XNNPACK took it: the README's int8 and float files run as one partition.
    assert [line.split(":")[0] for line in delegation] == [args.model, *args.vs], outcome.tail()
    assert all(": 1 XNNPACK partition for" in line for line in delegation), outcome.tail()


def check_data(outcome):
    args = parse_arguments("kerasseg.data.__main__", outcome.argv)
    if args.command == "clip":
        frames = _count_frames(outcome.cwd / args.output)
        assert frames == args.images * round(args.fps * args.seconds_per_image), outcome.tail()
        stills = sorted(p for p in os.listdir(outcome.cwd / args.stills) if p.startswith("sample_"))
        assert len(stills) == args.images, outcome.tail()
        return
    for split in args.splits:
        assert f"split {split}:" in outcome.out, outcome.tail()
    if args.json:
        report = json.loads((outcome.cwd / args.json).read_text())
        assert set(args.splits) <= set(json.dumps(report).replace('"', " ").split()), report


def check_models(outcome):
    from kerasseg.models import list_models

    for arch in list_models():
        assert arch in outcome.out, outcome.tail()


CHECKS = {"kerasseg.models.__main__": check_models, "train.py": check_train, "convert.py": check_convert,
          "evaluate.py": check_evaluate, "predict.py": check_predict, "edge.cli": check_edge,
          "edge.benchmark": check_benchmark, "kerasseg.data.__main__": check_data}


def check_outcome(outcome):
    status, phrase = FAILS_HERE.get(outcome.text, (0, ""))
    assert outcome.status == status, outcome.tail()
    assert phrase in outcome.err, outcome.tail()
    if "--help" in outcome.argv:
        assert outcome.out.startswith("usage:"), outcome.tail()
    else:
        CHECKS[outcome.name](outcome)


def test_every_command_run_for_real_runs_in_a_section_walk():
    walked = {command.text for title in WALKED for command in SECTIONS[title]}
    assert RUN <= walked, f"RUN commands in no walked section: {sorted(RUN - walked)}"
    assert set(STAND_INS) <= set(ELSEWHERE) and set(BEFORE) <= RUN
    assert set(NOT_WALKED) <= set(SECTIONS) and QUICK_START in {c.text for c in SECTIONS[QUICK_START_SECTION]}


@pytest.mark.slow
@pytest.mark.parametrize("title", WALKED)
def test_each_section_runs_in_the_order_written_in_one_folder(title, tmp_path, request):
    """Slow: every RUN command of the section, scaled down, in one folder. The quick start's walk is a module
    fixture (``quick_start_walk``): the other sections' newest run is a copy of it; Start from a trained model
    copies the session's import and its int8 export (``imported_runs``, ``imported_int8_export``)."""
    if title == QUICK_START_SECTION:
        outcomes = request.getfixturevalue("quick_start_walk")
    else:
        outcomes = walk(title, tmp_path, request)
    assert [o.text for o in outcomes] == [c.text for c in SECTIONS[title] if c.text in RUN]
    for outcome in outcomes:
        check_outcome(outcome)


@pytest.mark.slow
def test_the_files_the_readme_lists_are_written(exported):
    """The README's tables of a run directory's files and of an export's, against the quick start's run. Slow
    only by its fixture, the module's ``exported`` quick-start run."""
    run_files, export_files = file_tables()
    for name in run_files:
        path = exported.run_dir / name
        assert path.is_dir() if name.endswith("/") else path.is_file(), f"the README lists {name}; not in the run"
    for name in export_files:
        if "_HEAD." in name or ".FAILED." in name:
            continue  # another --head, a failed artifact: the quick start's export makes neither
        name = name.replace("[_HEAD]", "")  # the default head keeps the plain name
        path = exported.run_dir / "export" / name.replace("NAME", MODEL_NAME).replace("MODE", "int8")
        assert path.is_file(), f"the README lists {name}; no {path}"
    from edge.artifact import read_metadata

    entries = read_metadata(exported.model("int8"))  # the README: the spec and the standard metadata are inside
    assert "kerasseg_spec" in entries and "TFLITE_METADATA" in entries, sorted(entries)


# Python blocks that need a camera and a run the README's commands made: the test named runs each one as written, on
# the photos of tests/data and the session's import of the released model (marker: a line only that block has).
PYTHON_ELSEWHERE = {
    "from edge import stream":
        "tests/test_released.py::test_the_readmes_stream_example_blurs_the_background_behind_the_person",
}


def _python_blocks(*, elsewhere: bool) -> list:
    """The first lines of the README's Python blocks that run here (or, ``elsewhere``, in PYTHON_ELSEWHERE's tests)."""
    return [start for start, _, lines in code_blocks(languages={"python"})
            if any(marker in "\n".join(lines) for marker in PYTHON_ELSEWHERE) == elsewhere]


def test_the_python_blocks_run_elsewhere_have_their_test():
    assert len(_python_blocks(elsewhere=True)) == len(PYTHON_ELSEWHERE), "a PYTHON_ELSEWHERE marker matches no block"
    for test in PYTHON_ELSEWHERE.values():
        path, name = test.split("::")
        assert callable(getattr(importlib.import_module(pathlib.Path(path).stem), name, None)), f"{test} does not exist"


@pytest.mark.slow
@pytest.mark.parametrize("start", _python_blocks(elsewhere=False))
def test_readme_python_block_runs(start):
    """Slow: a README Python block may build a model or open a dataset."""
    [lines] = [lines for first, _, lines in code_blocks(languages={"python"}) if first == start]
    namespace = {}
    exec(compile("\n".join(lines), f"README.md, the Python block at line {start}", "exec"), namespace)
    assert {k for k in namespace if not k.startswith("__")}, "the block defined nothing"
