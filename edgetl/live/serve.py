"""`edgetl live MODEL --serve [HOST:]PORT`: the live classifier in a browser, for headless boards.

Standard library only (http.server with a thread per connection), so a Pi needs nothing beyond
edgetl[device]: no ASGI stack to install or update. What it serves:

- ``/``: the page (inline HTML, CSS and script; nothing from the internet) with the video, top-k
  labels and score bars, the latency split, FPS, dropped frames, the model's facts, and a
  threshold slider that changes the running threshold;
- ``/stream.mjpg``: the video as MJPEG at the source's rate, independent of inference;
- ``/api/latest`` (the last result as JSON), ``/api/events`` (Server-Sent Events, one per
  result), ``/api/health``, and ``POST /api/threshold``.

Every viewer has its own thread and only ever takes the newest frame or result: a viewer that
stops reading blocks its own thread, never inference or the other viewers (frames are dropped per
viewer). By default the server binds 127.0.0.1 (reach it through ``ssh -L``); any other address
must be asked for, and then every request needs the random token printed with the URL (kept in a
cookie after the first visit): 401 without it.

Browsers are a second kind of client, with their own attacks (done here as Jupyter's server does):
- **DNS rebinding**: a page whose name is made to resolve to 127.0.0.1 reaches a loopback server as
  its own origin. Only Host headers the server was bound for are answered (loopback names and the
  bound address; any name on a wildcard address, where the token guards every request): 403.
- **Cross-site requests**: a state change (``POST /api/threshold``) must be JSON
  (``Content-Type: application/json``, which no form or simple cross-site request can send without
  a preflight this server never allows) and, when the browser names its ``Origin``, from this very
  origin: 403 otherwise.
- **Framing and leaks**: every answer carries ``X-Frame-Options: DENY``, ``Referrer-Policy:
  no-referrer`` and a Content-Security-Policy allowing only the page's own script and style (by
  hash), its own origin for the video and the API, and no framing.
- **Exhaustion**: at most :data:`MAX_CONNECTIONS` connections at once (503 beyond), request
  headers within :data:`HEADER_SECONDS`, request bodies of at most :data:`MAX_BODY` bytes."""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

from edgetl.image import cv2
from edgetl.live.page import PAGE
from edgetl.webserver import (Address, Guarded, GuardedHandler, listen, new_token, parse_address,  # noqa: F401
                              security_headers)

SECURITY_HEADERS = security_headers(PAGE)

JPEG_QUALITY = 80
MAX_BODY = 1024
"""Largest request body read (the only body is ``{"threshold": x}``)."""
MAX_STREAM_FPS = 30.0
"""The video is never encoded faster than this, whatever the source delivers."""


@dataclass
class _Latest:
    """The newest item of a stream, numbered, with a condition viewers wait on."""

    item: object = None
    seq: int = 0
    cond: threading.Condition = field(default_factory=threading.Condition)

    def publish(self, item: object) -> None:
        with self.cond:
            self.item, self.seq = item, self.seq + 1
            self.cond.notify_all()

    def wait_newer(self, seen: int, timeout: float = 1.0) -> tuple[object, int]:
        with self.cond:
            self.cond.wait_for(lambda: self.seq != seen, timeout)
            return self.item, self.seq


class LiveServer(Guarded):
    """The HTTP side of a live run: publish frames and results into it, viewers read from it."""

    def __init__(self, address: Address, facts: dict, options, token: str | None = None):
        self.address, self.facts, self.options = address, facts, options
        self.token = token if token is not None else new_token(address)
        self.frames = _Latest()   # raw BGR frames, as read
        self.jpeg = _Latest()     # encoded frames, as served
        self.results = _Latest()  # result dicts
        self.started = time.monotonic()
        self.viewers = 0
        self._viewers_lock = threading.Lock()
        self.stopped = threading.Event()
        """Set when the server closes: viewer loops end."""
        handler = type("Handler", (_Handler,), {"server_state": self})
        self.httpd = listen(address, handler)
        self._threads = [threading.Thread(target=self.httpd.serve_forever, name="edgetl-http", daemon=True),
                         threading.Thread(target=self._encode, name="edgetl-jpeg", daemon=True)]
        for t in self._threads:
            t.start()

    def publish_frame(self, frame: np.ndarray) -> None:
        """A frame as read from the source (called at the source's rate; never blocks)."""
        self.frames.publish(frame)

    def publish_result(self, result: dict) -> None:
        """A classified frame's result (called by the inference loop; never blocks)."""
        self.results.publish(result)

    def _encode(self) -> None:
        """Encode the newest frame to JPEG when someone watches, at most MAX_STREAM_FPS times a second."""
        seen, last = 0, 0.0
        while not self.stopped.is_set():
            frame, seq = self.frames.wait_newer(seen, timeout=0.5)
            if seq == seen or frame is None or self.viewers == 0:
                seen = seq
                continue
            seen = seq
            pause = 1 / MAX_STREAM_FPS - (time.monotonic() - last)
            if pause > 0:
                self.stopped.wait(pause)
            ok, data = cv2().imencode(".jpg", frame, [cv2().IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
            last = time.monotonic()
            if ok:
                self.jpeg.publish(data.tobytes())

    def close(self) -> None:
        """Stop serving (open viewer connections end with the process's daemon threads)."""
        self.stopped.set()
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(GuardedHandler):
    server_state: LiveServer
    headers_for_page = SECURITY_HEADERS

    # --- routes -----------------------------------------------------------------------------
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        route = urlsplit(self.path).path
        if self._refused():
            return
        handler = {"/": self._page, "/stream.mjpg": self._stream, "/api/latest": self._latest,
                   "/api/events": self._events, "/api/health": self._health}.get(route)
        if handler is None:
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
            return
        try:
            handler()
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass  # the viewer went away

    def do_POST(self) -> None:  # noqa: N802
        if self._refused():
            return
        if urlsplit(self.path).path != "/api/threshold":
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
            return
        body = self.read_json(MAX_BODY)
        if body is None:
            return
        try:
            value = float(body["threshold"])
        except (ValueError, KeyError, TypeError):
            self._json({"error": "send {\"threshold\": a number from 0 to 1}"}, HTTPStatus.BAD_REQUEST)
            return
        if not 0.0 <= value <= 1.0:
            self._json({"error": "threshold must be between 0 and 1"}, HTTPStatus.BAD_REQUEST)
            return
        self.server_state.options.threshold = value  # the inference loop reads it for every frame
        self._json({"threshold": value})

    def _page(self) -> None:
        state = self.server_state
        facts = json.dumps(state.facts | {"threshold": state.options.threshold}).replace("<", "\\u003c")
        extra = {}
        if state.token:  # keep the token in a cookie so the page's own requests need no query string
            extra["Set-Cookie"] = f"{state.cookie}={state.token}; Path=/; HttpOnly; SameSite=Strict"
        self._send(200, PAGE.replace("__FACTS__", facts).encode(), "text/html; charset=utf-8", extra)

    def _latest(self) -> None:
        self._json(self.server_state.results.item or {})

    def _health(self) -> None:
        s = self.server_state
        last = s.results.item or {}
        self._json({"status": "ok", "uptime_s": round(time.monotonic() - s.started, 1), "results": s.results.seq,
                    "frames_read": s.frames.seq, "viewers": s.viewers, "model": s.facts.get("model"),
                    "last": last.get("label")})

    def _events(self) -> None:
        self.streaming_headers("text/event-stream")
        seen = 0
        stop = self.server_state.stopped
        while not stop.is_set():
            item, seq = self.server_state.results.wait_newer(seen)
            if seq == seen:
                self.wfile.write(b": keep-alive\n\n")
            else:
                seen = seq
                self.wfile.write(b"data: " + json.dumps(item).encode() + b"\n\n")
            self.wfile.flush()

    def _stream(self) -> None:
        state = self.server_state
        self.streaming_headers("multipart/x-mixed-replace; boundary=frame")
        with state._viewers_lock:
            state.viewers += 1
        try:
            seen = 0
            while not state.stopped.is_set():
                data, seq = state.jpeg.wait_newer(seen)
                if seq == seen or data is None:
                    continue
                seen = seq  # a slow viewer skips to the newest frame: its drops are its own
                self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                 + str(len(data)).encode() + b"\r\n\r\n" + data + b"\r\n")
                self.wfile.flush()
        finally:
            with state._viewers_lock:
                state.viewers -= 1


def model_facts(path: Path | str, clf) -> dict:
    """What the page shows about the model."""
    return {"model": Path(path).name, "runtime": clf.runtime, "labels": clf.labels,
            "input": f"{clf.pixels.width}x{clf.pixels.height} {clf.pixels.resize}",
            "precision": "int8" if clf.input.quantized else str(clf.input.dtype)}
