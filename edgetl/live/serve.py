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

import base64
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.image import cv2
from edgetl.live.page import PAGE

def cookie_value(header: str, name: str) -> str:
    """The value of cookie ``name`` in a Cookie header, read leniently: each ``;``-separated pair
    on its own, so another site's cookie that a strict parser rejects (``prefs={"theme":"dark"}``)
    does not hide ours. "" when it is not there."""
    for pair in header.split(";"):
        key, sep, value = pair.strip().partition("=")
        if sep and key == name:
            return value.strip().strip('"')
    return ""


COOKIE = "edgetl_token"
"""The token cookie's name stem; the port is added, so servers on other ports keep their own."""
JPEG_QUALITY = 80
MAX_CONNECTIONS = 64
"""Connections served at once; one more gets 503 at once (viewers, API calls, idle sockets alike)."""
HEADER_SECONDS = 10.0
"""Time a client has to send a request's line and headers, however slowly it sends them."""
MAX_BODY = 1024
"""Largest request body read (the only body is ``{"threshold": x}``)."""
LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


def _hash_source(tag: str) -> str:
    """CSP source for the page's inline ``<tag>`` block: only that exact text may run."""
    body = re.search(rf"<{tag}>(.*?)</{tag}>", PAGE, re.S).group(1)
    return "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"


SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": f"default-src 'none'; script-src {_hash_source('script')}; "
                               f"style-src {_hash_source('style')}; img-src 'self'; connect-src 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
}
MAX_STREAM_FPS = 30.0
"""The video is never encoded faster than this, whatever the source delivers."""


@dataclass
class Address:
    """Where the server listens."""

    host: str
    port: int

    @property
    def private(self) -> bool:
        """True for loopback addresses, which only this machine (and ssh -L) reaches."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    @property
    def wildcard(self) -> bool:
        """Listening on every interface (0.0.0.0, ::): reached under any name."""
        return self.host in ("", "0.0.0.0", "::")

    @property
    def ipv6(self) -> bool:
        """An IPv6 address (served over an AF_INET6 socket)."""
        return ":" in self.host

    @property
    def url_host(self) -> str:
        """The host as a URL writes it (IPv6 in brackets; a wildcard as this machine's loopback)."""
        host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)
        return f"[{host}]" if ":" in host else host

    def allows_host(self, header: str | None) -> bool:
        """Whether a request's Host header names this server: a loopback name or the bound
        address, or anything on a wildcard address (where the token guards every request)."""
        if self.wildcard:
            return True
        if not header:
            return False
        host = header.strip().lower()
        if host.startswith("["):
            host = host[1:host.find("]")] if "]" in host else ""
        elif host.count(":") == 1:
            host = host.split(":")[0]
        if host in LOOPBACK_NAMES or host == self.host.lower():
            return True
        try:
            return ipaddress.ip_address(host).is_loopback and self.private
        except ValueError:
            return False


def parse_address(spec: str) -> Address:
    """``PORT`` (on 127.0.0.1), ``HOST:PORT`` or ``[IPv6]:PORT``; the host must be given to
    listen elsewhere."""
    host, _, port = spec.rpartition(":")
    host = (host or "127.0.0.1").strip("[]")
    if not port.isdigit() or not 0 <= int(port) < 65536:  # 0: any free port
        raise EdgetlError(f"--serve {spec!r} is not [HOST:]PORT", fix="e.g. --serve 8080, or --serve 0.0.0.0:8080 "
                                                                      "to be reachable from the network (with a token)")
    return Address(host, int(port))


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


class LiveServer:
    """The HTTP side of a live run: publish frames and results into it, viewers read from it."""

    def __init__(self, address: Address, facts: dict, options, token: str | None = None):
        self.address, self.facts, self.options = address, facts, options
        self.token = token if token is not None else (None if address.private else secrets.token_urlsafe(18))
        self.frames = _Latest()   # raw BGR frames, as read
        self.jpeg = _Latest()     # encoded frames, as served
        self.results = _Latest()  # result dicts
        self.started = time.monotonic()
        self.viewers = 0
        self._viewers_lock = threading.Lock()
        self.stopped = threading.Event()
        """Set when the server closes: viewer loops end."""
        handler = type("Handler", (_Handler,), {"server_state": self})
        server = _CappedServer6 if address.ipv6 else _CappedServer
        try:
            self.httpd = server((address.host, address.port), handler)
        except OSError as e:
            raise EdgetlError(f"cannot listen on {address.host}:{address.port} ({e.strerror})",
                              fix="choose another port, or stop what is using it") from None
        self.address.port = self.httpd.server_address[1]
        self._threads = [threading.Thread(target=self.httpd.serve_forever, name="edgetl-http", daemon=True),
                         threading.Thread(target=self._encode, name="edgetl-jpeg", daemon=True)]
        for t in self._threads:
            t.start()

    @property
    def url(self) -> str:
        """The address to open (with the token when one is needed)."""
        return f"http://{self.address.url_host}:{self.address.port}/" + (f"?token={self.token}" if self.token else "")

    @property
    def cookie(self) -> str:
        """This server's token cookie name (per port: two servers on one host keep their own)."""
        return f"{COOKIE}_{self.address.port}"

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


class _CappedServer(ThreadingHTTPServer):
    """A thread per connection, at most :data:`MAX_CONNECTIONS` at once: one more is answered 503
    and closed without a thread, so idle or slow sockets cannot take every file descriptor."""

    daemon_threads = True
    busy = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 26\r\n"
            b"Connection: close\r\nRetry-After: 5\r\n\r\ntoo many connections: retry\n")

    def __init__(self, *args, **kwargs):
        self.slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(*args, **kwargs)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            try:
                request.setblocking(False)
                request.send(self.busy)
            except OSError:
                pass
            self.shutdown_request(request)
            return
        super().process_request(request, client_address)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()


class _CappedServer6(_CappedServer):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server_state: LiveServer
    protocol_version = "HTTP/1.1"
    timeout = 30.0
    """Seconds a single read or write may block: a viewer that stops reading for this long is ended."""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's signature
        pass  # a request log line per frame would bury the summary

    # --- deadlines ----------------------------------------------------------------------------
    def handle_one_request(self) -> None:
        """Each request's line and headers must arrive within HEADER_SECONDS, however slowly they
        trickle in (a per-read timeout alone lets a client send a byte every few seconds)."""
        timer = threading.Timer(HEADER_SECONDS, self._expire)
        timer.daemon = True
        self._header_timer = timer
        timer.start()
        try:
            super().handle_one_request()
        finally:
            timer.cancel()

    def parse_request(self) -> bool:
        ok = super().parse_request()
        self._header_timer.cancel()
        return ok

    def _expire(self) -> None:
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    # --- access -----------------------------------------------------------------------------
    def _authorised(self) -> bool:
        token = self.server_state.token
        if token is None:
            return True
        given = parse_qs(urlsplit(self.path).query).get("token", [""])[0]
        given = given or cookie_value(self.headers.get("Cookie", ""), self.server_state.cookie)
        return hmac.compare_digest(given.encode(), token.encode())

    def _refused(self) -> bool:
        """Answer and return True when the request must not be served: a Host header this
        server was not bound for (DNS rebinding), or no token where one is needed."""
        if not self.server_state.address.allows_host(self.headers.get("Host")):
            self._send(HTTPStatus.FORBIDDEN, b"this server answers only to the address it was started on\n",
                       "text/plain")
            return True
        if not self._authorised():
            self._send(HTTPStatus.UNAUTHORIZED, b"a token is needed: open the URL edgetl printed\n", "text/plain")
            return True
        return False

    def _same_origin_json(self) -> bool:
        """A state change must be JSON and, when a browser names its origin, from this origin."""
        kind = self.headers.get("Content-Type", "").split(";")[0].strip().lower()
        origin = self.headers.get("Origin")
        host = self.headers.get("Host", "")
        return kind == "application/json" and (origin is None or origin == f"http://{host}")

    def _send(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for k, v in (SECURITY_HEADERS | (extra or {})).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, data: object, status: int = 200) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

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
        if not self._same_origin_json():
            self._json({"error": "a change must be a JSON request from this page"}, HTTPStatus.FORBIDDEN)
            return
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > MAX_BODY:
            self.close_connection = True  # the body, if any, is never read
            self._json({"error": f"send a Content-Length from 0 to {MAX_BODY}"},
                       HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length.isdigit() else HTTPStatus.LENGTH_REQUIRED)
            return
        try:
            value = float(json.loads(self.rfile.read(int(length)))["threshold"])
        except (ValueError, KeyError, TypeError, RecursionError):
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

    def _streaming_headers(self, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        for k, v in SECURITY_HEADERS.items():
            self.send_header(k, v)
        self.end_headers()

    def _events(self) -> None:
        self._streaming_headers("text/event-stream")
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
        self._streaming_headers("multipart/x-mixed-replace; boundary=frame")
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
