import contextlib
import json
import sys
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
import urllib.request

import cv2
import numpy as np
import pytest

from edge.loop import Loop
from edge.segmenter import Segmenter
from edge.serve import BOUNDARY, PreviewServer, parse_address
from edge_helpers import stripes_frame

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
# RGB colours the overlay paints at alpha 1 for the stripes (VOC palette classes 1 and 2).
GREEN_CLASS, BLUE_CLASS = (128, 0, 0), (0, 128, 0)


class EndlessCamera:
    """A live source of stripe frames that runs until the loop stops."""

    live = True
    fps = None
    name = "endless camera"

    def __init__(self, height=240, width=320):
        self.frame = stripes_frame(height, width)

    def open(self):
        pass

    def read(self):
        time.sleep(0.01)
        return self.frame.copy()

    def close(self):
        pass


def read_mjpeg_frame(url, timeout=10.0):
    """The first JPEG of an MJPEG stream, decoded (BGR), and the response's content type."""
    with urllib.request.urlopen(url, timeout=timeout) as response:
        content_type = response.headers["Content-Type"]
        boundary = response.readline().strip()
        assert boundary == f"--{BOUNDARY}".encode()
        headers = {}
        while True:
            line = response.readline().strip()
            if not line:
                break
            key, value = line.decode().split(":", 1)
            headers[key.strip().lower()] = value.strip()
        assert headers["content-type"] == "image/jpeg"
        jpeg = response.read(int(headers["content-length"]))
    return cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR), content_type


@contextlib.contextmanager
def serving(model, camera, about=None):
    """A loop feeding a preview server on a free port, in a background thread, until at least 3 frames went out."""
    server = PreviewServer("127.0.0.1", 0, about=about)
    loop = Loop(Segmenter.from_file(model), camera, alpha=1.0, server=server)
    thread = threading.Thread(target=loop.run, kwargs={"handle_signals": False}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while loop.stats.frames < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield loop, server
    finally:
        loop.stop()
        thread.join(timeout=10)
        server.close()


@pytest.fixture
def running_loop(tiny_models):
    with serving(tiny_models.uint8, EndlessCamera()) as (loop, server):
        yield loop, server


def test_parse_address_defaults_to_localhost():
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address("0.0.0.0:9000") == ("0.0.0.0", 9000)
    with pytest.raises(ValueError, match="HOST:PORT"):
        parse_address("localhost:http")
    with pytest.raises(ValueError, match="0..65535"):
        parse_address("70000")


def test_page_stats_and_mjpeg_stream_over_http(running_loop):
    loop, server = running_loop
    assert server.address[0] == "127.0.0.1"
    with urllib.request.urlopen(server.url, timeout=10) as response:
        page = response.read().decode()
    assert 'src="/stream.mjpg"' in page and "/stats.json" in page
    frame, content_type = read_mjpeg_frame(server.url + "stream.mjpg")
    assert content_type == f"multipart/x-mixed-replace; boundary={BOUNDARY}"
    assert frame.shape == (240, 320, 3)
    # The overlay, not the raw frame: the blue stripe shows class 2's colour.
    patch = frame[-30:-10, -60:-20].reshape(-1, 3).mean(axis=0)
    assert np.abs(patch - np.array(BLUE_CLASS[::-1])).max() < 25
    deadline = time.monotonic() + 10
    stats = {}
    while "fps" not in stats and time.monotonic() < deadline:
        with urllib.request.urlopen(server.url + "stats.json", timeout=10) as response:
            stats = json.loads(response.read())
        time.sleep(0.2)
    assert stats["frames"] > 0 and "invoke" in stats["stages_ms"]


def test_a_browser_that_disconnects_does_not_stop_the_loop(running_loop):
    loop, server = running_loop
    host, port = server.address
    for _ in range(3):
        client = socket.create_connection((host, port), timeout=5)
        client.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
        assert client.recv(64).startswith(b"HTTP/1.1 200")
        client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        client.close()  # abrupt reset while frames are being pushed
    before = loop.stats.frames
    deadline = time.monotonic() + 10
    while server.disconnects < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.disconnects >= 1
    time.sleep(0.5)
    assert loop.stats.frames > before and not loop.stop_event.is_set()
    frame, _ = read_mjpeg_frame(server.url + "stream.mjpg")  # and it still serves new clients
    assert frame is not None


def test_preview_shows_the_stats_beside_the_stream_in_headless_chromium(tiny_models, tmp_path):
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed, and CI must run the browser test (apt-get install chromium)")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    about = {"model": "deeplabv3plus_mobilenetv2_int8.tflite (513x513 uint8, 21 classes)",
             "runtime": "ai_edge_litert on CPU, threads 4, XNNPACK"}  # as long as a real model's names are
    shot = tmp_path / "preview.png"
    with serving(tiny_models.uint8, EndlessCamera(480, 640), about) as (loop, server):  # a 640x480 camera
        deadline = time.monotonic() + 20
        while "fps" not in server.stats() and time.monotonic() < deadline:  # the page's first poll shows them
            time.sleep(0.1)
        command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                   "--disable-background-networking", "--disable-component-update", "--disable-sync",
                   "--hide-scrollbars", "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}",
                   f"--screenshot={shot}", "--window-size=1200,700", "--timeout=10000", server.url]
        # 10 s before the screenshot: with both cores busy, 4 s once caught the page before its first stats poll.
        done = subprocess.run(command, capture_output=True, text=True, timeout=90)
        assert shot.exists(), done.stderr[-2000:]
        assert loop.stats.frames > 3
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (700, 1200)
    rgb = image[..., ::-1].astype(int)

    def where(color):
        return (np.abs(rgb - np.array(color)).max(axis=-1) < 25)

    # Both overlay colours fill a visible part of the page: the stream rendered, not a blank page.
    stream = where(GREEN_CLASS) | where(BLUE_CLASS)
    assert where(GREEN_CLASS).mean() > 0.01 and where(BLUE_CLASS).mean() > 0.01
    rows, cols = np.nonzero(stream)
    right, bottom = cols.max(), rows.max()
    # The table's text (light grey on the page's #111) sits to the right of the stream, within the window,
    # and none of it wrapped below the stream.
    text = (rgb.min(axis=-1) > 140) & ~stream
    beside = text[:bottom, right + 8:]
    assert beside.sum() > 500, beside.sum()
    text_rows = np.flatnonzero(beside.any(axis=1))
    assert text_rows.max() - text_rows.min() > 300  # a dozen rows of stats, not one line
    assert not text[bottom + 8:, :right].any()


class Publisher:
    """A preview server publishing stripe frames from a thread: an HTTP MJPEG camera for the URL source."""

    def __init__(self):
        self.server = PreviewServer("127.0.0.1", 0)
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        frame = stripes_frame(96, 128)
        while self.running:
            self.server.publish(frame.copy())
            time.sleep(0.03)

    def close(self):
        self.running = False
        self.server.close()


def test_http_stream_source_then_disconnect_exits_cleanly_with_recording(tiny_models, tmp_path):
    camera = Publisher()
    url = camera.server.url + "stream.mjpg"
    record, stats_path = tmp_path / "rec.avi", tmp_path / "s.jsonl"
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = subprocess.Popen(
        [sys.executable, "-m", "edge", "--model", tiny_models.uint8, "--source", url, "--no-display",
         "--record", str(record), "--stats-json", str(stats_path), "--reconnect-seconds", "1.5"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (stats_path.exists() and stats_path.stat().st_size):
            time.sleep(0.1)
    finally:
        camera.close()  # the camera goes away mid-stream
    out, err = process.communicate(timeout=60)
    assert process.returncode == 3, err[-2000:]
    assert "reconnecting" in err and "gave up" in err
    final = json.loads(stats_path.read_text().splitlines()[-1])
    assert final["reason"] == "source_lost" and final["frames"] > 0
    capture = cv2.VideoCapture(str(record))
    frames = 0
    while capture.read()[0]:
        frames += 1
    assert frames == final["recorded_frames"] == final["frames"]


@contextlib.contextmanager
def lingering_edge(model, tmp_path):
    """``python -m edge --serve`` on a 3-frame clip, after its last frame (the page stays up); yields (process, url)."""
    from edge_helpers import write_video

    video = write_video(str(tmp_path / "clip.avi"), frames=3, height=240, width=320, fps=10.0)
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    process = subprocess.Popen(
        [sys.executable, "-m", "edge", "--model", model, "--source", video, "--no-display", "--serve", "127.0.0.1:0"],
        cwd=root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        while not lines or "stays up until Ctrl-C" not in lines[-1]:
            lines.append(process.stdout.readline())
            assert lines[-1], "".join(lines) + process.communicate(timeout=30)[1][-2000:]  # it exited instead
        url = next(line.split()[1] for line in lines if line.startswith("preview: http"))
        yield process, url
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate(timeout=30)


def test_serve_keeps_the_page_up_after_the_last_frame_until_ctrl_c(tiny_models, tmp_path):
    with lingering_edge(tiny_models.artifact, tmp_path) as (process, url):
        with urllib.request.urlopen(url + "stats.json", timeout=10) as response:
            stats = json.loads(response.read())
        assert stats["final"] is True and stats["frames"] == 3 and stats["reason"] == "end_of_stream"
        assert stats["model"] == "artifact.tflite (24x32 uint8, 3 classes)"
        assert stats["runtime"].startswith("ai_edge_litert on CPU")
        frame, _ = read_mjpeg_frame(url + "stream.mjpg")  # the last frame, still served
        assert frame.shape == (240, 320, 3)
        time.sleep(0.5)
        assert process.poll() is None
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
        assert process.returncode == 0, err[-2000:]
        assert "Traceback" not in err
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=5)


@pytest.mark.slow
def test_the_stats_panel_reads_as_a_table_in_chromium(tiny_models, tmp_path):
    """Slow: headless Chromium renders the preview page of a lingering edge session (seconds to start); it
    shares the session's ``tiny_models``."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    with lingering_edge(tiny_models.artifact, tmp_path) as (process, url):
        command = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                   "--disable-dev-shm-usage", f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=3000",
                   "--timeout=5000", "--dump-dom", url]
        dom = subprocess.run(command, capture_output=True, text=True, timeout=90).stdout
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=30)
    table = dom[dom.index('<table id="stats">'):dom.index("</table>")]
    cells = dict(re.findall(r"<th>([^<]*)</th><td>([^<]*)</td>", table))
    assert '<caption id="status">finished (end of stream)</caption>' in table, table
    assert cells["model"] == "artifact.tflite (24x32 uint8, 3 classes)"
    assert cells["runtime"].startswith("ai_edge_litert on CPU") and cells["frames"] == "3"
    assert float(cells["FPS (whole run)"]) > 0
    for stage in ("capture", "preprocess", "invoke", "postprocess", "render"):
        assert re.fullmatch(r"\d+\.\d ms", cells[stage]), (stage, cells)
    assert "{" not in table and "time" not in cells  # no JSON, no Unix timestamp
