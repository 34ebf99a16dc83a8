"""What the live window and the recorded video show: labels, a confidence bar, FPS, latencies."""
from __future__ import annotations

import numpy as np

from edgetl.image import cv2 as _cv2
from edgetl.text import clean


def annotate(frame_bgr: np.ndarray, top: list[tuple[str, float]], label: str, fps: float,
             latency_ms: dict[str, float], unknown: bool = False) -> np.ndarray:
    """A BGR copy of the frame with the label (amber when ``unknown``), the top-k labels and
    scores, a confidence bar, FPS and the latency split drawn on it. Text is sized from the frame
    (readable on a 224 px video as on 1080p) and laid out from measured text widths, so names and
    scores never run together."""
    cv2 = _cv2()
    h, w = frame_bgr.shape[:2]
    font, font_scale = cv2.FONT_HERSHEY_SIMPLEX, max(0.42, min(w, h) / 640)
    thick = max(1, round(font_scale * 1.6))
    line_h = cv2.getTextSize("Ag", font, font_scale, thick)[0][1] * 2
    pad = max(4, line_h // 3)
    # The label, then each score with three decimals, as predict and the console print them.
    lines = [clean(label)]
    lines += [f"{clean(name)}  {score:.3f}" for name, score in top]
    lines.append(f"{fps:.1f} FPS  pre {latency_ms['preprocess']:.1f}  inf {latency_ms['inference']:.1f} ms")
    width = min(w, max(cv2.getTextSize(t, font, font_scale, thick)[0][0] for t in lines) + 2 * pad)
    panel_h = min(h, line_h * len(lines) + pad)
    img = frame_bgr.copy()
    # At the bottom left, where a subject framed in the middle is least often: the top of the frame
    # is where people look first and what a centred subject's head reaches.
    top_y = h - panel_h
    region = img[top_y:, :width]
    region[:] = (region * 0.45).astype(np.uint8)  # darken behind the text
    y = top_y + line_h
    colour = (60, 180, 255) if unknown else (80, 220, 80)
    cv2.putText(img, lines[0], (pad, y), font, font_scale, colour, thick, cv2.LINE_AA)
    for (name, score), text in zip(top, lines[1:-1]):
        y += line_h
        cv2.rectangle(img, (pad, y - line_h // 2 - 2), (pad + int((width - 2 * pad) * score), y + 3), (200, 140, 40), -1)
        cv2.putText(img, text, (pad, y), font, font_scale, (255, 255, 255), max(1, thick - 1), cv2.LINE_AA)
    cv2.putText(img, lines[-1], (pad, y + line_h), font, font_scale * 0.9, (255, 255, 255), max(1, thick - 1), cv2.LINE_AA)
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
