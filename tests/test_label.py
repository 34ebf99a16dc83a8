"""`edgetl label`: the page driven by the keyboard in headless Chromium, every decision on disk at
once (and surviving a killed server), undo, duplicates, the lock, the CSV layout, hostile names
and labels, bad input. Frames are real photos (hymenoptera's val images, scikit-image's)."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from helpers.browser import browser_page
from helpers.cli import one_error, run_cli
from helpers.other_photos import other_photos
from helpers.shared import HYMENOPTERA

from edgetl.errors import EdgetlError

pytestmark = pytest.mark.skipif(not HYMENOPTERA.exists(), reason=f"needs {HYMENOPTERA} (set EDGETL_SHARED)")


def _frame_name(n: int) -> str:
    return f"{1700000000000000000 + n:019d}_{n}"


def make_harvest(root: Path, per_class: int = 3, others: int = 2) -> Path:
    """A harvest folder as `edgetl harvest` writes it: hymenoptera val photos and photos of other
    things in unsorted/, each with a device's score note; the ants/bees guesses are right but
    doubtful, the other photos answered "unknown" (most doubtful)."""
    h = root / "harvest" / "mypi"
    (h / "unsorted").mkdir(parents=True)
    (h / "scores").mkdir()
    n = 0
    photos = [(c, p) for c in ("ants", "bees") for p in sorted((HYMENOPTERA / "val" / c).glob("*.jpg"))[:per_class]]
    photos += [("", p) for p in other_photos()[:others]]
    for i, (c, p) in enumerate(photos):
        n += 1
        stem = _frame_name(n)
        shutil.copy(p, h / "unsorted" / f"{stem}{p.suffix}")
        if c:
            score = 0.55 + 0.4 * i / len(photos)
            top = [{"label": c, "score": score}, {"label": "bees" if c == "ants" else "ants", "score": 1 - score}]
            note = {"answer": c, "top": top, "reason": "close", "captured": "2026-12-01T10:00:00", "model": "m.tflite"}
        else:
            note = {"answer": "unknown", "top": [{"label": "bees", "score": 0.41}, {"label": "ants", "score": 0.39}],
                    "reason": "unknown", "captured": "2026-12-01T10:00:00", "model": "m.tflite"}
        (h / "scores" / f"{stem}.json").write_text(json.dumps(note))
    return h


def make_data(root: Path, per_class: int = 6) -> Path:
    """A class-folder dataset of hymenoptera train photos."""
    data = root / "photos"
    for c in ("ants", "bees"):
        (data / c).mkdir(parents=True)
        for p in sorted((HYMENOPTERA / "train" / c).glob("*.jpg"))[:per_class]:
            shutil.copy(p, data / c / p.name)
    return data


class Labelling:
    """`label()` serving in a thread of this process until stopped."""

    def __init__(self, folder: Path, **kw):
        from edgetl.labelling import label

        self.stop, self.ready = threading.Event(), threading.Event()
        self.summary, self.error = None, None

        def serving(url, session):
            self.url, self.session = url, session
            self.ready.set()

        def target():
            try:
                self.summary = label(folder, serve="127.0.0.1:0", on_serving=serving, stop=self.stop, **kw)
            except Exception as e:  # noqa: BLE001 - handed to the test
                self.error = e
                self.ready.set()

        self.thread = threading.Thread(target=target, daemon=True)
        self.thread.start()
        assert self.ready.wait(60), "the page was never served"
        if self.error:
            raise self.error

    def get(self, path: str) -> dict:
        return json.load(urllib.request.urlopen(self.url + path, timeout=30))

    def post(self, path: str, body: dict) -> dict:
        req = urllib.request.Request(self.url + path, json.dumps(body).encode(), {"Content-Type": "application/json"})
        return json.load(urllib.request.urlopen(req, timeout=30))

    def close(self):
        self.stop.set()
        self.thread.join(30)
        return self.summary


def left_is(page, n: str) -> None:
    """Wait until the page's counter shows ``n`` frames left (a locator assertion: the page's CSP
    allows no script of the test's own)."""
    from playwright.sync_api import expect

    expect(page.locator("#left")).to_have_text(n, timeout=10000)


def images_in(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if not p.name.startswith(".")) if folder.exists() else []


def test_the_page_labels_by_keyboard_and_every_decision_is_on_disk(tmp_path):
    """In Chromium, with the keyboard only: the most doubtful frame ("unknown" answers) comes
    first; u files it as none of these, z takes it back, 1 files it as ants, Enter accepts the
    guess, x discards, space selects two and 2 files both as bees. Each decision is on disk when
    the page says so, with its provenance line; the counter counts down."""
    h, data = make_harvest(tmp_path), make_data(tmp_path)
    job = Labelling(h, into=data)
    try:
        with browser_page() as (page, requested):
            page.goto(job.url)
            page.locator(".cell").first.wait_for(timeout=20000)
            assert page.inner_text("#left") == "8" and page.locator("#keys button").count() == 7
            first = job.get("api/frames")["frames"][0]
            assert first["unknown"] and first["name"].endswith(".png")  # scikit-image's photos answered unknown
            page.keyboard.press("u")
            left_is(page, "7")
            assert images_in(tmp_path / "photos-unknown") == [first["name"]]
            assert "photos-unknown" in page.inner_text("#said")
            page.keyboard.press("z")
            left_is(page, "8")
            assert images_in(tmp_path / "photos-unknown") == [] and (h / "unsorted" / first["name"]).exists()
            assert page.inner_text("#name").startswith(first["name"])  # the undone frame is the current one again
            page.keyboard.press("1")  # a photo of something else, filed as ants by the user's choice
            left_is(page, "7")
            assert first["name"] in images_in(data / "ants")
            nxt = job.get("api/frames")["frames"][0]
            page.keyboard.press("x")
            left_is(page, "6")
            assert images_in(h / "discarded") == [nxt["name"]]
            guess = job.get("api/frames")["frames"][0]
            assert guess["guess"] in ("ants", "bees")
            page.keyboard.press("Enter")
            left_is(page, "5")
            assert guess["name"] in images_in(data / guess["guess"])
            two = [f["name"] for f in job.get("api/frames")["frames"][:2]]
            page.keyboard.press(" ")
            page.keyboard.press("ArrowRight")
            page.keyboard.press(" ")
            assert page.locator(".cell.sel").count() == 2
            page.keyboard.press("2")
            left_is(page, "3")
            assert set(two) <= set(images_in(data / "bees"))
            assert page.inner_text("#counts").count("bees") == 1
            assert all(u.startswith(job.url.rstrip("/")) for u in requested)  # nothing from elsewhere
        assert sorted(images_in(h / "unsorted")) == sorted(f["name"] for f in job.get("api/frames")["frames"])
    finally:
        summary = job.close()
    assert summary.left == 3 and summary.decided == {"ants": 1 + (guess["guess"] == "ants"), "discard": 1,
                                                     "bees": 2 + (guess["guess"] == "bees")}
    lines = [json.loads(x) for x in (data / ".edgetl-provenance.jsonl").read_text().splitlines()]
    added = [x for x in lines if not x.get("undone")]
    assert len(added) == 5 and sum(1 for x in lines if x.get("undone")) == 1  # u (taken back), 1, Enter, 2 x2
    last = added[-1]
    assert last["device"] == "mypi" and last["model"] == "m.tflite" and len(last["sha256"]) == 64
    assert last["decision"] == "label" and Path(last["file"]).parent == data / "bees"
    from edgetl.data.audit import audit

    assert audit(data).counts()["ants"]["train"] + audit(data).counts()["ants"]["val"] == 6 + 1 + (guess["guess"] == "ants")


def test_a_duplicate_is_flagged_and_not_added_twice_and_a_name_is_never_overwritten(tmp_path):
    """A frame whose content is already in DATA is flagged on the page and refused as a class;
    a frame named like a file already in DATA gets a new name, the old file untouched."""
    h, data = make_harvest(tmp_path, per_class=1, others=0), make_data(tmp_path)
    dup = h / "unsorted" / (_frame_name(50) + ".jpg")
    shutil.copy(next(iter(sorted((data / "ants").iterdir()))), dup)
    (data / "ants" / (_frame_name(1) + ".jpg")).write_bytes((data / "bees").iterdir().__next__().read_bytes())
    before = (data / "ants" / (_frame_name(1) + ".jpg")).read_bytes()
    job = Labelling(h, into=data)
    try:
        frames = {f["name"]: f for f in job.get("api/frames")["frames"]}
        assert frames[dup.name]["duplicate"] and Path(frames[dup.name]["duplicate"]).parent == data / "ants"
        out = job.post("api/decide", {"frames": [frames[dup.name]["id"]], "action": "label", "label": "ants"})
        assert not out["outcomes"][0]["ok"] and "already in the dataset" in out["outcomes"][0]["said"]
        assert dup.exists()
        one = frames[_frame_name(1) + ".jpg"]
        out = job.post("api/decide", {"frames": [one["id"]], "action": "label", "label": "ants"})
        assert out["outcomes"][0]["ok"] and out["outcomes"][0]["said"].endswith(_frame_name(1) + "-2.jpg")
        assert (data / "ants" / (_frame_name(1) + ".jpg")).read_bytes() == before
        for bad in ({"frames": [one["id"]], "action": "label", "label": "../../etc"}, {"frames": [999], "action": "x"},
                    {"frames": "all", "action": "discard"}, {"frames": [True], "action": "discard"}):
            try:
                answer = job.post("api/decide", bad)
                assert not any(o["ok"] for o in answer["outcomes"])
            except urllib.error.HTTPError as e:
                assert e.code == 400
        assert not (tmp_path / "etc").exists()
    finally:
        job.close()


def test_a_second_label_on_the_same_folder_is_refused(tmp_path):
    h, data = make_harvest(tmp_path, per_class=1, others=0), make_data(tmp_path, 2)
    job = Labelling(h, into=data)
    try:
        with pytest.raises(EdgetlError, match="another edgetl process"):
            Labelling(h, into=data)
    finally:
        job.close()


def test_a_killed_server_loses_no_decision_and_leaves_no_half_file(tmp_path):
    """`edgetl label` as a process, decisions sent, then SIGKILL: every decision answered is on
    disk, nothing is left under a temporary name, and a new session lists only what is left; a
    move the crash cut between the dataset and the journal's removal is finished by the next."""
    h, data = make_harvest(tmp_path), make_data(tmp_path)
    proc = subprocess.Popen([sys.executable, "-m", "edgetl", "label", str(h), "--into", str(data), "--serve", "127.0.0.1:0"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        url = None
        deadline = time.monotonic() + 120
        while url is None and time.monotonic() < deadline:
            line = proc.stderr.readline()
            if "serving the labelling page at " in line:
                url = line.split(" at ", 1)[1].strip()
        assert url, "no URL printed"
        frames = json.load(urllib.request.urlopen(url + "api/frames"))["frames"]
        for f in frames[:4]:
            req = urllib.request.Request(url + "api/decide", json.dumps({"frames": [f["id"]], "action": "label",
                                                                          "label": "bees"}).encode(),
                                         {"Content-Type": "application/json"})
            assert json.load(urllib.request.urlopen(req))["outcomes"][0]["ok"]
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    moved = {f["name"] for f in frames[:4]}
    assert moved <= set(images_in(data / "bees")) and not moved & set(images_in(h / "unsorted"))
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    # a crash after the frame reached the dataset and the journal, before it left the folder
    survivor = frames[4]["name"]
    shutil.copy(h / "unsorted" / survivor, data / "ants" / survivor)
    from edgetl.runtime.manifest import file_sha256 as file_hash
    from edgetl.labelling.session import JOURNAL

    with open(h / JOURNAL, "a") as j:
        j.write(json.dumps({"seq": 99, "action": "label", "source": str(h / "unsorted" / survivor),
                            "dest": str(data / "ants" / survivor), "label": "ants",
                            "sha256": file_hash(h / "unsorted" / survivor)}) + "\n")
    job = Labelling(h, into=data)
    try:
        left = {f["name"] for f in job.get("api/frames")["frames"]}
        assert left == {f["name"] for f in frames[5:]}
        assert job.post("api/undo", {})["ok"]  # the newest decision, from the earlier session, comes back
        assert (h / "unsorted" / survivor).exists() and not (data / "ants" / survivor).exists()
    finally:
        summary = job.close()
    assert summary.recovered == 1


def test_a_csv_dataset_gets_a_row_and_undo_takes_it_away(tmp_path):
    h = make_harvest(tmp_path, per_class=1, others=0)
    src = make_data(tmp_path, 3)
    rows = ["path,label"] + [f"photos/{c}/{p.name},{c}" for c in ("ants", "bees") for p in sorted((src / c).iterdir())]
    csv_path = tmp_path / "data.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    job = Labelling(h, into=csv_path)
    try:
        f = job.get("api/frames")["frames"][0]
        assert job.post("api/decide", {"frames": [f["id"]], "action": "label", "label": "bees"})["outcomes"][0]["ok"]
        assert csv_path.read_text().splitlines()[-1] == f"labelled/bees/{f['name']},bees"
        assert (tmp_path / "labelled" / "bees" / f["name"]).exists()
        from edgetl.data.audit import audit

        assert sum(audit(csv_path).counts()["bees"].values()) == 4
        assert job.post("api/undo", {})["ok"]
        assert csv_path.read_text().splitlines() == rows
    finally:
        job.close()


def test_hostile_file_names_and_labels_stay_text(tmp_path):
    """A frame named like markup and a class named like markup are shown as text (no element is
    made from them); a run label that is a path is refused with one line."""
    h = tmp_path / "frames"
    h.mkdir()
    evil = '<img src=x onerror="document.title=1">.jpg'
    shutil.copy(sorted((HYMENOPTERA / "val" / "ants").glob("*.jpg"))[0], h / evil)
    data = tmp_path / "photos"
    for c in ("<b onclick=x>ants", "bees"):
        (data / c).mkdir(parents=True)
        for p in sorted((HYMENOPTERA / "train" / "ants").glob("*.jpg"))[:2] if c != "bees" else \
                sorted((HYMENOPTERA / "train" / "bees").glob("*.jpg"))[:2]:
            shutil.copy(p, data / c / p.name)
    job = Labelling(h, into=data)
    try:
        with browser_page() as (page, _):
            page.goto(job.url)
            page.locator(".cell").first.wait_for(timeout=20000)
            assert page.locator("#keys b").count() == 0 and page.locator("img[src=x]").count() == 0
            assert "<b onclick=x>ants" in page.inner_text("#keys") and evil in page.inner_text("#name")
            assert page.title() == "edgetl label"
            page.keyboard.press("1")
            left_is(page, "0")
        assert (data / "<b onclick=x>ants" / evil).exists()
    finally:
        job.close()
    from edgetl.labelling.dataset import open_dataset

    for bad in ("../up", "a/b", "esc\x1b[31m"):
        with pytest.raises(EdgetlError, match="cannot be a folder name"):
            open_dataset(tmp_path / "new", [bad, "fine"])


def test_bad_input_is_one_line(tmp_path):
    data = make_data(tmp_path, 2)
    proc = run_cli("label", tmp_path / "nowhere", "--into", data)
    assert "no such folder of frames" in one_error(proc)
    (tmp_path / "frames").mkdir()
    proc = run_cli("label", tmp_path / "frames")
    assert "where do the labelled frames go" in one_error(proc)
    proc = run_cli("label", tmp_path / "frames", "--into", data, "--serve", "nonsense")
    assert "is not [HOST:]PORT" in one_error(proc)
    proc = run_cli("label", tmp_path / "frames", "--into", tmp_path / "empty-new")
    assert "no run to take the classes from" in one_error(proc)


_RSS_SCRIPT = r"""
import json, sys, urllib.request
from edgetl.labelling import open_session
from edgetl.labelling.serve import LabelServer
from edgetl.webserver import parse_address
session = open_session(sys.argv[1], into=sys.argv[2])
server = LabelServer(session, parse_address("127.0.0.1:0"))
listed, offset = 0, 0
while True:
    page = json.load(urllib.request.urlopen(server.url + f"api/frames?offset={offset}&limit=1000"))
    if not page["frames"]:
        break
    assert len(page["frames"]) <= 200
    listed += len(page["frames"])
    offset += len(page["frames"])
for f in page and json.load(urllib.request.urlopen(server.url + "api/frames?offset=0&limit=60"))["frames"]:
    urllib.request.urlopen(server.url + f"thumb/{f['id']}").read()
server.close()
hwm = next(int(line.split()[1]) for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({"listed": listed, "peak_mb": hwm / 1024}))
"""


def test_thousands_of_frames_are_paged_and_memory_stays_flat(tmp_path):
    """500 and 5,000 frames: every frame is listed through pages of at most 200, and the peak
    memory of the whole session (listing, hashing, serving every page and a page of thumbnails)
    grows by less than 40 MB for ten times the frames (about 8 KB a frame at most)."""
    import cv2

    data = make_data(tmp_path, 2)
    photo = cv2.resize(cv2.imread(str(sorted((HYMENOPTERA / "val" / "bees").glob("*.jpg"))[0])), (96, 96))
    peaks = {}
    for n in (500, 5000):
        folder = tmp_path / f"frames{n}"
        folder.mkdir()
        for i in range(n):  # a real photo, each copy a little different so no two frames share a hash
            frame = photo.copy()
            frame[0, 0] = (i % 256, i // 256 % 256, 7)
            cv2.imwrite(str(folder / f"{_frame_name(i)}.png"), frame)
        proc = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, str(folder), str(data)], capture_output=True,
                              text=True, timeout=600)
        assert proc.returncode == 0, proc.stderr[-2000:]
        got = json.loads(proc.stdout)
        assert got["listed"] == n
        peaks[n] = got["peak_mb"]
    assert peaks[5000] - peaks[500] < 40, peaks


def test_a_new_class_typed_in_the_page_gets_the_next_key_and_its_folder(tmp_path):
    """A kind the dataset lacks is typed once in the page: it becomes key 3 and its frames make
    its folder (what `train --from` then learns as a new class); a name that cannot be a folder
    is refused in the page, as text."""
    h, data = make_harvest(tmp_path, per_class=1, others=1), make_data(tmp_path, 2)
    job = Labelling(h, into=data)
    try:
        with browser_page() as (page, _):
            page.goto(job.url)
            page.locator(".cell").first.wait_for(timeout=20000)
            page.fill("#classname", "../escape")
            page.click("#newclass button")
            from playwright.sync_api import expect

            expect(page.locator("#said")).to_contain_text("cannot be a folder name", timeout=10000)
            page.fill("#classname", "wasps")
            page.press("#classname", "Enter")
            expect(page.locator("#keys button").nth(2)).to_contain_text("wasps", timeout=10000)
            first = job.get("api/frames")["frames"][0]["name"]
            page.locator("#big").click()  # leave the text field: keys act on frames again
            page.keyboard.press("3")
            left_is(page, "2")
        assert images_in(data / "wasps") == [first] and not (tmp_path / "escape").exists()
    finally:
        job.close()
