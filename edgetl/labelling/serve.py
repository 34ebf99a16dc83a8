"""The labelling page's server: :mod:`edgetl.webserver`'s guards (loopback by default, a token
when bound wider, Host and Origin checks, caps, CSP by hash) over a :class:`LabelSession`.

Routes: ``/`` the page; ``/api/frames?offset=&limit=`` a page of the frames still to label
(never more than :data:`MAX_PAGE`: thousands of frames cost the page what sixty do);
``/thumb/N`` a small JPEG of frame N, ``/image/N`` the frame as it is (frames of this session
only, read through the image reader's size cap); ``POST /api/decide``, ``POST /api/undo`` and
``POST /api/classes`` (a new class, checked as a folder name)."""
from __future__ import annotations

import threading
from http import HTTPStatus
from urllib.parse import parse_qs, urlsplit

from edgetl.image import DecodeError, cv2, decode_preview, read_file, sniff
from edgetl.labelling.page import PAGE
from edgetl.labelling.session import Action, LabelSession
from edgetl.webserver import Address, Guarded, GuardedHandler, listen, new_token, security_headers

SECURITY_HEADERS = security_headers(PAGE)
MAX_PAGE = 200
"""Frames one /api/frames answer lists at most."""
MAX_BODY = 65_536
"""Largest decision request (a selection of a few thousand frame numbers)."""
THUMB_SIDE = 160
TYPES = {"jpeg": "image/jpeg", "png": "image/png", "gif": "image/gif", "bmp": "image/bmp", "webp": "image/webp"}


class LabelServer(Guarded):
    """The page over one session, served until :meth:`close`."""

    def __init__(self, session: LabelSession, address: Address, token: str | None = None):
        self.session, self.address = session, address
        self.token = token if token is not None else new_token(address)
        handler = type("Handler", (_Handler,), {"server_state": self})
        self.httpd = listen(address, handler)
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="edgetl-label-http", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.httpd.shutdown()
        self.httpd.server_close()


def _number(text: str, default: int, low: int, high: int) -> int:
    return max(low, min(high, int(text))) if text.isdigit() else default


class _Handler(GuardedHandler):
    server_state: LabelServer
    headers_for_page = SECURITY_HEADERS

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's signature
        pass

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        if self._refused():
            return
        url = urlsplit(self.path)
        route, _, tail = url.path.lstrip("/").partition("/")
        try:
            if url.path == "/":
                self._page()
            elif url.path == "/api/frames":
                self._frames(parse_qs(url.query))
            elif route in ("thumb", "image") and tail.isdigit():
                self._picture(int(tail), route == "thumb")
            else:
                self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            pass

    def do_POST(self) -> None:  # noqa: N802
        if self._refused():
            return
        path = urlsplit(self.path).path
        if path not in ("/api/decide", "/api/undo", "/api/classes"):
            self._send(HTTPStatus.NOT_FOUND, b"not found\n", "text/plain")
            return
        body = self.read_json(MAX_BODY)
        if body is None:
            return
        session = self.server_state.session
        if path == "/api/undo":
            self._json(session.undo().to_dict())
            return
        if path == "/api/classes":
            name = body.get("name") if isinstance(body, dict) else None
            if not isinstance(name, str) or len(name) > 200:
                self._json({"error": 'send {"name": "the new class"}'}, HTTPStatus.BAD_REQUEST)
                return
            self._json(session.add_class(name).to_dict())
            return
        try:
            ids, action, label = body["frames"], Action(body["action"]), body.get("label", "")
            if not (isinstance(ids, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in ids)
                    and isinstance(label, str)) or not ids:
                raise TypeError
        except (KeyError, ValueError, TypeError, AttributeError):
            self._json({"error": 'send {"frames": [numbers], "action": "label|accept|unknown|discard", "label": "..."}'},
                       HTTPStatus.BAD_REQUEST)
            return
        outcomes = session.decide(ids, action, label)
        self._json({"outcomes": [o.to_dict() for o in outcomes]})

    def _page(self) -> None:
        state = self.server_state
        extra = {}
        if state.token:  # the token in a cookie, so the page's own requests need no query string
            extra["Set-Cookie"] = f"{state.cookie}={state.token}; Path=/; HttpOnly; SameSite=Strict"
        self._send(200, PAGE.encode(), "text/html; charset=utf-8", extra)

    def _frames(self, query: dict) -> None:
        s = self.server_state.session
        left = s.left()
        offset = _number(query.get("offset", ["0"])[0], 0, 0, len(left))
        limit = _number(query.get("limit", ["60"])[0], 60, 1, MAX_PAGE)
        frames = []
        for i in left[offset:offset + limit]:
            f = s.frames[i]
            g = f.guess
            frames.append({"id": i, "name": f.path.name, "guess": g.label if g else None,
                           "score": g.score if g else 0.0, "unknown": bool(g and g.unknown),
                           "duplicate": s.duplicate_of(i)})
        c = s.counts()
        self._json({"classes": s.dataset.classes, "frames": frames, "left": c["left"], "total": c["total"],
                    "decided": c["decided"], "into": str(s.dataset.root)})

    def _picture(self, i: int, thumb: bool) -> None:
        try:
            path = self.server_state.session.frame_path(i)
            data = read_file(path)
            if thumb:
                image, _ = decode_preview(data, side=THUMB_SIDE)
                h, w = image.shape[:2]
                k = THUMB_SIDE / max(h, w)
                if k < 1:
                    image = cv2().resize(image, (max(1, round(w * k)), max(1, round(h * k))), interpolation=cv2().INTER_AREA)
                ok, buf = cv2().imencode(".jpg", cv2().cvtColor(image, cv2().COLOR_RGB2BGR), [cv2().IMWRITE_JPEG_QUALITY, 80])
                if not ok:
                    raise DecodeError("could not encode")
                data, kind = buf.tobytes(), "image/jpeg"
            else:
                kind = TYPES.get(sniff(data[:16]) or "", "")
                if not kind:
                    raise DecodeError("not an image")
        except KeyError:
            self._send(HTTPStatus.NOT_FOUND, b"no such frame\n", "text/plain")
            return
        except (DecodeError, OSError):
            self._send(HTTPStatus.UNPROCESSABLE_ENTITY, b"cannot read this frame\n", "text/plain")
            return
        self._send(200, data, kind)
