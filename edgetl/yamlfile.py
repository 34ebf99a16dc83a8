"""YAML files edgetl reads (a run's config.yaml, --config): plain data only, bounded.

``yaml.safe_load`` builds no objects, but it still expands aliases: a 432-byte file of nested
aliases (a "billion laughs") grows into gigabytes. Settings files have no use for aliases, so a
file with one is refused, as is one larger than any settings file needs to be."""
from __future__ import annotations

from pathlib import Path

import yaml

MAX_BYTES = 1 << 20
"""A settings file is a few hundred bytes; a megabyte is far beyond any real one."""


class _NoAliases(yaml.SafeLoader):
    """SafeLoader that refuses ``*alias`` nodes before anything is expanded."""

    def compose_node(self, parent, index):
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.YAMLError(f"line {mark.line + 1}: YAML aliases (*name) are not accepted in edgetl's files")
        return super().compose_node(parent, index)


def load_yaml(path: str | Path) -> object:
    """The data in a YAML file; :class:`yaml.YAMLError` for aliases or a file over MAX_BYTES,
    :class:`OSError` when it cannot be read."""
    with open(path, "rb") as f:
        data = f.read(MAX_BYTES + 1)
    if len(data) > MAX_BYTES:
        raise yaml.YAMLError(f"larger than {MAX_BYTES >> 20} MiB: not a settings file")
    return yaml.load(data.decode("utf-8", "replace"), Loader=_NoAliases)  # noqa: S506 - a SafeLoader subclass
