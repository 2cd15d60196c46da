"""A live preview in the browser: an MJPEG stream of the overlay and the current stats.

``GET /`` is a small page, ``/stream.mjpg`` the stream (multipart/x-mixed-replace),
``/frame.jpg`` the latest frame and ``/stats.json`` the latest stats, which the page shows
as a table beside the stream (FPS, ms per stage, frames, the model, the runtime, each class's share of the
frame); a narrow window puts the table below. Each
client has its own handler thread; a client that goes away only ends its own
thread, never the camera loop. Frames are JPEG-encoded once, on demand, by
whichever client asks first.
"""
from __future__ import annotations

import json
import logging
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from edge import visualize

log = logging.getLogger(__name__)

BOUNDARY = "kerassegframe"
DEFAULT_HOST = "127.0.0.1"
JPEG_QUALITY = 80
_DISCONNECTS = (BrokenPipeError, ConnectionResetError, ConnectionAbortedError, TimeoutError)

PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>kerasseg live</title>
<style>
body {{ margin: 0; background: #111; color: #eee; font: 14px system-ui, sans-serif; }}
main {{ display: grid; grid-template-columns: minmax(0, max-content) 26em; gap: 12px; padding: 12px;
        align-items: start; }}
img {{ display: block; max-width: 100%; max-height: calc(100vh - 24px); background: #000; }}
table {{ border-collapse: collapse; width: 26em; table-layout: fixed; }}
th {{ text-align: left; font-weight: normal; color: #aaa; padding: 2px 12px 2px 0; width: 9em; vertical-align: top; }}
td {{ text-align: right; font-variant-numeric: tabular-nums; overflow-wrap: anywhere; }}
caption {{ text-align: left; font-weight: bold; padding-bottom: 4px; }}
@media (max-width: 40em) {{ main {{ grid-template-columns: minmax(0, 1fr); }} }}
</style></head>
<body><main>
<img id="stream" src="/stream.mjpg" alt="live segmentation">
<table id="stats"><caption id="status">waiting for stats</caption><tbody></tbody></table>
</main>
<script>
const STAGES = {stages};
function row(body, name, value) {{
  const tr = body.insertRow(), th = document.createElement("th");
  th.textContent = name; tr.appendChild(th); tr.insertCell().textContent = value;
}}
function ms(v) {{ return v == null ? "-" : v.toFixed(1) + " ms"; }}
function show(s) {{
  const body = document.querySelector("#stats tbody"); body.replaceChildren();
  if (s.model) row(body, "model", s.model);
  if (s.runtime) row(body, "runtime", s.runtime);
  if (s.fps == null) return "waiting for the first second of frames";
  row(body, s.final ? "FPS (whole run)" : "FPS", s.fps.toFixed(1));
  row(body, "frames", String(s.frames));
  if (s.dropped != null) row(body, "dropped", String(s.dropped));
  for (const k of STAGES) if (s.stages_ms && k in s.stages_ms) row(body, k, ms(s.stages_ms[k]));
  if (s.cpu_ms_outside_invoke != null) row(body, "CPU outside invoke", ms(s.cpu_ms_outside_invoke));
  const shares = Object.entries(s.class_share || {{}}).sort((a, b) => b[1] - a[1]);
  if (shares.length) row(body, "classes", "share of the frame");
  for (const [name, share] of shares) row(body, "\u2003" + name, (100 * share).toFixed(1) + " %");
  if (s.final) return "finished (" + s.reason.replace(/_/g, " ") + ")";
  return "live, updated " + new Date(s.time * 1000).toLocaleTimeString();
}}
async function poll() {{
  const status = document.getElementById("status");
  try {{
    const r = await fetch("/stats.json", {{cache: "no-store"}});
    status.textContent = show(await r.json());
  }} catch (e) {{ status.textContent = "disconnected"; }}
}}
setInterval(poll, {interval_ms}); poll();
</script>
</body></html>
"""


def parse_address(text: str) -> tuple[str, int]:
    """"PORT" or "HOST:PORT" -> (host, port); the host defaults to 127.0.0.1."""
    host, sep, port = str(text).rpartition(":")
    host = host.strip("[]") if sep else DEFAULT_HOST
    try:
        number = int(port)
    except ValueError:
        raise ValueError(f"serve: expected PORT or HOST:PORT, got {text!r}") from None
    if not 0 <= number <= 65535:
        raise ValueError(f"serve: port must be 0..65535, got {number}")
    return host or DEFAULT_HOST, number


class _Handler(BaseHTTPRequestHandler):
    """One client's requests; ``self.server.preview`` is the :class:`PreviewServer` it serves."""

    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # keep the per-request lines out of the stats log
        log.debug("preview %s: " + fmt, self.address_string(), *args)

    def do_GET(self):
        preview, path = self.server.preview, self.path.split("?", 1)[0]
        try:
            if path in ("/", "/index.html"):
                self._send(preview.page, "text/html; charset=utf-8")
            elif path == "/stats.json":
                self._send(json.dumps(preview.stats()).encode("utf-8"), "application/json")
            elif path == "/frame.jpg":
                _, jpeg = preview.wait_jpeg(0, timeout=5.0)
                if jpeg is None:
                    self.send_error(HTTPStatus.SERVICE_UNAVAILABLE, "no frame yet")
                else:
                    self._send(jpeg, "image/jpeg")
            elif path == "/stream.mjpg":
                self._stream(preview)
            else:
                self.send_error(HTTPStatus.NOT_FOUND, f"no such page {path}; try /")
        except _DISCONNECTS:
            preview._disconnected()

    def _send(self, body: bytes, content_type: str):
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _stream(self, preview: "PreviewServer"):
        self.close_connection = True
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        self.send_header("Cache-Control", "no-store")
        self.send_header("Connection", "close")
        self.end_headers()
        with preview._cond:
            preview.clients += 1
        try:
            # Each part ends with the next boundary, and with no new frame for a second the last one is sent
            # again: a browser shows a part only once more data follows it, and a video's last frame (served
            # while the page lingers) must show too.
            self.wfile.write(f"--{BOUNDARY}\r\n".encode("ascii"))
            seq, last = 0, None
            while True:
                seq, jpeg = preview.wait_jpeg(seq, timeout=1.0)
                if preview.closed:
                    return
                jpeg = last = jpeg or last
                if jpeg is None:
                    continue
                self.wfile.write(f"Content-Type: image/jpeg\r\nContent-Length: {len(jpeg)}\r\n\r\n".encode("ascii"))
                self.wfile.write(jpeg)
                self.wfile.write(f"\r\n--{BOUNDARY}\r\n".encode("ascii"))
                self.wfile.flush()
        finally:
            with preview._cond:
                preview.clients -= 1


class PreviewServer:
    """Serve the latest overlay frame and stats over HTTP from a background thread.

    ``about`` (e.g. the model and the runtime in use) is shown on the page beside the stats.
    """

    def __init__(self, host: str = DEFAULT_HOST, port: int = 8080, *, stats_interval_ms: int = 1000,
                 about: dict | None = None):
        self._cond = threading.Condition()
        self._frame: np.ndarray | None = None
        self._seq = 0
        self._jpeg: tuple[int, bytes] | None = None
        self._stats: dict = {}
        self._about = dict(about or {})
        self._closed = False
        self.clients = 0
        self.disconnects = 0
        stages = json.dumps(list(visualize.STAGES))
        self.page = PAGE.format(interval_ms=int(stats_interval_ms), stages=stages).encode("utf-8")
        try:
            self._httpd = ThreadingHTTPServer((host, port), _Handler)
        except OSError as err:
            raise OSError(f"serve: cannot listen on {host}:{port} ({err.strerror or err})") from None
        self._httpd.preview = self
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="preview-http", daemon=True)
        self._thread.start()

    @property
    def address(self) -> tuple[str, int]:
        host, port = self._httpd.server_address[:2]
        return host, port

    @property
    def url(self) -> str:
        host, port = self.address
        return f"http://{host}:{port}/"

    @property
    def closed(self) -> bool:
        return self._closed

    def publish(self, frame: np.ndarray, stats: dict | None = None) -> None:
        """Make ``frame`` (BGR) the latest; the stream picks it up. Does not copy: pass a frame you no longer change."""
        with self._cond:
            self._frame = frame
            self._seq += 1
            if stats is not None:
                self._stats = stats
            self._cond.notify_all()

    def set_stats(self, stats: dict) -> None:
        with self._cond:
            self._stats = dict(stats)

    def stats(self) -> dict:
        """The latest stats, with ``about``'s entries."""
        with self._cond:
            return {**self._about, **self._stats}

    def wait_jpeg(self, after: int, *, timeout: float) -> tuple[int, bytes | None]:
        """The first frame newer than sequence number ``after``, JPEG-encoded, or (after, None) on timeout."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._seq > after or self._closed, timeout):
                return after, None
            if self._closed or self._frame is None:
                return after, None
            seq, frame = self._seq, self._frame
            if self._jpeg is not None and self._jpeg[0] == seq:
                return seq, self._jpeg[1]
        ok, buffer = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        jpeg = buffer.tobytes() if ok else None
        with self._cond:
            if jpeg is not None and (self._jpeg is None or self._jpeg[0] < seq):
                self._jpeg = (seq, jpeg)
        return seq, jpeg

    def _disconnected(self) -> None:
        with self._cond:
            self.disconnects += 1
        log.info("preview: a browser disconnected; the loop goes on")

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=2.0)


__all__ = ["BOUNDARY", "DEFAULT_HOST", "PreviewServer", "parse_address"]
