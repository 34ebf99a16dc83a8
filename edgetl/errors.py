"""Errors a user can act on. The CLI turns each into one line and an exit code."""
from __future__ import annotations

from pathlib import Path


class EdgetlError(Exception):
    """Bad input or usage: the message names the file or option and the fix (exit code 2)."""

    exit_code = 2

    def __init__(self, message: str, path: str | Path | None = None, fix: str | None = None):
        self.path = str(path) if path is not None else None
        self.message = message
        """What went wrong, without the path and the fix."""
        self.fix = fix
        parts = [f"{self.path}: {message}" if self.path else message]
        if fix:
            parts.append(fix)
        super().__init__(" — ".join(parts))

