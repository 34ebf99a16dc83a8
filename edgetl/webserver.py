"""The guarded HTTP server every edgetl page is served by (`live --serve`, `label`).

Standard library only (http.server with a thread per connection). By default a server binds
127.0.0.1 (reach it through ``ssh -L``); any other address must be asked for, and then every
request needs the random token printed with the URL (kept in a cookie after the first visit):
401 without it. Browsers are a second kind of client, with their own attacks (done here as
Jupyter's server does):

- **DNS rebinding**: only Host headers the server was bound for are answered (loopback names and
  the bound address; any name on a wildcard address, where the token guards every request): 403.
- **Cross-site requests**: a state change must be JSON (``Content-Type: application/json``, which
  no form or simple cross-site request can send without a preflight this server never allows)
  and, when the browser names its ``Origin``, from this very origin: 403 otherwise.
- **Framing and leaks**: every answer carries ``X-Frame-Options: DENY``, ``Referrer-Policy:
  no-referrer`` and a Content-Security-Policy allowing only the page's own script and style (by
  hash), its own origin for images and the API, and no framing.
- **Exhaustion**: at most :data:`MAX_CONNECTIONS` connections at once (503 beyond), request
  headers within :data:`HEADER_SECONDS`, request bodies capped by each route."""
from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
import socket
import sys
import threading
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

from edgetl.errors import EdgetlError

_limits = sys.modules[__name__]
"""This module: the caps are read from it at use, so a test may lower them."""

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

MAX_CONNECTIONS = 64
"""Connections served at once; one more gets 503 at once (viewers, API calls, idle sockets alike)."""
HEADER_SECONDS = 10.0
"""Time a client has to send a request's line and headers, however slowly it sends them."""

LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1"}


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


class _CappedServer(ThreadingHTTPServer):
    """A thread per connection, at most :data:`MAX_CONNECTIONS` at once: one more is answered 503
    and closed without a thread, so idle or slow sockets cannot take every file descriptor."""

    daemon_threads = True
    busy = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\nContent-Length: 26\r\n"
            b"Connection: close\r\nRetry-After: 5\r\n\r\ntoo many connections: retry\n")

    def __init__(self, *args, **kwargs):
        self.slots = threading.BoundedSemaphore(_limits.MAX_CONNECTIONS)
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


def security_headers(page: str, img: str = "'self'") -> dict[str, str]:
    """The headers every answer of a server of ``page`` carries: its inline script and style
    allowed by hash, nothing else from anywhere."""
    def source(tag: str) -> str:
        body = re.search(rf"<{tag}>(.*?)</{tag}>", page, re.S).group(1)
        return "'sha256-" + base64.b64encode(hashlib.sha256(body.encode()).digest()).decode() + "'"

    return {
        "X-Content-Type-Options": "nosniff",
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "no-referrer",
        "Content-Security-Policy": f"default-src 'none'; script-src {source('script')}; "
                                   f"style-src {source('style')}; img-src {img}; connect-src 'self'; "
                                   "frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    }


def listen(address: Address, handler: type) -> ThreadingHTTPServer:
    """A capped threading server on ``address`` (the port filled in when 0 asked for any)."""
    server = _CappedServer6 if address.ipv6 else _CappedServer
    try:
        httpd = server((address.host, address.port), handler)
    except OSError as e:
        raise EdgetlError(f"cannot listen on {address.host}:{address.port} ({e.strerror})",
                          fix="choose another port, or stop what is using it") from None
    address.port = httpd.server_address[1]
    return httpd


def new_token(address: Address) -> str | None:
    """None on loopback (only this machine reaches it), else a random token every request needs."""
    return None if address.private else secrets.token_urlsafe(18)


class Guarded:
    """What a guarded handler needs of its server: where it listens and its token."""

    address: Address
    token: str | None

    @property
    def url(self) -> str:
        """The address to open (with the token when one is needed)."""
        return f"http://{self.address.url_host}:{self.address.port}/" + (f"?token={self.token}" if self.token else "")

    @property
    def cookie(self) -> str:
        """This server's token cookie name (per port: two servers on one host keep their own)."""
        return f"{COOKIE}_{self.address.port}"



class GuardedHandler(BaseHTTPRequestHandler):
    """Deadlines, the Host and token checks, same-origin JSON, and answers with the security
    headers (the subclass sets ``headers_for_page``)."""

    server_state: Guarded
    headers_for_page: dict[str, str] = {}
    protocol_version = "HTTP/1.1"
    timeout = 30.0
    """Seconds a single read or write may block: a viewer that stops reading for this long is ended."""

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's signature
        pass  # a request log line per frame would bury the summary

    # --- deadlines ----------------------------------------------------------------------------
    def handle_one_request(self) -> None:
        """Each request's line and headers must arrive within HEADER_SECONDS, however slowly they
        trickle in (a per-read timeout alone lets a client send a byte every few seconds)."""
        timer = threading.Timer(_limits.HEADER_SECONDS, self._expire)
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
        for k, v in (self.headers_for_page | (extra or {})).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _json(self, data: object, status: int = 200) -> None:
        self._send(status, json.dumps(data).encode(), "application/json")

    def read_json(self, max_body: int) -> object:
        """The request's JSON body (at most ``max_body`` bytes), or None after answering the error
        (a body too large is never read)."""
        if not self._same_origin_json():
            self._json({"error": "a change must be a JSON request from this page"}, HTTPStatus.FORBIDDEN)
            return None
        length = self.headers.get("Content-Length", "")
        if not length.isdigit() or int(length) > max_body:
            self.close_connection = True  # the body, if any, is never read
            self._json({"error": f"send a Content-Length from 0 to {max_body}"},
                       HTTPStatus.REQUEST_ENTITY_TOO_LARGE if length.isdigit() else HTTPStatus.LENGTH_REQUIRED)
            return None
        try:
            return json.loads(self.rfile.read(int(length)))
        except (ValueError, RecursionError):
            self._json({"error": "the body is not JSON"}, HTTPStatus.BAD_REQUEST)
            return None

    def streaming_headers(self, content_type: str) -> None:
        """Headers of an answer of unknown length (a stream)."""
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Cache-Control", "no-store")
        for k, v in self.headers_for_page.items():
            self.send_header(k, v)
        self.end_headers()
