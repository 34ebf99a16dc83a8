"""What the live window and the recorded video show: labels, a confidence bar, FPS, latencies."""
from __future__ import annotations

import numpy as np

from edgetl.image import cv2 as _cv2


def annotate(frame_bgr: np.ndarray, top: list[tuple[str, float]], label: str, fps: float,
             latency_ms: dict[str, float]) -> np.ndarray:
    """A BGR copy of the frame with the top-k labels and scores, a confidence bar, FPS and the
    latency split drawn on it."""
    cv2 = _cv2()
    img = frame_bgr
    h, w = img.shape[:2]
    scale = max(0.5, w / 1280)
    panel_h = int((40 + 28 * len(top) + 30) * scale)
    overlay = img.copy()
    cv2.rectangle(overlay, (0, 0), (int(420 * scale), panel_h), (0, 0, 0), -1)
    img = cv2.addWeighted(overlay, 0.55, img, 0.45, 0)
    y = int(34 * scale)
    colour = (80, 220, 80) if label != "uncertain" else (60, 180, 255)
    cv2.putText(img, f"{label} {top[0][1]:.0%}" if label != "uncertain" else "uncertain", (int(10 * scale), y),
                cv2.FONT_HERSHEY_SIMPLEX, 1.0 * scale, colour, max(1, int(2 * scale)), cv2.LINE_AA)
    for name, score in top:
        y += int(28 * scale)
        bar = int(200 * scale * score)
        cv2.rectangle(img, (int(10 * scale), y - int(14 * scale)), (int(10 * scale) + bar, y + int(4 * scale)),
                      (200, 140, 40), -1)
        cv2.putText(img, f"{name} {score:.2f}", (int(220 * scale), y), cv2.FONT_HERSHEY_SIMPLEX, 0.55 * scale,
                    (255, 255, 255), 1, cv2.LINE_AA)
    y += int(30 * scale)
    text = (f"{fps:.1f} FPS  wait {latency_ms['capture_wait']:.1f}  pre {latency_ms['preprocess']:.1f}  "
            f"inf {latency_ms['inference']:.1f} ms")
    cv2.putText(img, text, (int(10 * scale), y), cv2.FONT_HERSHEY_SIMPLEX, 0.5 * scale, (255, 255, 255), 1, cv2.LINE_AA)
    return img


def has_gui() -> tuple[bool, str]:
    """Whether OpenCV can open a window here, and why not."""
    import os
    import sys

    cv2 = _cv2()
    info = cv2.getBuildInformation()
    gui = info.split("GUI:", 1)[1].splitlines()[0].strip() if "GUI:" in info else ""
    if not gui or gui.upper() == "NONE":
        return False, ("the installed OpenCV is the headless wheel (no window support); "
                       'pip install "edgetl[device-gui]" instead of edgetl[device] for a window')
    if sys.platform.startswith("linux") and not (os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")):
        return False, "no display (DISPLAY is not set)"
    return True, ""
