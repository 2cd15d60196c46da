import json
import os
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from edge.loop import Loop, Pacer, Slot
from edge.sinks import Recorder
from edge.segmenter import Segmenter
from edge.sources import ImageSource, SourceError, open_source
from edge.upsample import nearest
from edge.visualize import legend_layout, palette_bgr
from edge_helpers import read_video, run_edge, spec_for_native, stripes_frame, write_video

STAGES = {"capture", "preprocess", "invoke", "postprocess", "render"}


def read_stats(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


class FakeCamera:
    """A live source that yields ``frames`` frames, then fails; after the first reopen, ``comeback`` frames more."""

    live = True
    fps = None
    name = "fake camera"

    def __init__(self, frames, *, comeback=0, interval=0.0, frame=None):
        self.left, self.comeback, self.interval = frames, comeback, interval
        self.frame = stripes_frame() if frame is None else frame
        self.opens = 0
        self.served = 0

    def open(self):
        self.opens += 1
        if self.opens > 2 or (self.opens == 2 and not self.comeback):
            raise SourceError("fake camera: device gone")
        if self.opens == 2:
            self.left = self.comeback

    def read(self):
        if self.interval:
            time.sleep(self.interval)
        if self.left <= 0:
            return None
        self.left -= 1
        self.served += 1
        return self.frame.copy()

    def close(self):
        pass


class SlowSegmenter:
    """Wraps a segmenter and makes invoke take at least ``delay`` seconds."""

    def __init__(self, inner, delay):
        self.inner, self.delay = inner, delay
        self.spec = inner.spec

    def preprocess(self, frame):
        return self.inner.preprocess(frame)

    def invoke(self, tensor):
        time.sleep(self.delay)
        return self.inner.invoke(tensor)

    def postprocess(self, raw, geometry, **options):
        return self.inner.postprocess(raw, geometry, **options)


def test_slot_keeps_only_the_newest_when_not_blocking():
    slot = Slot()
    for i in range(5):
        slot.put(i, block=False)
    assert slot.get(timeout=0) == 4 and slot.dropped == 4
    assert slot.get(timeout=0.01) is None
    slot.put("last", block=False)
    slot.close()
    assert slot.get() == "last"  # drained before reporting closed
    assert slot.get() is not None and slot.put("x", block=True) is False


def test_headless_loop_on_a_video_file(tiny_models, tmp_path):
    video = write_video(str(tmp_path / "in.avi"), frames=12, height=240, width=320)
    stats_path, record = str(tmp_path / "stats.jsonl"), str(tmp_path / "out.avi")
    seg = Segmenter.from_file(tiny_models.uint8)
    source = open_source(video)
    assert source.live is False
    loop = Loop(seg, source, alpha=1.0, recorder=Recorder(record, fps=10), stats_json=stats_path)
    result = loop.run(handle_signals=False)
    assert result.frames == 12 and result.reason == "end_of_stream"
    final = read_stats(stats_path)[-1]
    assert final["final"] is True and final["frames"] == 12 and final["recorded_frames"] == 12
    assert final["dropped"] == 0  # a file is read in full, never dropped
    assert STAGES <= set(final["stages_ms"]) and final["fps"] > 0
    recorded = read_video(record)
    assert len(recorded) == 12
    # alpha 1: the blue stripe is drawn in class 2's colour (VOC palette: RGB (0, 128, 0)), not blue.
    lower_right = recorded[5][-20:, -40:-10].reshape(-1, 3).mean(axis=0)
    assert seg.spec.colors[2] == (0, 128, 0)
    assert np.abs(lower_right - np.array([0, 128, 0])).max() < 20


def test_max_frames_and_image_folder(tiny_models, tmp_path):
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(4):
        cv2.imwrite(str(folder / f"{i}.png"), stripes_frame())
    (folder / "notes.txt").write_text("skip me")
    seg = Segmenter.from_file(tiny_models.int8)
    source = open_source(str(folder))
    assert isinstance(source, ImageSource) and len(source.paths) == 4
    result = Loop(seg, source, max_frames=3).run(handle_signals=False)
    assert result.frames == 3 and result.reason == "max_frames"
    result = Loop(seg, open_source(str(folder / "*.png"))).run(handle_signals=False)
    assert result.frames == 4 and result.reason == "end_of_stream"


def test_live_source_drops_stale_frames(tiny_models):
    camera = FakeCamera(60, interval=0.002)
    seg = SlowSegmenter(Segmenter.from_file(tiny_models.uint8), delay=0.03)
    result = Loop(seg, camera, reconnect_seconds=0).run(handle_signals=False)
    assert result.reason == "source_lost"
    assert result.stats["dropped"] > 0
    assert result.frames + result.stats["dropped"] <= camera.served
    assert result.frames < camera.served


def test_disconnect_reconnects_then_gives_up_with_recording_intact(tiny_models, tmp_path):
    seg = Segmenter.from_file(tiny_models.uint8)
    camera = FakeCamera(5, comeback=4)  # back once, then gone for good
    record = str(tmp_path / "rec.avi")
    start = time.monotonic()
    result = Loop(seg, camera, recorder=Recorder(record, fps=10), reconnect_seconds=0.6).run(handle_signals=False)
    took = time.monotonic() - start
    assert result.reason == "source_lost" and result.stats["reconnects"] == 1
    assert camera.opens >= 3  # the first reopen succeeds, the later ones fail with backoff
    assert 0.5 < took < 5
    # A live source drops stale frames; every frame served was either shown (and recorded) or dropped.
    assert camera.served == 9 and result.frames + result.stats["dropped"] == 9
    assert result.frames >= 1 and len(read_video(record)) == result.frames


def test_picamera2_source_with_a_stand_in_module(tiny_models, monkeypatch):
    import importlib.machinery
    import types

    class Picamera2:
        def create_preview_configuration(self, main):
            self.size = main["size"]
            return main

        def configure(self, config):
            assert config["format"] == "RGB888"

        def start(self):
            pass

        def capture_array(self, stream):
            w, h = self.size
            return np.dstack([stripes_frame(h, w), np.full((h, w, 1), 255, np.uint8)])  # XBGR-like 4 channels

        def stop(self):
            pass

        def close(self):
            pass

    module = types.ModuleType("picamera2")
    module.__spec__ = importlib.machinery.ModuleSpec("picamera2", None)
    module.Picamera2 = Picamera2
    monkeypatch.setitem(sys.modules, "picamera2", module)
    source = open_source("picamera2", width=64, height=48)
    assert source.live and source.read().shape == (48, 64, 3)
    result = Loop(Segmenter.from_file(tiny_models.uint8), source, max_frames=4).run(handle_signals=False)
    assert result.frames == 4 and result.reason == "max_frames"
    source.close()


@pytest.mark.slow
def test_opencv_runs_single_threaded_during_the_loop_and_is_restored(tiny_models):
    """Slow: 10 s, the default --reconnect-seconds the loop waits once the fake camera has dropped its last
    frames; shares ``tiny_models``."""
    class ThreadCountingSegmenter(SlowSegmenter):
        def postprocess(self, raw, geometry, **options):
            seen.append(cv2.getNumThreads())
            return super().postprocess(raw, geometry, **options)

    seen = []
    before = cv2.getNumThreads()
    cv2.setNumThreads(3)
    try:
        seg = ThreadCountingSegmenter(Segmenter.from_file(tiny_models.uint8), 0.0)
        Loop(seg, FakeCamera(5), max_frames=3).run(handle_signals=False)
        assert seen and set(seen) == {1}
        assert cv2.getNumThreads() == 3
        with pytest.raises(ValueError, match="opencv_threads"):
            Loop(seg, FakeCamera(1), opencv_threads=0)
    finally:
        cv2.setNumThreads(before)


def test_keys_pause_snapshot_and_quit(tiny_models, tmp_path):
    class ScriptedWindow:
        def __init__(self, keys):
            self.keys, self.shown = list(keys), 0

        def show(self, frame):
            self.shown += 1

        def poll(self, wait_ms=1):
            return self.keys.pop(0) if self.keys else 255

        def close(self):
            pass

    window = ScriptedWindow([255, ord(" "), ord("s"), ord(" "), ord("s"), ord("q")])
    loop = Loop(Segmenter.from_file(tiny_models.uint8), FakeCamera(1000), window=window,
                snapshot_dir=str(tmp_path))
    result = loop.run(handle_signals=False)
    assert result.reason == "quit"
    assert len(loop.snapshots) == 2 and all(os.path.exists(p) for p in loop.snapshots)
    snap = cv2.imread(loop.snapshots[0])
    assert snap.shape == stripes_frame().shape


def test_cli_headless_run_prints_runtime_and_writes_stats(tiny_models, tmp_path):
    video = write_video(str(tmp_path / "in.avi"), frames=8)
    stats_path = str(tmp_path / "stats.jsonl")
    done = run_edge("--model", tiny_models.int8, "--source", video, "--no-display", "--max-frames", "6",
                    "--stats-json", stats_path, "--threads", "1", "--record", str(tmp_path / "out.mp4"))
    assert done.returncode == 0, done.stderr
    assert "interpreter: runtime ai_edge_litert on CPU, threads 1" in done.stdout
    final = read_stats(stats_path)[-1]
    assert final["frames"] == 6 and final["reason"] == "max_frames"
    assert len(read_video(tmp_path / "out.mp4")) == 6


def test_neither_tensorflow_nor_kerasseg_after_a_full_run(tiny_models, tmp_path):
    video = write_video(str(tmp_path / "in.avi"), frames=3)
    code = (
        "import sys\n"
        "from edge.cli import main\n"
        f"rc = main(['--model', {tiny_models.artifact!r}, '--source', {video!r}, '--no-display',"
        f" '--serve', '127.0.0.1:0', '--linger', '0', '--record', {str(tmp_path / 'o.avi')!r}])\n"
        "assert 'edge.artifact._generated.tflite.NormalizationOptions' in sys.modules  # it read the metadata\n"
        "assert 'edge.artifact.writer' not in sys.modules  # and compiled no writer\n"
        "import edge.benchmark, edge.artifact\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras', 'keras', 'kerasseg'))\n"
        "print('RC', rc, 'BAD', bad)\n")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True, timeout=120)
    assert "RC 0 BAD []" in done.stdout, done.stdout + done.stderr


@pytest.mark.parametrize("source,needle", [
    ("missing.mp4", "no such file, folder, camera index or URL"),
    ("fake.mp4", "not a video OpenCV can decode"),
    ("7", "/dev/video7"),
    ("broken.png", "cannot read it as an image"),
    ("empty_dir", "no images found"),
])
def test_bad_sources_exit_non_zero_with_a_message(tiny_models, tmp_path, source, needle):
    (tmp_path / "fake.mp4").write_text("not a video")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG broken")
    (tmp_path / "empty_dir").mkdir()
    target = source if source.isdigit() else str(tmp_path / source)
    with pytest.raises(SourceError, match=needle):
        open_source(target)
    done = run_edge("--model", tiny_models.uint8, "--source", target, "--no-display")
    assert done.returncode == 1 and needle in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_bad_model_and_display_exit_non_zero(tiny_models, tmp_path):
    """Slow: five ``python -m edge`` subprocesses, each importing OpenCV and the interpreter; they share the
    session's ``tiny_models``."""
    video = write_video(str(tmp_path / "in.avi"), frames=2)
    done = run_edge("--model", tiny_models.classifier, "--source", video, "--no-display")
    assert done.returncode == 1 and "not a segmentation model" in done.stderr
    done = run_edge("--model", str(tmp_path / "nope.tflite"), "--source", video, "--no-display")
    assert done.returncode == 1 and "no such file" in done.stderr
    done = run_edge("--model", tiny_models.uint8, "--source", video, "--edgetpu")
    assert done.returncode == 1 and "libedgetpu.so.1" in done.stderr
    done = run_edge("--model", tiny_models.uint8, "--source", video)  # a window, on headless OpenCV
    assert done.returncode == 1 and "--no-display" in done.stderr
    done = run_edge("--model", tiny_models.uint8, "--source", video, "--alpha", "2", "--no-display")
    assert done.returncode == 1 and "alpha" in done.stderr


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_signals_stop_cleanly_and_the_recording_plays(tiny_models, tmp_path, signum):
    """Slow: an edge session in a subprocess, slowed to 20 ms a frame until the signal lands; it shares the
    session's ``tiny_models``."""
    video = write_video(str(tmp_path / "long.avi"), frames=400)
    stats_path, record = str(tmp_path / "s.jsonl"), str(tmp_path / "rec.mp4")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    slow = ("import time, sys\n"
            "from edge import segmenter\n"
            "invoke = segmenter.Segmenter.invoke\n"
            "segmenter.Segmenter.invoke = lambda self, t: (time.sleep(0.02), invoke(self, t))[1]\n"
            "from edge.cli import main\n"
            "sys.exit(main(sys.argv[1:]))\n")
    process = subprocess.Popen(
        [sys.executable, "-c", slow, "--model", tiny_models.uint8, "--source", video, "--no-display",
         "--record", record, "--stats-json", stats_path], cwd=root, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (os.path.exists(stats_path) and os.path.getsize(stats_path)):
        time.sleep(0.1)
    process.send_signal(signum)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    final = read_stats(stats_path)[-1]
    assert final["reason"] == "signal" and 0 < final["frames"] < 400
    assert len(read_video(record)) == final["recorded_frames"] == final["frames"]


def test_a_camera_warming_up_gets_time_for_its_first_frame(tiny_models):
    class WarmingCamera(FakeCamera):
        def __init__(self):
            super().__init__(3)
            self.empty = 3

        def read(self):
            if self.empty:
                self.empty -= 1
                return None
            return super().read()

    result = Loop(Segmenter.from_file(tiny_models.uint8), WarmingCamera(), reconnect_seconds=0).run(
        handle_signals=False)
    assert result.frames + result.stats["dropped"] == 3
    silent = FakeCamera(0)
    with pytest.raises(SourceError, match="fake camera: opened, but produced no frame"):
        Loop(Segmenter.from_file(tiny_models.uint8), silent).run(handle_signals=False)


class BusySegmenter(SlowSegmenter):
    """Its invoke burns ``delay`` seconds of CPU in the calling thread."""

    def invoke(self, tensor):
        end = time.thread_time() + self.delay
        while time.thread_time() < end:
            pass
        return self.inner.invoke(tensor)


def test_stats_report_cpu_outside_invoke(tiny_models, tmp_path):
    # 40 ms of CPU in each invoke: the process spends more than that per frame, the field reports the rest.
    video = write_video(str(tmp_path / "in.avi"), frames=10)
    stats_path = str(tmp_path / "stats.jsonl")
    seg = BusySegmenter(Segmenter.from_file(tiny_models.uint8), 0.04)
    cpu = time.process_time()
    result = Loop(seg, open_source(video), stats_json=stats_path).run(handle_signals=False)
    per_frame_ms = 1e3 * (time.process_time() - cpu) / result.frames
    final = read_stats(stats_path)[-1]
    assert per_frame_ms > 40 and 0 < final["cpu_ms_outside_invoke"] < per_frame_ms - 30
    assert all("cpu_ms_outside_invoke" in record for record in read_stats(stats_path))


class Collect:
    """A preview server stand-in that keeps the frames published to it."""

    def __init__(self):
        self.frames = []

    def publish(self, frame, stats=None):
        self.frames.append(frame)

    def set_stats(self, stats):
        pass


@pytest.mark.parametrize("resize_mode", ["stretch", "letterbox"])
def test_the_loop_shows_the_segmenters_class_map_of_a_native_head(native_models, tmp_path, resize_mode):
    model = tmp_path / "native.tflite"
    model.write_bytes(open(native_models.uint8, "rb").read())
    spec_for_native(resize_mode=resize_mode, output_alignment="stride").save(tmp_path / "native.spec.json")
    seg = Segmenter.from_file(str(model))
    frame = stripes_frame(48, 70)  # stripe edges at columns 17 and 43: inside the output's 4-pixel blocks
    frame[np.tril(np.ones((48, 70), bool), -10)] = (255, 0, 0)  # and a diagonal edge of blue
    server = Collect()
    Loop(seg, FakeCamera(3, frame=frame), alpha=1.0, max_frames=1, server=server, show_stats=False).run(
        handle_signals=False)
    expected = palette_bgr(seg.spec.colors)[seg.segment(frame)]
    tensor, geometry = seg.preprocess(frame)
    blocks = nearest(seg.grid(geometry), np.argmax(seg.invoke(tensor)[0], axis=-1))  # what the loop drew before
    assert (palette_bgr(seg.spec.colors)[blocks] != expected).any(axis=-1).mean() > 0.02
    drawn = server.frames[-1]
    assert drawn.shape == frame.shape
    legend_left = min(swatch[1] for _, swatch, _ in legend_layout(frame.shape, seg.labels, [0, 1, 2])) - 4
    np.testing.assert_array_equal(drawn[:, :legend_left], expected[:, :legend_left])


def test_pacer_releases_frames_at_the_rate_and_re_anchors_after_a_stall():
    now, waits = [0.0], []

    def wait(seconds):
        waits.append(round(seconds, 6))
        now[0] += seconds

    pacer = Pacer(5.0, clock=lambda: now[0], wait=wait)
    for _ in range(3):
        pacer.pace()
    assert waits == [0.2, 0.2] and now[0] == pytest.approx(0.4)  # the first frame at once, then every 0.2 s
    now[0] += 0.05  # the frame took 50 ms to read: the next one waits only the rest
    pacer.pace()
    assert waits[-1] == 0.15
    now[0] += 2.0  # paused for 2 s: no burst of frames to catch up, the rate goes on from here
    pacer.pace()
    pacer.pace()
    assert waits[3:] == [0.2]
    with pytest.raises(ValueError, match="pace: expected a frame rate > 0, got 0"):
        Pacer(0)


def test_stats_estimate_fps_from_the_first_frames_until_a_second_has_passed():
    from edge.stats import Stats

    now = [0.0]
    stats = Stats(clock=lambda: now[0], cpu_clock=lambda: 0.0)
    now[0] = 0.1
    assert stats.on_frame() == (pytest.approx(10.0), {})  # the frame being drawn counts
    stats.add("invoke", 0.02)
    stats.frame_done()
    now[0] = 0.25
    fps, stages = stats.on_frame()
    assert fps == pytest.approx(8.0) and stages == {"invoke": 20.0}
    stats.frame_done()
    now[0] = 1.0
    record = stats.roll()
    assert record["fps"] == 2.0 and stats.on_frame() == (2.0, {"invoke": 20.0})  # then the last second's
