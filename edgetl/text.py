"""Text that came from files edgetl did not write (labels, paths, folder names, model metadata),
made safe to show: no terminal escape sequences, no rich markup, no undecodable bytes.

Bottom layer: standard library (rich only inside :func:`safe`, for the CLI); runs on the device,
inside the copied bench runner too."""
from __future__ import annotations

import math
import os
import re
from pathlib import Path

# C0 and C1 control characters and DEL: ESC starts terminal sequences (title changes, screen
# clears, hyperlinks), CR and BS overwrite what was printed. Tab and newline are kept only by
# `clean(..., keep_newlines=True)`, for multi-line messages edgetl itself composed.
# U+2028 and U+2029 are line and paragraph separators: str.splitlines() and JavaScript split there.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_CONTROL_BUT_NEWLINE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def _visible(match: re.Match) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


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
    from rich.markup import escape

    return escape(clean(value))


def has_control(text: str) -> bool:
    """True when ``text`` holds a control character (a newline, an escape): not a usable name."""
    return bool(_CONTROL.search(text))


def finite_number(value: object) -> float | None:
    """``value`` as a float when it is a JSON number that fits one (not a bool, not NaN or
    infinite, not a 400-digit integer that overflows a float); None otherwise. For numbers that
    came from a file or a device, checked before any arithmetic touches them."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if math.isfinite(number) else None


def shown(value: object, limit: int = 40) -> str:
    """A value from a file or a device for an error message: cleaned, cut to ``limit`` characters
    (a huge integer is named by its length: Python refuses to print one of over 4,300 digits)."""
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 10 ** limit:
        return f"an integer of more than {limit} digits"
    text = clean(repr(value) if isinstance(value, str) else value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def csv_cell(text: str) -> str:
    """A CSV cell a spreadsheet shows as text: one that starts with ``= + - @`` (or a tab or CR,
    which some spreadsheets skip before a formula) gets a leading ``'``, so it is never run as a
    formula (``=HYPERLINK(...)``). Numbers are written as numbers by the caller, not through here."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def device_count(text: str, digits: int = 15) -> int | None:
    """A count a device printed, when it is one: ASCII digits only, at most ``digits`` of them
    (``"²".isdigit()`` is True and ``int("²")`` fails); None otherwise."""
    return int(text) if re.fullmatch(rf"[0-9]{{1,{digits}}}", text) else None
