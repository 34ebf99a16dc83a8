"""`edgetl live --serve`: the page in a real browser, viewers that stall, the token, clean stops."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import http.client

import cv2
import numpy as np
import pytest

from helpers.browser import browser_page, not_blank
from helpers.models import keras_mean_colour, to_tflite
from edgetl.live import LiveOptions, run

COLOURS = ("red", "green", "blue")


@pytest.fixture(scope="module")
def model_and_video(tmp_path_factory):
    """A colour classifier and a 40 s video (15 FPS) that changes colour every 2 s."""
    d = tmp_path_factory.mktemp("serve")
    model = to_tflite(keras_mean_colour(), d / "colour.tflite")
    (d / "labels.txt").write_text("\n".join(COLOURS) + "\n")
    video = d / "long.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 15, (160, 120))
    rng = np.random.default_rng(0)
    for i in range(600):
        img = rng.integers(0, 50, (120, 160, 3)).astype(np.uint8)
        img[..., (i // 30) % 3] = 220
        writer.write(img)
    writer.release()
    return model, video


class Served:
    """`live` running in a thread of this process with --serve, until stopped."""

    def __init__(self, model: Path, video: Path, address: str = "127.0.0.1:0"):
        self.url: str | None = None
        self.ready = threading.Event()
        self.options = LiveOptions(realtime=True, duration=60)
        self.summary = None

        def serving(url: str) -> None:
            self.url = url
            self.ready.set()

        def main() -> None:
            self.summary = run(model, str(video), self.options, serve=address, on_serving=serving)

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        assert self.ready.wait(30), "the server did not start"

    @property
    def base(self) -> str:
        return self.url.split("?")[0].rstrip("/")

    def stop(self) -> None:
        self.options.max_frames = 0  # the loop checks this before each frame
        self.thread.join(30)


def test_the_page_shows_labels_fps_and_latency_in_a_browser(model_and_video):
    model, video = model_and_video
    served = Served(model, video)
    try:
        with browser_page(bypass_csp=True) as (page, requested):
            page.goto(served.url)
            page.wait_for_function("document.getElementById('label').textContent.trim().length > 0", timeout=20000)
            assert page.inner_text("#label") in COLOURS
            page.wait_for_function("parseFloat(document.getElementById('fps').textContent) > 0", timeout=10000)
            assert float(page.inner_text("#lat-inference")) >= 0 and float(page.inner_text("#lat-preprocess")) >= 0
            assert page.locator("#topk li").count() == 3 and page.inner_text("#model").startswith("colour.tflite")
            page.wait_for_function("document.querySelector('#video img').naturalWidth > 0", timeout=10000)
            assert not_blank(page.screenshot())
            # the threshold control changes the running threshold: at 1.0 every frame is unknown (shown amber)
            page.eval_on_selector("#threshold", "s => { s.value = '1'; s.dispatchEvent(new Event('change')); }")
            page.wait_for_function("document.getElementById('label').textContent === 'unknown'", timeout=10000)
            assert page.get_attribute("#label", "class") == "unknown"
            assert served.options.threshold == 1.0
        assert all(u.startswith(served.base) for u in requested), requested
    finally:
        served.stop()
    assert served.summary.frames > 0


def test_a_viewer_that_stops_reading_blocks_nobody(model_and_video):
    """Three video viewers that never read a byte (their socket buffers full) block neither
    inference nor the other viewers: results keep coming to a reader and two normal viewers keep
    receiving frames. Progress is asserted, not a rate: a rate would depend on how busy the machine is."""
    model, video = model_and_video
    served = Served(model, video)
    stalled = []
    try:
        port = int(served.base.rsplit(":", 1)[1])
        for _ in range(3):  # three video viewers that connect and never read a byte
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            stalled.append(s)
        frames = [0, 0]

        def watch(k: int) -> None:
            with urllib.request.urlopen(served.base + "/stream.mjpg", timeout=30) as r:
                while frames[k] < 20:
                    frames[k] += r.read(65536).count(b"--frame")

        readers = [threading.Thread(target=watch, args=(k,), daemon=True) for k in range(2)]
        for t in readers:
            t.start()
        health = json.loads(urllib.request.urlopen(served.base + "/api/health", timeout=10).read())
        seen = health["results"]
        events = 0
        with urllib.request.urlopen(served.base + "/api/events", timeout=30) as stream:
            while events < 20:  # twenty new results while the stalled viewers sit there
                events += stream.readline().startswith(b"data: ")
        for t in readers:
            t.join(60)
        health = json.loads(urllib.request.urlopen(served.base + "/api/health", timeout=10).read())
    finally:
        for s in stalled:
            s.close()
        served.stop()
    assert health["results"] >= seen + 20 and frames[0] >= 20 and frames[1] >= 20, (health, frames)


def test_other_addresses_need_the_token(model_and_video):
    model, video = model_and_video
    served = Served(model, video, address="0.0.0.0:0")
    try:
        assert "token=" in served.url
        base, token = served.base, served.url.split("token=")[1]
        for path in ("/", "/api/latest", "/stream.mjpg", "/api/events"):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(base + path, timeout=5)
            assert e.value.code == 401
        with pytest.raises(urllib.error.HTTPError):
            urllib.request.urlopen(base + "/api/latest?token=wrong", timeout=5)
        first = urllib.request.urlopen(served.url, timeout=5)
        cookie = first.headers["Set-Cookie"].split(";")[0]
        port = served.base.rsplit(":", 1)[1]  # per port: a second server does not log the first one out
        assert first.status == 200 and cookie == f"edgetl_token_{port}={token}"
        again = urllib.request.urlopen(urllib.request.Request(base + "/api/health", headers={"Cookie": cookie}), timeout=5)
        assert json.loads(again.read())["status"] == "ok"
        # another local service's cookie that a strict parser rejects, sent first, must not hide ours
        mixed = f'prefs={{"theme":"dark"}}; {cookie}'
        again = urllib.request.urlopen(urllib.request.Request(base + "/api/health", headers={"Cookie": mixed}), timeout=5)
        assert json.loads(again.read())["status"] == "ok"
        post = urllib.request.Request(base + "/api/threshold", data=b'{"threshold": 0.5}', method="POST")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(post, timeout=5)
        assert e.value.code == 401
    finally:
        served.stop()


def serve_process(model: Path, video: Path, address: str) -> tuple[subprocess.Popen, str]:
    """`edgetl live --serve ADDRESS` as a process, and the URL it printed."""
    proc = subprocess.Popen([sys.executable, "-m", "edgetl", "live", str(model), "--source", str(video), "--realtime",
                             "--serve", address], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stderr.readline()
    while "serving the live page at" not in line:
        if not line:
            proc.kill()
            raise AssertionError("no URL printed")
        line = proc.stderr.readline()
    return proc, line.split(" at ")[1].strip()


def test_sigterm_ends_a_served_run_with_its_summary(model_and_video):
    model, video = model_and_video
    proc, url = serve_process(model, video, "0")
    try:
        assert url.startswith("http://127.0.0.1:")  # loopback by default
        assert "ssh -L" in proc.stderr.readline()
        # stopped once it has classified frames (polled: a busy machine only takes longer)
        deadline = time.monotonic() + 120
        while json.loads(urllib.request.urlopen(url + "api/health", timeout=10).read())["results"] < 3:
            assert time.monotonic() < deadline, "no frame classified in 120 s"
            time.sleep(0.1)
        os.kill(proc.pid, signal.SIGTERM)  # what systemd sends
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary, bound = out.splitlines()[-2:]
    assert "FPS" in summary and "(interrupted)" in summary
    # the file is read at its own rate (a served file plays like a camera): the summary says that rate set the pace
    assert bound.startswith("paced by the file's own 15.0 FPS (--realtime)") and "slowest stage" not in bound, bound
    assert "Traceback" not in err


def request(base: str, method: str, path: str, headers: dict, body: bytes | None = None) -> tuple[int, bytes, dict]:
    """One raw HTTP request with exactly these headers (urllib would set its own Host)."""
    host, port = base.split("//")[1].rsplit(":", 1)
    conn = http.client.HTTPConnection(host.strip("[]"), int(port), timeout=10)
    try:
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders(body)
        r = conn.getresponse()
        return r.status, r.read(), dict(r.getheaders())
    finally:
        conn.close()


@pytest.fixture
def served(model_and_video):
    """`live --serve` on loopback for one test."""
    model, video = model_and_video
    running = Served(model, video)
    yield running
    running.stop()


def test_a_foreign_host_header_is_refused_dns_rebinding(served):
    """A page whose name was rebound to 127.0.0.1 sends its own name as Host: nothing is answered."""
    port = served.base.rsplit(":", 1)[1]
    for path in ("/", "/api/latest", "/api/health", "/stream.mjpg", "/api/events"):
        status, body, _ = request(served.base, "GET", path, {"Host": f"evil.example:{port}"})
        assert status == 403, (path, status)
    status, _, _ = request(served.base, "POST", "/api/threshold",
                           {"Host": "evil.example", "Content-Type": "application/json", "Content-Length": "18"},
                           b'{"threshold": 1.0}')
    assert status == 403 and served.options.threshold == 0.0
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "127.0.0.1"):
        assert request(served.base, "GET", "/api/health", {"Host": host})[0] == 200, host
    assert request(served.base, "GET", "/api/health", {})[0] == 403  # no Host at all


def test_state_changes_need_a_same_origin_json_request(served):
    port = served.base.rsplit(":", 1)[1]
    host = f"127.0.0.1:{port}"
    body = b'{"threshold": 1.0}'
    cross = {"Host": host, "Content-Type": "text/plain", "Content-Length": str(len(body)),
             "Origin": "http://localhost:9999"}  # a "simple" cross-origin request: no preflight
    assert request(served.base, "POST", "/api/threshold", cross, body)[0] == 403
    cross["Content-Type"] = "application/json"
    assert request(served.base, "POST", "/api/threshold", cross, body)[0] == 403
    assert served.options.threshold == 0.0
    same = cross | {"Origin": f"http://{host}"}
    status, answer, _ = request(served.base, "POST", "/api/threshold", same, body)
    assert status == 200 and json.loads(answer) == {"threshold": 1.0} and served.options.threshold == 1.0


def test_every_answer_forbids_framing_and_referrers_and_the_page_runs_only_its_own_script(served):
    host = served.base.split("//")[1]
    for path in ("/", "/api/health"):
        _, _, headers = request(served.base, "GET", path, {"Host": host})
        assert headers["X-Frame-Options"] == "DENY" and headers["Referrer-Policy"] == "no-referrer"
        csp = headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in csp and "unsafe-inline" not in csp and "script-src 'sha256-" in csp
    with browser_page() as (page, _):  # the page's own script runs under that policy (it fills the labels)
        refused = []
        page.on("console", lambda m: refused.append(m.text) if "Content Security Policy" in m.text else None)
        page.goto(served.url)
        page.locator("#topk li").first.wait_for(timeout=20000)
        assert page.inner_text("#label") in COLOURS and not refused, refused
        with pytest.raises(Exception):  # a script the page did not bring is refused
            page.add_script_tag(content="document.title = 'injected'")
        assert page.title() == "edgetl live" and refused


def test_bad_request_bodies_get_one_answer_and_the_server_goes_on(served):
    """Content-Length -1 once read to the end of the stream (RSS 194 -> 1,000 MB); `[` x 1000 raised
    RecursionError into the log. Neither body is read now."""
    host = served.base.split("//")[1]
    h = {"Host": host, "Content-Type": "application/json"}
    assert request(served.base, "POST", "/api/threshold", h | {"Content-Length": "-1"}, b"")[0] == 411
    assert request(served.base, "POST", "/api/threshold", h | {"Content-Length": "1000000000"}, b"")[0] == 413
    deep = b"[" * 1000
    assert request(served.base, "POST", "/api/threshold", h | {"Content-Length": str(len(deep))}, deep)[0] == 400
    assert request(served.base, "GET", "/api/health", {"Host": host})[0] == 200


def test_idle_and_slow_clients_cannot_exhaust_the_server(model_and_video, monkeypatch):
    """More idle sockets than the cap: the next connection gets 503 at once, never a hang; the idle
    ones are closed when their header deadline passes, and the server answers again."""
    from edgetl import webserver

    monkeypatch.setattr(webserver, "MAX_CONNECTIONS", 6)
    monkeypatch.setattr(webserver, "HEADER_SECONDS", 8.0)  # long enough to see the server full on a busy machine
    model, video = model_and_video
    served = Served(model, video)
    idle = []
    try:
        host, port = served.base.split("//")[1].rsplit(":", 1)
        for _ in range(6):
            s = socket.create_connection((host, int(port)), timeout=10)
            s.sendall(b"GET /api/health HTTP/1.1\r\nHo")  # a request that never finishes its headers
            idle.append(s)
        # the server takes the six in as it accepts them: polled, so a busy machine only takes longer
        deadline = time.monotonic() + 6  # (within HEADER_SECONDS: then the server closes them)
        while request(served.base, "GET", "/api/health", {"Host": f"{host}:{port}"})[0] != 503:
            assert time.monotonic() < deadline, "six idle connections did not fill the server"
            time.sleep(0.05)
        for s in idle:  # each is closed by the server at its deadline (recv returns b"" then)
            s.settimeout(15)
            assert s.recv(100) == b""
        deadline = time.monotonic() + 15
        while request(served.base, "GET", "/api/health", {"Host": f"{host}:{port}"})[0] != 200:
            assert time.monotonic() < deadline, "the server did not recover"
            time.sleep(0.2)
    finally:
        for s in idle:
            s.close()
        served.stop()


def test_serves_ipv6_loopback(model_and_video):
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        socket.create_server(("::1", 0), family=socket.AF_INET6).close()
    except OSError:
        pytest.skip("no IPv6 loopback here")
    model, video = model_and_video
    served = Served(model, video, address="[::1]:0")
    try:
        assert served.url.startswith("http://[::1]:")
        status, body, _ = request(served.base, "GET", "/api/health", {"Host": served.base.split("//")[1]})
        assert status == 200 and json.loads(body)["status"] == "ok"
    finally:
        served.stop()


def test_the_ssh_hint_names_the_address_the_server_is_on(model_and_video):
    """The `ssh -L` hint named 127.0.0.1 for a server on 127.0.0.2."""
    model, video = model_and_video
    proc, url = serve_process(model, video, "127.0.0.2:0")
    try:
        port = url.rsplit(":", 1)[1].strip("/")
        hint = proc.stderr.readline()
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    assert f"ssh -L {port}:127.0.0.2:{port} THIS_HOST" in hint, hint
