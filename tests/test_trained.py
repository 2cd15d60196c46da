"""open_trained: a run directory or a .keras file with its spec, and the dataset checked against it."""
import os

import cv2
import numpy as np
import pytest
from export_helpers import TINY_RUN_DATASET as DATASET, TINY_RUN_LABELS as LABELS, make_tiny_run, tiny_model

from edge.artifact import Spec
from kerasseg.training import RunError
from kerasseg.data.sources import open_data
from kerasseg.rundir import open_trained

@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    return make_tiny_run(tmp_path_factory.mktemp("trained") / "run")


def test_a_run_directory_gives_model_spec_and_what_the_run_knows(tiny_run):
    trained = open_trained(tiny_run)
    assert trained.model_path == os.path.join(tiny_run, "best.keras") and trained.run.path == tiny_run
    assert trained.spec == Spec.load(tiny_run)
    assert (trained.dataset, trained.seed, trained.train_size) == (DATASET, 3, (32, 48))
    assert trained.model_kwargs == {"arch": "fcn32s", "num_classes": 5}
    assert trained.folder == tiny_run
    last = open_trained(tiny_run, which="last")
    assert last.model_path == os.path.join(tiny_run, "last.keras")
    weights = [w.numpy() for w in trained.model.weights], [w.numpy() for w in last.model.weights]
    assert not all(np.array_equal(a, b) for a, b in zip(*weights))  # the other file, not the same model twice


def test_a_model_file_beside_config_yaml_belongs_to_its_run(tiny_run):
    trained = open_trained(os.path.join(tiny_run, "last.keras"))
    assert trained.run.path == tiny_run and trained.dataset == DATASET and trained.seed == 3


def test_a_model_file_alone_knows_no_data(tiny_run, tmp_path):
    model = tmp_path / "alone.keras"
    os.symlink(os.path.join(tiny_run, "best.keras"), model)
    trained = open_trained(model, spec_path=os.path.join(tiny_run, "spec.json"))
    assert trained.run is None and trained.dataset is None and trained.model_kwargs is None
    assert trained.folder == str(tmp_path)
    with pytest.raises(ValueError, match="--dataset: required for model .*alone.keras"):
        open_data(trained)
    assert open_data(trained, DATASET).labels == LABELS
    voc = tmp_path / "voc"
    for sub in ("JPEGImages", "SegmentationClass", "ImageSets/Segmentation"):
        (voc / sub).mkdir(parents=True)
    for split in ("train", "val"):
        (voc / "ImageSets/Segmentation" / f"{split}.txt").write_text("a\n")
    cv2.imwrite(str(voc / "JPEGImages/a.jpg"), np.zeros((8, 8, 3), np.uint8))
    cv2.imwrite(str(voc / "SegmentationClass/a.png"), np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError, match=rf"--dataset voc:{voc}: its classes \['background', 'aeroplane', .*"
                                         rf"differ from the model's \['background', 'circle'"):
        open_data(trained, f"voc:{voc}")


def test_missing_pieces_are_named(tiny_run, tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere: no such directory or model file"):
        open_trained(tmp_path / "nowhere")
    model = tmp_path / "alone.keras"
    os.symlink(os.path.join(tiny_run, "best.keras"), model)
    with pytest.raises(FileNotFoundError, match=f"no spec at {tmp_path}/spec.json; pass --spec FILE"):
        open_trained(model)
    with pytest.raises(ValueError, match="goes with a model file"):
        open_trained(tiny_run, spec_path=os.path.join(tiny_run, "spec.json"))
    with pytest.raises(ValueError, match=r"which: expected one of \['best', 'last'\], got 'first'"):
        open_trained(tiny_run, which="first")
    os.makedirs(tmp_path / "run")
    for name in ("best.keras", "spec.json", "config.yaml"):
        os.symlink(os.path.join(tiny_run, name), tmp_path / "run" / name)
    with pytest.raises(RunError, match="no last.keras"):
        open_trained(tmp_path / "run", which="last")


def test_a_model_whose_output_is_not_its_spec_is_refused(tmp_path):
    tiny_model(num_classes=3).save(tmp_path / "three.keras")
    Spec(labels=LABELS, input_size=(32, 32)).save(tmp_path / "spec.json")
    with pytest.raises(ValueError, match="three.keras: outputs 3 classes but its spec lists 5"):
        open_trained(tmp_path / "three.keras")
    (tmp_path / "broken.keras").write_bytes(b"PK\x03\x04 not an archive")
    with pytest.raises(ValueError, match="broken.keras is not a Keras model file .*: it is a damaged zip archive"):
        open_trained(tmp_path / "broken.keras")
