"""A run's status lines: to the log (INFO, warnings at WARNING) and to RUN/train.log."""
from __future__ import annotations

import logging
import time
from pathlib import Path


logger = logging.getLogger(__name__)


class RunLog:
    """Status lines to the log (INFO) and to RUN/train.log."""

    def __init__(self, path: Path, prefix: str = ""):
        self.file = path.open("a", encoding="utf-8")
        self.prefix = prefix

    def __call__(self, message: str) -> None:
        if message.startswith("warning: "):
            logger.warning("%s%s", self.prefix, message.removeprefix("warning: "))
        else:
            logger.info("%s%s", self.prefix, message)
        if not self.file.closed:
            self.file.write(f"{time.strftime('%H:%M:%S')} {message}\n")
            self.file.flush()

    def close(self) -> None:
        """Stop writing train.log (the folder is about to go)."""
        self.file.close()
