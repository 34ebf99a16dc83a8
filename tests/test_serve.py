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

import cv2
import numpy as np
import pytest

from browser import browser_page, not_blank
from models import keras_mean_colour, to_tflite
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


def sse_rate(url: str, seconds: float) -> float:
    """Results per second read from /api/events over ``seconds``."""
    count, end = 0, time.monotonic() + seconds
    with urllib.request.urlopen(url, timeout=10) as stream:
        while time.monotonic() < end:
            line = stream.readline()
            count += line.startswith(b"data: ")
    return count / seconds


def test_the_page_shows_labels_fps_and_latency_in_a_browser(model_and_video):
    model, video = model_and_video
    served = Served(model, video)
    try:
        with browser_page() as (page, requested):
            page.goto(served.url)
            page.wait_for_function("document.getElementById('label').textContent.trim().length > 0", timeout=20000)
            assert page.inner_text("#label") in COLOURS
            page.wait_for_function("parseFloat(document.getElementById('fps').textContent) > 0", timeout=10000)
            assert float(page.inner_text("#lat-inference")) >= 0 and float(page.inner_text("#lat-preprocess")) >= 0
            assert page.locator("#topk li").count() == 3 and page.inner_text("#model").startswith("colour.tflite")
            page.wait_for_function("document.querySelector('#video img').naturalWidth > 0", timeout=10000)
            assert not_blank(page.screenshot())
            # the threshold control changes the running threshold: at 1.0 every frame is uncertain
            page.eval_on_selector("#threshold", "s => { s.value = '1'; s.dispatchEvent(new Event('change')); }")
            page.wait_for_function("document.getElementById('label').textContent === 'uncertain'", timeout=10000)
            assert served.options.threshold == 1.0
        assert all(u.startswith(served.base) for u in requested), requested
    finally:
        served.stop()
    assert served.summary.frames > 0


def test_a_viewer_that_stops_reading_slows_nobody(model_and_video):
    model, video = model_and_video
    served = Served(model, video)
    stalled = []
    try:
        alone = sse_rate(served.base + "/api/events", 3)
        port = int(served.base.rsplit(":", 1)[1])
        for _ in range(3):  # three video viewers that connect and never read a byte
            s = socket.socket()
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            s.connect(("127.0.0.1", port))
            s.sendall(b"GET /stream.mjpg HTTP/1.1\r\nHost: x\r\n\r\n")
            stalled.append(s)
        readers = []
        for _ in range(2):  # and two that watch normally
            def watch() -> None:
                with urllib.request.urlopen(served.base + "/stream.mjpg", timeout=10) as r:
                    end = time.monotonic() + 5
                    while time.monotonic() < end:
                        r.read(4096)
            t = threading.Thread(target=watch, daemon=True)
            t.start()
            readers.append(t)
        time.sleep(2)  # long enough for the stalled sockets' buffers to fill
        crowded = sse_rate(served.base + "/api/events", 3)
        health = json.loads(urllib.request.urlopen(served.base + "/api/health", timeout=5).read())
        assert health["viewers"] >= 3
    finally:
        for s in stalled:
            s.close()
        served.stop()
    assert alone > 5 and crowded >= 0.8 * alone, (alone, crowded)


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
        assert first.status == 200 and cookie == f"edgetl_token={token}"
        again = urllib.request.urlopen(urllib.request.Request(base + "/api/health", headers={"Cookie": cookie}), timeout=5)
        assert json.loads(again.read())["status"] == "ok"
        post = urllib.request.Request(base + "/api/threshold", data=b'{"threshold": 0.5}', method="POST")
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(post, timeout=5)
        assert e.value.code == 401
    finally:
        served.stop()


def test_sigterm_ends_a_served_run_with_its_summary(model_and_video):
    model, video = model_and_video
    proc = subprocess.Popen([sys.executable, "-m", "edgetl", "live", str(model), "--source", str(video), "--realtime",
                             "--serve", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = proc.stderr.readline()
        while "serving the live page at" not in line:
            assert line, "no URL printed"
            line = proc.stderr.readline()
        url = line.split(" at ")[1].strip()
        assert url.startswith("http://127.0.0.1:")  # loopback by default
        assert "ssh -L" in proc.stderr.readline()
        time.sleep(2)
        assert urllib.request.urlopen(url + "api/health", timeout=5).status == 200
        os.kill(proc.pid, signal.SIGTERM)  # what systemd sends
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary, bound = out.splitlines()[-2:]
    assert "FPS" in summary and "(interrupted)" in summary
    # the file is read at its own rate (a served file plays like a camera): that rate is the bound
    assert "of this pipeline's bound" in bound and "set by its slowest stage, read" in bound, bound
    assert "Traceback" not in err
