"""--smooth: each frame's scores averaged with the previous frames' before the argmax (edge.smoothing, edge.loop).

The tiny colour models (tests/edge_helpers.py) score class c by colour channel c, so a frame whose red and green
are close sits on the red/green boundary and camera noise flips it; a red square on green is a shape to follow.
"""
import json
import time

import cv2
import numpy as np
import pytest

from edge import cli
from edge.loop import Loop
from edge.segmenter import Segmenter
from edge.smoothing import DEFAULT_SMOOTH, Smoother, SmoothingError
from edge.sources import ImageSource, SourceError

H, W = 48, 64
NEAR_TIE = (0, 120, 121)  # BGR: red 121 against green 120


def _noisy(rng, sigma, base=NEAR_TIE, count=40):
    frame = np.full((H, W, 3), base, np.float32)
    return [np.clip(frame + rng.normal(0, sigma, frame.shape), 0, 255).astype(np.uint8) for _ in range(count)]


def _maps(seg, frames, weight):
    smoother = Smoother(weight) if weight else None
    maps = []
    for frame in frames:
        tensor, geometry = seg.preprocess(frame)
        raw = seg.invoke(tensor)
        maps.append(seg.postprocess(raw if smoother is None else smoother.update(raw), geometry))
    return maps


def _changes(maps):
    return float(np.mean([np.mean(a != b) for a, b in zip(maps, maps[1:])]))


@pytest.mark.parametrize("model", ["native float32", "native uint8", "full int8", "full float32"])
def test_smoothing_reduces_class_changes_on_a_noisy_static_clip(model, tiny_models, native_models):
    path = {"native float32": native_models.float32, "native uint8": native_models.uint8,
            "full int8": tiny_models.int8, "full float32": tiny_models.float32}[model]
    seg = Segmenter.from_file(path)
    # A native score averages a 4x4 block of input pixels, which averages the noise away: a closer tie there.
    base = NEAR_TIE if model.startswith("native") else (0, 120, 128)
    frames = _noisy(np.random.default_rng(0), sigma=8, base=base)
    plain, smoothed = _changes(_maps(seg, frames, 0.0)), _changes(_maps(seg, frames, 0.5))
    assert plain > 0.02, plain  # the clip flickers without smoothing
    assert smoothed <= 0.6 * plain, (plain, smoothed)


def _square_frames(positions):
    frames = []
    for x in positions:
        frame = np.full((H, W, 3), (0, 255, 0), np.uint8)  # green
        frame[12:36, x:x + 16] = (0, 0, 255)  # a red square
        frames.append(frame)
    return frames


def test_smoothing_follows_a_moving_shape_and_settles_when_it_stops(native_models):
    seg = Segmenter.from_file(native_models.uint8)
    positions = list(range(0, 44, 4)) + [44] * 4  # moves 4 px a frame, then stays
    frames = _square_frames(positions)
    plain, smoothed = _maps(seg, frames, 0.0), _maps(seg, frames, 0.5)
    def centre(class_map):
        return np.nonzero(class_map == 0)[1].mean()  # the red square's mean column

    for t in range(1, len(positions)):
        # The smoothed square trails the unsmoothed one by at most two frames of motion, and does not fade away.
        assert 0 <= centre(plain[t]) - centre(smoothed[t]) <= 2 * 4 + 1, t
        assert np.sum(smoothed[t] == 0) > 0.6 * np.sum(plain[t] == 0), t
    assert np.mean(smoothed[-1] != plain[-1]) < 0.005  # settled (to a few edge pixels) while it stood still


class _Frames:
    """A source of ``frames``: ``continuous`` like a video file, or not, like the files of an image folder."""

    live = False
    fps = None
    name = "frames"

    def __init__(self, frames, *, continuous):
        self.frames, self.continuous = list(frames), continuous

    def open(self):
        pass

    def read(self):
        return self.frames.pop(0) if self.frames else None

    def close(self):
        pass


class _Recording(Smoother):
    """A smoother that keeps, for every frame, the classes of its raw output and of the average it returned."""

    def __init__(self, weight):
        super().__init__(weight)
        self.pairs = []

    def update(self, raw, *, key=None):
        average = super().update(raw, key=key)
        self.pairs.append((np.argmax(raw[0], -1), np.argmax(average[0], -1)))
        return average


def _blended_frames(seg, source):
    """How many frames showed classes that were not their own output's (the average still held other frames)."""
    smoother = _Recording(0.9)
    Loop(seg, source, smoother=smoother).run(handle_signals=False)
    assert len(smoother.pairs) == 6
    return sum(not np.array_equal(own, shown) for own, shown in smoother.pairs)


def test_smoothing_restarts_for_each_image_file_but_not_within_a_video(native_models, tmp_path):
    seg = Segmenter.from_file(native_models.uint8)
    red, green = np.full((H, W, 3), (0, 0, 255), np.uint8), np.full((H, W, 3), (0, 255, 0), np.uint8)
    frames = [red, red, red, green, green, green]
    assert _blended_frames(seg, _Frames(frames, continuous=True)) >= 1  # a video: green arrives slowly
    assert _blended_frames(seg, _Frames(frames, continuous=False)) == 0
    paths = []
    for i, frame in enumerate(frames):
        paths.append(str(tmp_path / f"{i}.png"))
        cv2.imwrite(paths[-1], frame)
    assert ImageSource(paths, name="images").continuous is False


class _Reconnecting:
    """A live source: red frames, then it stops; reopened, it shows green frames."""

    live = True
    fps = None
    name = "camera"
    continuous = True

    def __init__(self):
        self.opens, self.left = 0, 3

    def open(self):
        self.opens += 1
        if self.opens > 2:
            raise SourceError("camera: gone for good")
        self.left = 3

    def read(self):
        time.sleep(0.05)  # a camera's pace: the loop keeps up, so no frame is dropped as stale
        if self.left <= 0:
            return None
        self.left -= 1
        colour = (0, 0, 255) if self.opens <= 1 else (0, 255, 0)
        return np.full((H, W, 3), colour, np.uint8)

    def close(self):
        pass


def test_smoothing_restarts_after_a_reconnect(native_models):
    seg = Segmenter.from_file(native_models.uint8)
    camera = _Reconnecting()
    camera.open()
    smoother = _Recording(0.9)
    result = Loop(seg, camera, smoother=smoother, reconnect_seconds=0.3).run(handle_signals=False)
    assert result.stats["reconnects"] == 1 and result.stats["smoothing"]["restarts"] == 2
    assert len(smoother.pairs) == 6 and not smoother.pairs[0][0].any() and smoother.pairs[-1][0].all()
    assert all(np.array_equal(own, shown) for own, shown in smoother.pairs)  # no red carried into green


def test_smoothing_is_refused_for_an_argmax_head_and_left_off_by_default(native_models, tmp_path, capsys, caplog):
    with pytest.raises(SmoothingError, match="class ids"):
        Smoother(0.5, kind="class_ids")
    frames = tmp_path / "frames"
    frames.mkdir()
    cv2.imwrite(str(frames / "a.png"), np.full((H, W, 3), (0, 0, 255), np.uint8))
    common = ["--model", native_models.ids, "--source", str(frames), "--no-display"]
    assert cli.main(common + ["--smooth", "0.5"]) == cli.EXIT_USAGE
    err = capsys.readouterr().err
    assert len(err.splitlines()) == 1 and "class ids" in err and "--head native" in err
    stats = tmp_path / "stats.jsonl"
    with caplog.at_level("INFO"):
        assert cli.main(common + ["--stats-json", str(stats)]) == cli.EXIT_OK
    assert "smoothing: off: the model outputs class ids" in caplog.text
    assert "smoothing" not in json.loads(stats.read_text().splitlines()[-1])
    assert cli.main(["--model", native_models.uint8, "--source", str(frames), "--no-display", "--stats-json",
                     str(stats)]) == cli.EXIT_OK
    assert f"(default: {DEFAULT_SMOOTH})" in " ".join(cli.build_parser().format_help().split())  # as --help says
    assert json.loads(stats.read_text().splitlines()[-1])["smoothing"] == {"weight": DEFAULT_SMOOTH,
                                                                           "restarts": 1}
