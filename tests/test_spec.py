import json

import pytest

from edge.artifact import Spec, SpecError, default_colors


def make(**kw):
    fields = dict(labels=("background", "cat", "dog"), input_size=(64, 96))
    fields.update(kw)
    return Spec(**fields)


def test_round_trip_through_json_file(tmp_path):
    spec = make(mean=(1, 2, 3), std=(4, 5, 6), output_kind="class_ids", resize_mode="letterbox")
    path = spec.save(tmp_path)
    assert path.endswith("spec.json")
    loaded = Spec.load(tmp_path)
    assert loaded == spec
    assert loaded.num_classes == 3
    assert loaded.colors == default_colors(3)


def test_voc_palette_matches_known_entries():
    colors = default_colors(21)
    assert colors[0] == (0, 0, 0)
    assert colors[1] == (128, 0, 0)
    assert colors[15] == (192, 128, 128)  # VOC "person"
    assert colors[20] == (0, 64, 128)


@pytest.mark.parametrize("field,value,needle", [
    ("labels", ("only",), "at least 2"),
    ("labels", ("a", "a"), "unique"),
    ("colors", ((0, 0, 0),), "one colour per label"),
    ("output_kind", "scores", "output_kind"),
    ("resize_mode", "crop", "resize_mode"),
    ("ignore_label", 1, "collides"),
    ("std", (1, 0, 1), "positive"),
])
def test_invalid_fields_are_named(field, value, needle):
    with pytest.raises(SpecError, match=needle):
        make(**{field: value})


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(SpecError, match="no spec at"):
        Spec.load(tmp_path)
    bad = tmp_path / "spec.json"
    bad.write_text("{not json")
    with pytest.raises(SpecError, match=str(bad)):
        Spec.load(bad)
    bad.write_text(json.dumps({"labels": ["a", "b"], "input_size": [8, 8], "colour": []}))
    with pytest.raises(SpecError, match="unknown keys"):
        Spec.load(bad)


def test_save_is_atomic_and_leaves_no_temp_file(tmp_path):
    make().save(tmp_path / "s.json")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.json"]


def test_parse_size_names_the_parameter():
    from edge.artifact import parse_size
    assert parse_size([64, "96"], name="image_size") == (64, 96)
    with pytest.raises(ValueError, match=r"input_size: expected \(height, width\), got 64"):
        parse_size(64, name="input_size")
    with pytest.raises(ValueError, match="image_size: expected positive"):
        parse_size((0, 8), name="image_size")
