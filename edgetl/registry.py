"""Registries: named entries of one kind (runtimes, backbones, formats, bench targets, live
sources), where adding a kind of thing is adding one entry.

A dict literal keeps the last of two entries with the same name and says nothing; a registry
refuses the second, naming both, so a plug-in or a copy-paste cannot replace an entry unseen.
Standard library only: the device side reads registries too."""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Mapping[str, T], Generic[T]):
    """A read-mostly mapping from name to entry; :meth:`register` adds one and refuses a name
    already taken."""

    def __init__(self, kind: str, entries: Iterable[tuple[str, T]] = ()):
        self.kind = kind
        self._entries: dict[str, T] = {}
        for name, entry in entries:
            self.register(name, entry)

    def register(self, name: str, entry: T) -> T:
        """Add ``entry`` under ``name`` and return it; ValueError when the name is taken."""
        if name in self._entries:
            raise ValueError(f"a {self.kind} named {name!r} is registered already ({self._entries[name]!r}); "
                             f"choose another name for {entry!r}")
        self._entries[name] = entry
        return entry

    def __getitem__(self, name: str) -> T:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {list(self._entries)})"
