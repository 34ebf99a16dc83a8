"""Live classification from a camera, a video, a stream or a folder (no TensorFlow)."""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path

from edgetl.errors import EdgetlError
from edgetl.live.outbox import Outbox, OutboxPolicy
from edgetl.live.pipeline import Ended, FrameResult, LiveOptions, Summary, classify_stream
from edgetl.live.sources import CaptureRequest, LoopingSource, open_source
from edgetl.runtime import Classifier, load


def _opened(source: str | int, request: CaptureRequest, opts: LiveOptions):
    """The source, read again from its start at its end when ``opts.loop``."""
    src = open_source(source, request)
    return LoopingSource(src) if opts.loop else src


def run(model: str | Path | Classifier, source: str | int = 0, options: LiveOptions | None = None,
        request: CaptureRequest | None = None, show: bool = False, record: str | Path | None = None,
        on_frame: Callable[[FrameResult], None] | None = None, threads: int | None = None,
        labels: str | Path | None = None, serve: str | None = None,
        on_serving: Callable[[str], None] | None = None, capture: OutboxPolicy | None = None) -> Summary:
    """Classify every frame of ``source`` (see :class:`LiveOptions`), calling ``on_frame`` for each,
    showing a window when ``show``, writing the annotated video to ``record``, and serving the
    page and API of :mod:`edgetl.live.serve` on ``serve`` ("[HOST:]PORT"; ``on_serving`` gets its
    URL), and keeping the frames it doubted in the outbox ``capture`` describes
    (:mod:`edgetl.live.outbox`). Returns the summary; Ctrl-C and SIGTERM (through the CLI) end the run cleanly."""
    from edgetl.live.overlay import annotate

    opts = options or LiveOptions()
    clf = model if isinstance(model, Classifier) else load(model, threads=threads, labels=labels)
    if opts.threshold is None:
        # The model's own; the served page's slider starts at it. Set in place: the options are
        # the run's live state (the page's slider changes them, a caller's stop flag too).
        opts.threshold = clf.threshold
    # The model's size lets sources decode and ask the camera for no more than it needs.
    request = dataclasses.replace(request or CaptureRequest(), pixels=clf.pixels)
    server = None
    if serve is not None:
        from edgetl.live.serve import LiveServer, model_facts, parse_address

        address = parse_address(serve)  # checked before the camera opens
        src = _opened(source, request, opts)
        server = LiveServer(address, model_facts(clf.path, clf), opts)
        if on_serving:
            on_serving(server.url)
    else:
        src = _opened(source, request, opts)
    summary = Summary()
    if opts.realtime and not src.live:
        summary.paced_fps = src.fps or 30.0
    writer = None
    cv2 = None
    if show or record:
        from edgetl.image import cv2 as _cv2

        cv2 = _cv2()
    fps_clock: list[float] = []
    outbox = Outbox(capture, clf.path.name, wait=not (src.live or opts.realtime)) if capture is not None else None
    try:
        for result in classify_stream(clf, src, opts, summary, on_read=server.publish_frame if server else None):
            now = time.perf_counter()
            fps_clock = [t for t in fps_clock if now - t < 1.0] + [now]
            if on_frame:
                on_frame(result)
            if outbox is not None:
                outbox.offer(result)
            if server is not None:
                server.publish_result(result.to_dict() | {"fps": float(len(fps_clock))})
            if not (show or record):
                continue
            image = annotate(result.frame, result.top, result.label, len(fps_clock), result.latency_ms,
                             unknown=result.unknown)
            if record:
                if writer is None:
                    h, w = image.shape[:2]
                    writer = cv2.VideoWriter(str(record), cv2.VideoWriter_fourcc(*"mp4v"), src.fps or 30.0, (w, h))
                    if not writer.isOpened():
                        raise EdgetlError("cannot write the video", path=record, fix="use a .mp4 or .avi path in a writable folder")
                writer.write(image)
            if show:
                cv2.imshow("edgetl live", image)
                if cv2.waitKey(1) & 0xFF in (ord("q"), 27):
                    summary.ended = Ended.QUIT
                    break
    except KeyboardInterrupt:
        summary.ended = Ended.INTERRUPTED
    finally:
        if outbox is not None:
            outbox.close()
            summary.outbox = outbox.report()
        if server is not None:
            server.close()
        if writer is not None:
            writer.release()
        if show and cv2 is not None:
            cv2.destroyAllWindows()
    return summary


__all__ = ["CaptureRequest", "Ended", "LiveOptions", "OutboxPolicy", "Summary", "run"]
