"""Configuration: precedence, arch defaults, YAML, validation and the CLI flags."""
import importlib.util
import pathlib

import pytest

from kerasseg.training import resolve_config
from kerasseg.rundir import config_differences
from kerasseg.training.config import FIELDS, TrainConfig, normalize_image_size, read_yaml

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _train_cli():
    spec = importlib.util.spec_from_file_location("train_cli", ROOT / "train.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_precedence_defaults_arch_yaml_flags():
    config = resolve_config()
    assert config.arch == "deeplabv3plus" and config.alpha == 0.35 and config.optimizer == "adamw"
    # FCN keeps the paper's SGD settings.
    fcn = resolve_config(overrides={"arch": "fcn8s"})
    assert (fcn.optimizer, fcn.learning_rate, fcn.momentum, fcn.weight_decay) == ("sgd", 1e-4, 0.9, 5e-4)
    assert fcn.alpha is None
    # YAML beats the arch defaults, flags beat YAML; None means "not given".
    config = resolve_config(yaml_values={"arch": "fcn32s", "learning_rate": 0.01, "epochs": 3},
                            overrides={"learning_rate": 0.02, "epochs": None})
    assert (config.arch, config.learning_rate, config.epochs, config.weight_decay) == ("fcn32s", 0.02, 3, 5e-4)
    # DeepLab from random weights trains at a high peak rate; a pretrained backbone is fine-tuned gently.
    scratch = resolve_config()
    tuned = resolve_config(overrides={"backbone_weights": "imagenet"})
    assert tuned.learning_rate < scratch.learning_rate and tuned.optimizer == scratch.optimizer
    assert resolve_config(overrides={"backbone_weights": "imagenet", "learning_rate": 0.5}).learning_rate == 0.5
    # A non-MobileNet backbone gets no alpha.
    assert resolve_config(overrides={"backbone": "xception65"}).alpha is None


def test_resume_base_replaces_defaults():
    saved = resolve_config(overrides={"epochs": 7, "learning_rate": 0.5}).to_dict()
    config = resolve_config(base=saved)
    assert config.epochs == 7 and config.learning_rate == 0.5
    assert config_differences(saved, config.to_dict()) == []
    changed = resolve_config(base=saved, overrides={"epochs": 9})
    assert config_differences(saved, changed.to_dict()) == ["epochs: checkpoint has 7, now 9"]


def test_bad_values_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"unknown keys \['learning_rat'\]"):
        resolve_config(yaml_values={"learning_rat": 0.1})
    with pytest.raises(ValueError, match="optimizer: expected one of .*'rmsprop'"):
        resolve_config(overrides={"optimizer": "rmsprop"})
    with pytest.raises(ValueError, match="batch_size"):
        TrainConfig(batch_size=0)
    with pytest.raises(ValueError, match="image_size"):
        normalize_image_size([1, 2, 3])
    with pytest.raises(ValueError, match="scale_range"):
        resolve_config(yaml_values={"scale_range": [2.0, 0.5]})
    assert normalize_image_size(64) == (64, 64) and normalize_image_size([48, 64]) == (48, 64)
    path = tmp_path / "c.yaml"
    path.write_text("- a list\n")
    with pytest.raises(ValueError, match="expected a YAML mapping"):
        read_yaml(path)
    with pytest.raises(FileNotFoundError, match="config file not found"):
        read_yaml(tmp_path / "missing.yaml")


def test_cli_help_lists_every_flag(capsys):
    cli = _train_cli()
    with pytest.raises(SystemExit):
        cli.parse_args(["--help"])
    text = capsys.readouterr().out
    for flag in ("--arch", "--backbone", "--output-stride", "--dataset", "--image-size", "--batch-size", "--epochs",
                 "--steps-per-epoch", "--learning-rate", "--optimizer", "--strategy", "--mixed-precision",
                 "--resume", "--backbone-weights", "--output-dir", "--seed", "--config", "--class-weights",
                 "--sync-batch-norm", "--check-data", "--weight-decay", "--warmup-steps"):
        assert flag in text, flag
    args = cli.parse_args(["--arch", "deeplabv3plus", "--image-size", "48", "64", "--strategy", "mirrored",
                           "--mixed-precision", "--resume"])
    assert args.image_size == [48, 64] and args.strategy == "mirrored" and args.mixed_precision is True
    assert args.resume == "" and args.learning_rate is None
    args = cli.parse_args(["--scale-range", "0.75", "1.5"])
    config = resolve_config(overrides={"scale_range": args.scale_range})
    assert config.scale_range == (0.75, 1.5) and config.to_dict()["scale_range"] == [0.75, 1.5]
    assert resolve_config().scale_range is None  # the dataset's own range
    # Every TrainConfig field is settable from the command line, but two that --init-from takes from its source
    # (and a YAML file can set).
    assert set(FIELDS) - set(vars(args)) == {"val_examples", "align_corners", "channel_rounding"}
    with pytest.raises(SystemExit):
        cli.parse_args(["--optimizer", "rmsprop"])


def test_cli_reports_config_errors(tmp_path, capsys):
    cli = _train_cli()
    (tmp_path / "bad.yaml").write_text("nope: 1\n")
    assert cli.main(["--config", str(tmp_path / "bad.yaml")]) == 2
    assert "unknown keys ['nope']" in capsys.readouterr().err


def test_model_options_come_from_the_registry_table():
    """One table of build options: the training config's fields, --init-from's rules and both command lines."""
    from kerasseg.models import OPTIONS
    from kerasseg.models.__main__ import parse_args as models_cli
    from kerasseg.training.init_from import FIXED_BY_WEIGHTS, FROM_SOURCE

    assert set(OPTIONS) <= set(FIELDS) and all(getattr(TrainConfig(), name) is None for name in OPTIONS)
    assert set(FROM_SOURCE) == {"arch", *OPTIONS}
    assert set(FIXED_BY_WEIGHTS) == {"arch", *(name for name, option in OPTIONS.items() if option.fixed_by_weights)}
    assert {"backbone", "alpha", "aspp", "decoder", "minimalistic", "channel_rounding"} <= set(FIXED_BY_WEIGHTS)
    assert not {"output_stride", "dropout", "edgetpu_friendly", "align_corners"} & set(FIXED_BY_WEIGHTS)
    counted = models_cli(["--arch", "deeplabv3plus", "--channel-rounding", "slim", "--align-corners"])
    assert all(hasattr(counted, name) for name in OPTIONS)
    assert counted.channel_rounding == "slim" and counted.align_corners is True and counted.aspp is None
    trained = vars(_train_cli().parse_args([]))
    assert {name for name in OPTIONS if name in trained} == {n for n, o in OPTIONS.items() if o.training_flag}
