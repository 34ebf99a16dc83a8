"""`edgetl live`: frames -> shared preprocessing -> runtime -> labels, smoothed, shown, recorded.

Three threads overlap: one reads (decodes) frames, one resizes them, the caller's runs the model.
Live sources (cameras, streams) keep only the newest frame at each hand-over, so inference never
works on a stale one and a slow model builds no queue; files are read in order, every frame
classified. Frames stay BGR (OpenCV's order, what the window and the recorder want) until they are
at the model's size: resizing is per channel, so resizing BGR then swapping channels gives exactly
the pixels that resizing the RGB frame gives, for a tenth of the swapping work."""
from __future__ import annotations

import functools
import queue
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from enum import StrEnum

import numpy as np

from edgetl.cores import usable_cores
from edgetl.live.outbox import OutboxReport
from edgetl.live.sources import FrameError, Source
from edgetl.runtime import Classifier
from edgetl.runtime.confidence import UNKNOWN, is_unknown
from edgetl.runtime.task import DECISION

NO_LABEL = "none"
"""A multi-label model's answer when no label is present."""
MAX_LABELS_SHOWN = 20
"""Multi-label: labels with their scores on the overlay, the page and the JSON line at most."""
from edgetl.image import cv2 as _cv2


@dataclass
class LiveOptions:
    """How frames are classified and when to stop."""

    top_k: int = 3
    smooth: int = 0
    """Exponential moving average of scores over about this many frames (0: off)."""
    threshold: float | None = None
    """Below this top score the answer is "unknown" (None: the model's own threshold)."""
    realtime: bool = False
    """Treat a file like a camera: read it at its own frame rate and drop frames instead of
    classifying every one."""
    loop: bool = False
    """Read a video file or folder again from its start when it ends (until stopped)."""
    max_frames: int | None = None
    duration: float | None = None
    reconnect: float = 10.0
    """Seconds to keep retrying a camera or stream that stopped delivering."""


@dataclass
class Packet:
    """A frame from the capture threads (BGR, as OpenCV reads it) and its RGB pixels at the model's
    input size."""

    index: int
    frame: np.ndarray
    pixels: np.ndarray
    preprocess_ms: float


@dataclass
class FrameResult:
    """One classified frame (``frame`` is the source's BGR frame)."""

    index: int
    time: float
    top: list[tuple[str, float]]
    label: str
    """The top label, or "unknown" under the threshold."""
    latency_ms: dict[str, float]
    frame: np.ndarray = field(repr=False)
    dropped: int = 0
    """Frames dropped so far (live sources keep only the newest)."""
    unknown: bool = False
    """The top score was under the threshold."""
    labels: list[str] | None = None
    """Multi-label: every label present (score at or above 0.5), best first; ``label`` is then
    them joined ("ants, bees") or "none", and ``top`` every label's score (up to :data:`MAX_LABELS_SHOWN`)."""

    def to_dict(self) -> dict:
        """The JSON line of this frame."""
        return {"frame": self.index, "time": round(self.time, 4), "label": self.label, "unknown": self.unknown,
                **({"labels": self.labels} if self.labels is not None else {}),
                "top": [{"label": label, "score": round(score, 5)} for label, score in self.top],
                "latency_ms": {k: round(v, 3) for k, v in self.latency_ms.items()}, "dropped": self.dropped}


class Ended(StrEnum):
    """Why a live run ended (the summary's ``ended``)."""

    END_OF_SOURCE = "end of source"
    SOURCE_LOST = "source lost"
    """A camera or stream stopped answering and did not come back: the run failed (exit 1)."""
    MAX_FRAMES = "max frames"
    DURATION = "duration"
    QUIT = "quit"
    INTERRUPTED = "interrupted"


@dataclass
class Bound:
    """The pipeline's own bound on FPS (see :meth:`Summary.bound`)."""

    stage_ms: dict[str, float]
    """Milliseconds per frame each stage's thread worked (read, resize, classify)."""
    cpu_ms_per_frame: float
    inference_ms: float
    cores: int
    slowest_stage: str
    bound_fps: float
    bound_by: str
    """"cpu" when the CPU cost per frame over the cores is the bound, else the slowest stage's name."""
    of_bound: float
    """The FPS reached as a share of ``bound_fps``."""


@dataclass
class Summary:
    """What a run did."""

    frames: int = 0
    dropped: int = 0
    skipped: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    ended: Ended = Ended.END_OF_SOURCE
    paced_fps: float | None = None
    """The file's own frame rate when ``realtime`` paced it: what sets the FPS reached."""
    stage_s: dict[str, float] = field(default_factory=dict)
    """Wall seconds each stage's thread spent working, waits excluded: read (and decode), resize,
    classify (inference and everything the caller does with a result: drawing, printing, serving)."""
    inference_s: float = 0.0
    cpu_s: float = 0.0
    """CPU seconds of the whole process over the run, every thread and the runtime's pool."""
    cores: int = 1
    outbox: OutboxReport | None = None
    """What ``--capture`` kept."""

    @property
    def fps(self) -> float:
        """Frames classified per second of the run."""
        return self.frames / self.seconds if self.seconds else 0.0

    def latency_ms(self, percentile: float) -> float:
        """A percentile of the per-frame latency (0 when no frame was classified)."""
        return float(np.percentile(np.array(self.latencies or [0.0]), percentile))

    def bound(self) -> Bound | None:
        """The pipeline's own bound on FPS: the stages' CPU cost per frame spread over the cores,
        or its slowest stage, whichever is slower; and the FPS reached as a share of it. (Bare
        inference is the wrong yardstick: decoding and resizing cost CPU too.)"""
        if not self.frames:
            return None
        per_frame = {k: v / self.frames * 1e3 for k, v in self.stage_s.items()}
        cpu_ms = self.cpu_s / self.frames * 1e3
        slowest = max(per_frame, key=per_frame.get)
        bound_ms = max(cpu_ms / self.cores, per_frame[slowest])
        return Bound({k: round(v, 3) for k, v in per_frame.items()}, round(cpu_ms, 3),
                     round(self.inference_s / self.frames * 1e3, 3), self.cores, slowest, 1e3 / bound_ms,
                     "cpu" if cpu_ms / self.cores >= per_frame[slowest] else slowest, self.fps * bound_ms / 1e3)

    def to_dict(self) -> dict:
        """The JSON summary line."""
        bound = self.bound()
        return {"frames": self.frames, "dropped": self.dropped, "skipped": self.skipped, "fps": self.fps,
                "p50_ms": self.latency_ms(50), "p90_ms": self.latency_ms(90),
                "seconds": self.seconds, "ended": str(self.ended), "paced_fps": self.paced_fps,
                **({"outbox": asdict(self.outbox)} if self.outbox else {})} | (asdict(bound) if bound else {})


TIMED_OUT = object()
"""What :meth:`Capture.get` returns when the caller's deadline passed before a frame came."""
READER_JOIN_S = 10.0
"""How long stopping waits for a reader inside ``read()`` (bounded by the source's read timeout)."""


class _Handover:
    """Frames passed from one thread to the next: a short queue for files (every frame kept), or a
    one-place box for live sources whose unread item is replaced by the newer one and counted."""

    def __init__(self, keep_latest: bool, stop: threading.Event):
        self.keep_latest, self.stop, self.dropped = keep_latest, stop, 0
        self._q: queue.Queue = queue.Queue(maxsize=1 if keep_latest else 4)

    def put(self, item) -> None:
        """Hand ``item`` over (blocks for files while the next stage is busy, until stopped)."""
        if self.keep_latest:
            try:
                self._q.get_nowait()
                self.dropped += 1
            except queue.Empty:
                pass
            self._q.put(item)
            return
        while not self.stop.is_set():
            try:
                self._q.put(item, timeout=0.1)
                return
            except queue.Full:
                continue

    def get(self, deadline: float | None = None):
        """The next item; None once the pipeline is stopping; ``TIMED_OUT`` once the
        ``time.monotonic()`` deadline has passed."""
        while True:
            try:
                return self._q.get(timeout=0.1)
            except queue.Empty:
                if self.stop.is_set():
                    return None
                if deadline is not None and time.monotonic() >= deadline:
                    return TIMED_OUT

    def drain(self) -> None:
        """Empty the hand-over so that a blocked producer can see the stop."""
        try:
            while True:
                self._q.get_nowait()
        except queue.Empty:
            pass


class Capture:
    """Reads the source in one thread and resizes frames in another, so decoding, resizing and
    inference overlap; ``get`` returns the next packet (None at the end)."""

    def __init__(self, source: Source, prepare: Callable[[np.ndarray], np.ndarray], keep_latest: bool,
                 reconnect: float, pace_fps: float = 0.0, on_read: Callable[[np.ndarray], None] | None = None):
        self.source, self.prepare, self.reconnect = source, prepare, reconnect
        self.pace_fps, self.on_read = pace_fps, on_read
        self.skipped = 0
        self.lost = False
        self.read_s = self.resize_s = 0.0
        self._stop = threading.Event()
        self._frames = _Handover(keep_latest, self._stop)
        self._packets = _Handover(keep_latest, self._stop)
        self._threads = [threading.Thread(target=self._read, name="edgetl-capture", daemon=True),
                         threading.Thread(target=self._resize, name="edgetl-preprocess", daemon=True)]
        for t in self._threads:
            t.start()

    @property
    def dropped(self) -> int:
        """Frames replaced by newer ones before they were classified."""
        return self._frames.dropped + self._packets.dropped

    def _reconnect(self) -> bool:
        deadline, delay = time.monotonic() + self.reconnect, 0.1
        while time.monotonic() < deadline and not self._stop.is_set():
            time.sleep(delay)
            if self.source.reopen():
                return True
            delay = min(delay * 2, 2.0)
        return False

    def _read(self) -> None:
        index = 0
        start = time.monotonic()
        try:
            while not self._stop.is_set():
                # The read stage's time includes waiting for the source's next frame (a camera's
                # rate, a paced file's): that is the source's own bound.
                t0 = time.perf_counter()
                if self.pace_fps:  # a file played like a camera: frames arrive at the file's own rate
                    wait = start + index / self.pace_fps - time.monotonic()
                    if wait > 0:
                        self._stop.wait(wait)
                try:
                    frame = self.source.read()
                except FrameError:
                    if not self.source.live:
                        self.skipped += 1
                        continue
                    if self._reconnect():
                        continue
                    self.lost = True
                    break
                if frame is None:
                    break
                self.read_s += time.perf_counter() - t0
                if self.on_read is not None:
                    self.on_read(frame)
                self._frames.put((index, frame))
                index += 1
        finally:
            self._frames.put(None)

    def _resize(self) -> None:
        while (item := self._frames.get()) is not None:
            index, frame = item
            t0 = time.perf_counter()
            pixels = self.prepare(frame)
            spent = time.perf_counter() - t0
            self.resize_s += spent
            self._packets.put(Packet(index, frame, pixels, spent * 1e3))
        self._packets.put(None)

    def get(self, deadline: float | None = None):
        """The next packet; None when the source ended; ``TIMED_OUT`` after ``deadline``."""
        return self._packets.get(deadline)

    def stop(self) -> None:
        """Stop reading and release the source once no thread is inside ``read()`` any more
        (releasing a capture that another thread is reading from can crash OpenCV)."""
        self._stop.set()
        self._packets.drain()
        self._frames.drain()
        for t in self._threads:
            t.join(timeout=READER_JOIN_S)
        if not any(t.is_alive() for t in self._threads):
            self.source.close()


def model_pixels(clf: Classifier, frame_bgr: np.ndarray) -> np.ndarray:
    """RGB pixels at the model's input size for a BGR frame, through the shared resize path."""
    cv2 = _cv2()
    return cv2.cvtColor(clf.resize(frame_bgr), cv2.COLOR_BGR2RGB)


def classify_stream(clf: Classifier, source: Source, options: LiveOptions, summary: Summary,
                    on_read: Callable[[np.ndarray], None] | None = None) -> Iterator[FrameResult]:
    """Classify frames from ``source`` until it ends, a limit is reached, or the caller stops.
    ``on_read`` sees every frame as it is read, at the source's rate (the served video)."""
    paced = options.realtime and not source.live
    capture = Capture(source, functools.partial(model_pixels, clf), keep_latest=source.live or options.realtime,
                      reconnect=options.reconnect, pace_fps=(source.fps or 30.0) if paced else 0.0, on_read=on_read)
    ema: np.ndarray | None = None
    alpha = 2.0 / (options.smooth + 1) if options.smooth > 1 else 1.0
    infer_s = waited_s = 0.0
    cpu0 = time.process_time()
    start = time.perf_counter()
    deadline = time.monotonic() + options.duration if options.duration is not None else None
    try:
        while True:
            if options.max_frames is not None and summary.frames >= options.max_frames:
                summary.ended = Ended.MAX_FRAMES
                break
            t_wait = time.perf_counter()
            packet = capture.get(deadline)
            waited = (time.perf_counter() - t_wait) * 1e3
            waited_s += waited / 1e3
            if packet is TIMED_OUT or (deadline is not None and time.monotonic() >= deadline):
                summary.ended = Ended.DURATION
                break
            if packet is None:
                summary.ended = Ended.SOURCE_LOST if capture.lost else Ended.END_OF_SOURCE
                break
            t0 = time.perf_counter()
            x = clf.to_input(packet.pixels[None])
            probs = clf.probabilities(clf.infer(x))[0]
            t1 = time.perf_counter()
            ema = probs if ema is None else alpha * probs + (1 - alpha) * ema
            present = None
            if clf.multi_label:  # every present label, then the nearest others, on the overlay and the page
                shown = max(options.top_k, int((ema >= DECISION).sum()))
                top = [(clf.labels[i], float(ema[i])) for i in np.argsort(-ema)[:min(shown, MAX_LABELS_SHOWN)]]
                present = [clf.labels[i] for i in np.argsort(-ema) if ema[i] >= DECISION]
                unknown, label = False, ", ".join(present) or NO_LABEL
            else:
                order = np.argsort(-ema)[: options.top_k]
                top = [(clf.labels[i], float(ema[i])) for i in order]
                unknown = is_unknown(top[0][1], clf.threshold if options.threshold is None else options.threshold)
                label = UNKNOWN if unknown else top[0][0]
            infer_ms = (t1 - t0) * 1e3
            infer_s += t1 - t0
            latency = {"capture_wait": waited, "preprocess": packet.preprocess_ms, "inference": infer_ms,
                       "total": packet.preprocess_ms + infer_ms}
            summary.frames += 1
            summary.latencies.append(latency["total"])
            yield FrameResult(packet.index, time.perf_counter() - start, top, label, latency, packet.frame,
                              capture.dropped, unknown, present)
    finally:
        summary.seconds = time.perf_counter() - start
        summary.cpu_s = time.process_time() - cpu0
        summary.cores = usable_cores()
        summary.stage_s = {"read": capture.read_s, "resize": capture.resize_s, "classify": summary.seconds - waited_s}
        summary.inference_s = infer_s
        summary.dropped, summary.skipped = capture.dropped, capture.skipped
        capture.stop()
