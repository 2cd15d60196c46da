"""What the camera loop shows and writes is what ``Segmenter.segment`` computes, and ``stream()`` hands it over.

The native-head colour models of tests/edge_helpers.py (output at stride 4, so ``exact`` and ``nearest`` differ) run
on clips and stills whose edges fall inside the output's blocks; the masks ``--masks`` writes are read back with
Pillow (an indexed PNG: its values are the ids).
"""
import io
import json
import os
import threading

import cv2
import numpy as np
import pytest
from PIL import Image

from edge import cli, stream, visualize
from edge.segmenter import Segmenter
from edge.sinks import indexed_png
from edge.smoothing import Smoother
from edge_helpers import read_video, spec_for_native

LABELS = ("background", "green", "blue")  # class 0 is the background: left untinted
SIZE = (180, 250)  # frames: height, width (the model's input is 26x30: neither axis a multiple of the output's)


def native_model(native_models, folder):
    """The uint8 native-head model with a spec beside it (stride 4, alignment "stride", our labels)."""
    model = folder / "native.tflite"
    model.write_bytes(open(native_models.uint8, "rb").read())
    spec_for_native(labels=LABELS, output_alignment="stride").save(folder / "native.spec.json")
    return str(model)


def scene(i: int) -> np.ndarray:
    """Frame ``i`` of a clip: green and blue regions with a diagonal edge and a moving block, on red."""
    height, width = SIZE
    frame = np.zeros((height, width, 3), np.uint8)
    frame[:] = (0, 0, 255)
    ys, xs = np.mgrid[0:height, 0:width] / 2.5  # drawn on a 72x100 grid, scaled up
    frame[xs + ys // 2 > 45 + 3 * i] = (0, 255, 0)
    frame[xs - ys > 55 - 2 * i] = (255, 0, 0)
    frame[(ys >= 10 + i) & (ys < 31 + i) & (xs >= 7 + 2 * i) & (xs < 23 + 2 * i)] = (255, 40, 0)
    return frame


def write_clip(path, frames: int) -> str:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, SIZE[::-1])
    for i in range(frames):
        writer.write(scene(i))
    writer.release()
    return str(path)


def read_mask(path) -> tuple[np.ndarray, list]:
    image = Image.open(path)
    assert image.mode == "P", (path, image.mode)
    return np.asarray(image), image.getpalette()


def masks_of(folder) -> dict:
    return {name: read_mask(os.path.join(folder, name))[0] for name in sorted(os.listdir(folder))}


def run(argv) -> int:
    try:
        return cli.main(argv)
    except SystemExit as stop:
        return stop.code


def test_the_command_lines_upsample_choices_are_the_segmenters():
    from edge.upsample import Upsample

    assert cli.UPSAMPLE_CHOICES == tuple(mode.value for mode in Upsample)


def test_the_indexed_png_holds_ids_and_the_specs_palette():
    ids = np.random.default_rng(0).integers(0, 3, (37, 53)).astype(np.uint8)
    colors = ((0, 0, 0), (128, 0, 0), (0, 128, 0))
    values, palette = read_mask(io.BytesIO(indexed_png(ids, colors)))
    np.testing.assert_array_equal(values, ids)
    assert palette[:9] == [0, 0, 0, 128, 0, 0, 0, 128, 0]
    ids[0, 0] = 7  # an id without a colour: the palette grows (black), so the file stays valid
    values, palette = read_mask(io.BytesIO(indexed_png(ids, colors)))
    assert values[0, 0] == 7 and len(palette) >= 24 and palette[21:24] == [0, 0, 0]
    with pytest.raises(ValueError, match="uint8"):
        indexed_png(ids.astype(np.int32), colors)


def test_masks_of_a_clip_and_a_still_are_segment_with_smoothing_off_and_the_smoothed_decision_with_it(
        native_models, tmp_path):
    model = native_model(native_models, tmp_path)
    seg = Segmenter.from_file(model)
    clip = write_clip(tmp_path / "clip.avi", 6)
    frames = read_video(clip)  # decoded as the loop decodes them
    still = tmp_path / "still.png"
    cv2.imwrite(str(still), scene(3))
    for source, expected in ((clip, frames), (str(still), [scene(3)])):
        out = tmp_path / f"masks-{os.path.basename(source)}"
        out.mkdir()
        assert run(["--model", model, "--source", source, "--no-display", "--smooth", "0", "--masks", str(out)]) == 0
        masks = masks_of(out)
        assert list(masks) == [f"{i:06d}.png" for i in range(len(expected))]
        for mask, frame in zip(masks.values(), expected):
            np.testing.assert_array_equal(mask, seg.segment(frame))  # every pixel
    # The exact map is not the output's blocks: on these frames nearest differs along the edges.
    nearest = Segmenter.from_file(model, upsample="nearest")
    assert np.mean([(nearest.segment(f) != seg.segment(f)).mean() for f in frames]) > 0.01

    out = tmp_path / "smoothed"
    out.mkdir()
    assert run(["--model", model, "--source", clip, "--no-display", "--smooth", "0.6", "--masks", str(out),
                "--masks-every", "2"]) == 0
    smoother, expected = Smoother(0.6), []
    for frame in frames:
        tensor, geometry = seg.preprocess(frame)
        expected.append(seg.postprocess(smoother.update(seg.invoke(tensor)), geometry))
    masks = masks_of(out)
    assert list(masks) == ["000000.png", "000002.png", "000004.png"]
    for name, mask in masks.items():
        np.testing.assert_array_equal(mask, expected[int(name[:6])])
    assert any(not np.array_equal(mask, seg.segment(frames[int(name[:6])])) for name, mask in masks.items())


def test_the_recording_shows_the_written_masks_colours_and_the_background_untinted(native_models, tmp_path):
    model = native_model(native_models, tmp_path)
    seg = Segmenter.from_file(model)
    clip, record, out, stats = write_clip(tmp_path / "clip.avi", 5), tmp_path / "rec.avi", tmp_path / "m", \
        tmp_path / "s.jsonl"
    out.mkdir()
    assert run(["--model", model, "--source", clip, "--no-display", "--smooth", "0", "--alpha", "1",
                "--record", str(record), "--masks", str(out), "--stats-json", str(stats)]) == 0
    frames, recorded, masks = read_video(clip), read_video(record), list(masks_of(out).values())
    final = json.loads(stats.read_text().splitlines()[-1])
    assert len(recorded) == len(masks) == final["recorded_frames"] == final["masks_written"] == 5
    table = visualize.palette_bgr(seg.spec.colors).astype(int)
    height, width = SIZE
    covered = np.zeros(SIZE, bool)  # the stats panel (with every stage) and the legend
    top, left, bottom, right = visualize.stats_box(
        frames[0].shape, visualize.stats_lines(fps=99.9, stages_ms={s: 99.9 for s in visualize.STAGES}))[0]
    covered[top:bottom, left:right] = True
    rows = visualize.legend_layout(frames[0].shape, LABELS, [1, 2])
    covered[:rows[-1][1][2] + 4, rows[0][1][1] - 4:] = True
    blocks = Segmenter.from_file(model, upsample="nearest")
    for frame, shown, mask in zip(frames, recorded, masks):
        expected = np.where((mask == 0)[..., None], frame, table[mask])  # background: the frame itself
        near = np.abs(shown.astype(int) - expected).max(axis=-1) <= 60  # MJPG is lossy at the edges
        assert near[~covered].mean() > 0.97, near[~covered].mean()
        # Where the blocky map would have drawn another colour, the recording shows the mask's.
        other = blocks.segment(frame)
        differs = (other != mask) & ~covered & (table[other] != table[mask]).any(axis=-1)
        if differs.sum() > 20:
            assert near[differs].mean() > 0.8, near[differs].mean()
    assert set(final["class_share"]) <= set(LABELS) and abs(sum(final["class_share"].values()) - 1) < 0.01


def test_stream_yields_the_class_maps_the_cli_writes(native_models, tmp_path):
    model = native_model(native_models, tmp_path)
    clip, out = write_clip(tmp_path / "clip.avi", 4), tmp_path / "m"
    out.mkdir()
    assert run(["--model", model, "--source", clip, "--no-display", "--masks", str(out)]) == 0  # smoothing on
    results = list(stream(model, clip))
    assert [r.index for r in results] == [0, 1, 2, 3]
    for result, mask in zip(results, masks_of(out).values()):
        np.testing.assert_array_equal(result.class_map, mask)
        assert result.frame.shape == (*SIZE, 3) and result.class_map.shape == SIZE
        assert result.scores.shape == (7, 8, 3) and result.scores.dtype == np.float32  # the native head's
        assert {"capture", "preprocess", "invoke", "postprocess"} <= set(result.timings)
        assert result.overlay.shape == result.frame.shape
    # scores are those the class map is decided on (smoothed, dequantized)
    assert (np.argmax(results[0].scores, -1) == np.argmax(results[0].raw[0], -1)).all()


class Camera:
    """A live source of frames that never ends; ``closed`` says whether its owner closed it."""

    live, fps, name = True, None, "test camera"

    def __init__(self):
        self.closed = False
        self.count = 0

    def open(self):
        pass

    def read(self):
        self.count += 1
        return scene(self.count % 6)

    def close(self):
        self.closed = True


def loop_threads():
    return [t for t in threading.enumerate() if t.name in ("capture", "inference") and t.is_alive()]


@pytest.mark.parametrize("leave", ["break", "exception", "ctrl-c"])
def test_leaving_the_loop_after_3_frames_stops_the_threads_and_closes_the_recording(native_models, tmp_path,
                                                                                      leave):
    model = native_model(native_models, tmp_path)
    record, camera = tmp_path / "rec.mp4", Camera()
    frames = stream(model, camera, record=record, stats_json=str(tmp_path / "s.jsonl"))
    seen = []
    try:
        for result in frames:
            seen.append(result.class_map)
            if len(seen) == 3:
                if leave == "break":
                    break
                raise KeyboardInterrupt if leave == "ctrl-c" else RuntimeError("the caller's code failed")
    except (KeyboardInterrupt, RuntimeError):
        assert leave != "break"
    assert len(seen) == 3 and not loop_threads()
    assert frames.outcome.frames == 3 and frames.outcome.stats["recorded_frames"] == 3
    assert frames.outcome.reason == "closed"
    assert len(read_video(record)) == 3  # closed, so playable
    assert not camera.closed  # the caller's own source stays the caller's to close
    assert json.loads((tmp_path / "s.jsonl").read_text().splitlines()[-1])["final"] is True


def test_a_source_stream_opened_is_closed_by_it(native_models, tmp_path, monkeypatch):
    from edge import sources

    model = native_model(native_models, tmp_path)
    closed = []
    monkeypatch.setattr(sources.VideoCaptureSource, "close", lambda self: closed.append(self.name))
    for result in stream(model, write_clip(tmp_path / "clip.avi", 3)):
        break
    assert closed and not loop_threads()
    with pytest.raises(ValueError, match="threads and upsample configure a model path"):
        stream(Segmenter.from_file(model), write_clip(tmp_path / "c2.avi", 1), threads=2)


@pytest.mark.parametrize("problem", ["missing", "a file", "not writable"])
def test_a_bad_masks_folder_is_one_line_exit_2_before_the_model_loads(tmp_path, capsys, monkeypatch, problem):
    folder = tmp_path / "masks"
    if problem == "a file":
        folder.write_text("not a folder")
    elif problem == "not writable":
        folder.mkdir()
        real = os.access
        monkeypatch.setattr(os, "access", lambda p, mode: False if os.fspath(p) == str(folder) else real(p, mode))
    code = run(["--model", str(tmp_path / "not-loaded.tflite"), "--source", "0", "--no-display",
                "--masks", str(folder)])
    err = capsys.readouterr().err
    says = {"missing": f"masks: '{folder}' does not exist; create the folder first",
            "a file": f"masks: '{folder}' is a file, not a folder",
            "not writable": f"masks: the folder '{folder}' is not writable"}[problem]
    assert code == 2 and says in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err  # one line; the model never loaded
    assert sorted(p.name for p in tmp_path.iterdir()) == ([] if problem == "missing" else ["masks"])
    assert problem != "not writable" or not any(folder.iterdir())


def test_a_recording_of_photos_of_two_sizes_keeps_both(native_models, tmp_path, caplog):
    model = native_model(native_models, tmp_path)
    photos = tmp_path / "photos"
    photos.mkdir()
    cv2.imwrite(str(photos / "a.png"), scene(0))  # 250x180: the recording's size
    cv2.imwrite(str(photos / "b.png"), cv2.resize(scene(4), (120, 180)))  # taller than wide
    record = tmp_path / "rec.mp4"
    with caplog.at_level("INFO", logger="edge"):
        assert run(["--model", model, "--source", str(photos), "--no-display", "--record", str(record)]) == 0
    assert "recorded 2 frames" in caplog.text and "letterboxed" in caplog.text
    recorded = read_video(record)
    assert len(recorded) == 2 and recorded[1].shape == (*SIZE, 3)
    # Letterboxed: 180 rows into 180, so 120 columns of content in the middle and black bars beside it.
    assert recorded[1][:, :55].max() < 40 and recorded[1][:, -55:].max() < 40
    assert recorded[1][:, 70:180].mean() > 40
