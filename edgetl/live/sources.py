"""Frame sources: camera index, video file, RTSP/HTTP stream, folder or glob of images, picamera2.

Each yields BGR uint8 frames, OpenCV's own order (no conversion of full-size frames; the pipeline
swaps channels after resizing). numpy and OpenCV only."""
from __future__ import annotations

import abc
import glob
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edgetl.errors import EdgetlError
from edgetl.image import IMAGE_EXTENSIONS, DecodeError, cv2 as _cv2, decode_frame, read_file
from edgetl.runtime.spec import PixelSpec
from edgetl.registry import Registry


OPEN_TIMEOUT_MS = 10_000
READ_TIMEOUT_MS = 5_000
"""A stream that delivers no frame for this long counts as lost (then --reconnect applies)."""


@dataclass
class CaptureRequest:
    """What the user asked the camera for (0: chosen from the model's size, else the camera's
    default), and the model's input size, which lets sources decode no more than it needs."""

    width: int = 0
    height: int = 0
    fps: float = 0
    pixels: PixelSpec | None = None
    """The model's input: a camera given no size is asked for a frame near it, and JPEG frames at
    least twice as large decode at a reduced scale (unless ``full_decode``)."""
    full_decode: bool = False

    def decode_target(self) -> tuple[int, int] | None:
        """The (width, height) JPEG frames may be reduced towards, or None to decode them whole."""
        return None if self.full_decode or self.pixels is None else (self.pixels.width, self.pixels.height)

    def frame_size(self) -> tuple[int, int]:
        """The camera frame size to ask for: the user's, else the smallest common mode that
        covers the model's input, else (0, 0) for the camera's default."""
        if self.width or self.height or self.pixels is None:
            return self.width, self.height
        mw, mh = self.pixels.width, self.pixels.height
        return next(((w, h) for w, h in CAMERA_MODES if w >= mw and h >= mh), (0, 0))


CAMERA_MODES = ((320, 240), (640, 480), (1280, 720), (1920, 1080))
"""Frame sizes nearly every USB camera and the Pi camera offer, smallest first."""


class Source(abc.ABC):
    """A source of BGR frames. ``read`` returns a frame, None at the end, or raises ``FrameError``
    for one unreadable frame; ``live`` sources (cameras, streams) can drop frames and reconnect."""

    name: str = ""
    live: bool = False
    fps: float = 0.0
    frame_count: int | None = None

    @abc.abstractmethod
    def read(self) -> np.ndarray | None:
        """The next BGR frame, or None at the end."""

    def reopen(self) -> bool:
        """Try to open the source again after a failure; True when it works."""
        return False

    def close(self) -> None:
        """Release the device or file."""


class FrameError(Exception):
    """One frame could not be read; the next may work."""


class VideoSource(Source):
    """cv2.VideoCapture over a camera index, a video file or a stream URL."""

    def __init__(self, target: int | str, live: bool, request: CaptureRequest | None = None):
        self.target, self.live, self.request = target, live, request or CaptureRequest()
        self.name = f"camera {target}" if isinstance(target, int) else str(target)
        self.cap = self._open()
        if self.cap is None:
            raise self._missing()
        self.fps = float(self.cap.get(_cv2().CAP_PROP_FPS) or 0)
        count = int(self.cap.get(_cv2().CAP_PROP_FRAME_COUNT) or 0)
        self.frame_count = count if count > 0 and not live else None

    def _open(self):
        cv2 = _cv2()
        if self.live and isinstance(self.target, str):
            # A stream that stalls must not hang on FFmpeg's 30 s default: bounded open and read.
            cap = cv2.VideoCapture(self.target, cv2.CAP_ANY, [cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, OPEN_TIMEOUT_MS,
                                                              cv2.CAP_PROP_READ_TIMEOUT_MSEC, READ_TIMEOUT_MS])
        else:
            cap = cv2.VideoCapture(self.target)
        if not cap.isOpened():
            cap.release()
            return None
        if isinstance(self.target, int):
            width, height = self.request.frame_size()
            for prop, value in ((cv2.CAP_PROP_FRAME_WIDTH, width), (cv2.CAP_PROP_FRAME_HEIGHT, height),
                                (cv2.CAP_PROP_FPS, self.request.fps)):
                if value:
                    cap.set(prop, value)
        # An MJPEG file or stream: take the JPEG packets as they are and decode them ourselves, at
        # a reduced scale when the frame is far larger than the model's input.
        self.raw = (self.request.decode_target() is not None and not isinstance(self.target, int)
                    and _fourcc(cap) == "MJPG" and cap.set(cv2.CAP_PROP_FORMAT, -1))
        return cap

    def _missing(self) -> EdgetlError:
        if isinstance(self.target, int):
            found = available_cameras()
            listing = ", ".join(map(str, found)) if found else "none"
            return EdgetlError(f"camera {self.target} cannot be opened (missing or busy); cameras that open: {listing}",
                               fix="choose --source N from that list, a video file, a folder or a URL")
        return EdgetlError("cannot open this video or stream", path=self.target,
                           fix="check the path or URL, and that OpenCV was built with the codec (ffmpeg)")

    def read(self) -> np.ndarray | None:
        ok, frame = self.cap.read()
        if not ok or frame is None:
            if self.live:
                raise FrameError(f"{self.name}: no frame")
            return None
        if self.raw:
            try:
                return decode_frame(frame, self.request.decode_target())
            except DecodeError as e:
                raise FrameError(f"{self.name}: {e}") from None
        return frame

    def reopen(self) -> bool:
        self.cap.release()
        cap = self._open()
        if cap is None:
            return False
        self.cap = cap
        return True

    def close(self) -> None:
        self.cap.release()


class ImagesSource(Source):
    """Image files from a folder (sorted) or a glob pattern, in order; JPEGs decoded at a reduced
    scale when far larger than ``decode_target`` (width, height)."""

    def __init__(self, pattern: str, decode_target: tuple[int, int] | None = None):
        self.decode_target = decode_target
        p = Path(pattern)
        files = sorted(f for f in p.iterdir() if f.suffix.lower() in IMAGE_EXTENSIONS) if p.is_dir() else \
            sorted(Path(f) for f in glob.glob(pattern) if Path(f).suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise EdgetlError("no images here", path=pattern, fix="give a folder or glob of jpg/png/bmp/gif/webp files")
        self.files, self.i, self.name, self.frame_count = files, 0, pattern, len(files)

    def reopen(self) -> bool:
        self.i = 0
        return True

    def read(self) -> np.ndarray | None:
        if self.i >= len(self.files):
            return None
        f = self.files[self.i]
        self.i += 1
        try:
            return decode_frame(read_file(f), self.decode_target)
        except (DecodeError, OSError) as e:
            raise FrameError(f"{f}: {e}") from None


class LoopingSource(Source):
    """A file or folder read again from its start when it ends (``live --loop``): a demo or a
    served page that keeps running. Stops only when a pass yields no frame at all."""

    def __init__(self, inner: Source):
        if inner.live:
            raise EdgetlError(f"--loop is for video files and folders of images; {inner.name} is a camera or stream",
                              fix="leave out --loop (a camera never ends)")
        self.inner, self.name, self.fps, self.frame_count = inner, inner.name, inner.fps, None
        self._read_this_pass = 0

    def read(self) -> np.ndarray | None:
        frame = self.inner.read()
        if frame is None and self._read_this_pass and self.inner.reopen():
            self._read_this_pass = 0
            frame = self.inner.read()
        self._read_this_pass += frame is not None
        return frame

    def close(self) -> None:
        self.inner.close()


class Picamera2Source(Source):
    """The Raspberry Pi camera through picamera2 (libcamera)."""

    live = True

    def __init__(self, request: CaptureRequest | None = None):
        try:
            from picamera2 import Picamera2
        except ImportError:
            raise EdgetlError("picamera2 is not installed", fix="on a Pi: sudo apt install python3-picamera2 and create the "
                                                               "venv with --system-site-packages (devices/rpi/README.md)") from None
        r = request or CaptureRequest()
        self.cam = Picamera2()
        width, height = r.frame_size()
        config = self.cam.create_video_configuration(main={"format": "RGB888", "size": (width or 1280, height or 720)})
        self.cam.configure(config)
        self.cam.start()
        self.name, self.fps = "picamera2", r.fps or 30.0

    def read(self) -> np.ndarray | None:
        return self.cam.capture_array()  # picamera2's "RGB888" is BGR in memory order

    def close(self) -> None:
        self.cam.stop()


def available_cameras(limit: int = 6) -> list[int]:
    """Camera indices OpenCV can open now."""
    cv2 = _cv2()
    found = []
    for i in range(limit):
        if os.name == "posix" and not os.path.exists(f"/dev/video{i}"):
            continue
        cap = cv2.VideoCapture(i)
        if cap.isOpened():
            found.append(i)
        cap.release()
    return found


def _kind(spec: str) -> str:
    if spec == "picamera2":
        return "picamera2"
    if spec.isdigit():
        return "camera"
    if "://" in spec:
        return "stream"
    if Path(spec).is_dir() or any(ch in spec for ch in "*?["):
        return "images"
    return "file"


def _fourcc(cap) -> str:
    code = int(cap.get(_cv2().CAP_PROP_FOURCC) or 0)
    return "".join(chr((code >> 8 * i) & 0xFF) for i in range(4))


def _file(spec: str, request: CaptureRequest) -> Source:
    if not Path(spec).exists():
        raise EdgetlError("no such file", path=spec, fix="give a video file, a folder of images, a camera index or a URL")
    if Path(spec).suffix.lower() in IMAGE_EXTENSIONS:
        return ImagesSource(spec, request.decode_target())
    return VideoSource(spec, live=False, request=request)


# Source kind -> opener. A new kind of source is one entry here.
SOURCES: Registry[Callable[[str, CaptureRequest], Source]] = Registry("live source", [
    ("camera", lambda spec, req: VideoSource(int(spec), live=True, request=req)),
    ("stream", lambda spec, req: VideoSource(spec, live=True, request=req)),
    ("images", lambda spec, req: ImagesSource(spec, req.decode_target())),
    ("file", _file),
    ("picamera2", lambda spec, req: Picamera2Source(req)),
])


def open_source(spec: str | int, request: CaptureRequest | None = None) -> Source:
    """Open a source from what the user typed for --source."""
    spec = str(spec)
    return SOURCES[_kind(spec)](spec, request or CaptureRequest())
