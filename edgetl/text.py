"""Text that came from files edgetl did not write (labels, paths, folder names, model metadata),
made safe to show: no terminal escape sequences, no rich markup, no undecodable bytes.

Bottom layer: standard library and rich only; runs on the device."""
from __future__ import annotations

import os
import re
from pathlib import Path

from rich.markup import escape

# C0 and C1 control characters and DEL: ESC starts terminal sequences (title changes, screen
# clears, hyperlinks), CR and BS overwrite what was printed. Tab and newline are kept only by
# `clean(..., keep_newlines=True)`, for multi-line messages edgetl itself composed.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def _visible(match: re.Match) -> str:
    return f"\\x{ord(match.group()):02x}"


def clean(value: object, keep_newlines: bool = False) -> str:
    """``value`` as printable text: control characters shown as ``\\xNN``, bytes that are not
    UTF-8 (file names on Linux may hold any) shown as ``\\xNN`` too."""
    text = os.fsdecode(value) if isinstance(value, (bytes, Path)) else str(value)
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no file system produced
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return (_CONTROL_BUT_NEWLINE if keep_newlines else _CONTROL).sub(_visible, text)


def safe(value: object) -> str:
    """``value`` cleaned and escaped for a rich markup string: what to interpolate into any
    ``console.print(f"...")`` that uses markup of its own."""
    return escape(clean(value))


def has_control(text: str) -> bool:
    """True when ``text`` holds a control character (a newline, an escape): not a usable name."""
    return bool(_CONTROL.search(text))
