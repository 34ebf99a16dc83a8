"""Progress of long work (decoding a dataset, an epoch, a benchmark), told to whoever listens.

A library is quiet: by default nothing is drawn and :func:`track` only iterates. The `edgetl`
command installs a bar maker that draws rich bars on a terminal (:func:`edgetl.console.use_rich`);
a notebook or a GUI can install its own with :func:`install`. Standard library only: the device
side imports it too."""
from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar

T = TypeVar("T")


class Bar(Protocol):
    """One bar: ``update`` as work completes, ``close`` when done (also on an error)."""

    def update(self, completed: int, note: str = "") -> None: ...

    def close(self) -> None: ...


BarMaker = Callable[[str, "int | None"], Bar]
"""Makes a bar from a description and a total (None when unknown)."""


class _Silent:
    def update(self, completed: int, note: str = "") -> None:
        pass

    def close(self) -> None:
        pass


_maker: BarMaker | None = None


def install(maker: BarMaker | None) -> BarMaker | None:
    """Use ``maker`` for every bar from now on (None: no bars); returns the one it replaces."""
    global _maker
    previous, _maker = _maker, maker
    return previous


def bar(description: str, total: int | None = None) -> Bar:
    """A bar from the installed maker, or one that draws nothing."""
    return _maker(description, total) if _maker is not None else _Silent()


def track(items: Iterable[T], description: str, total: int | None = None) -> Iterator[T]:
    """Iterate over ``items``, advancing a bar per item."""
    if _maker is None:
        yield from items
        return
    b = bar(description, total)
    try:
        for n, item in enumerate(items, 1):
            yield item
            b.update(n)
    finally:
        b.close()


@contextlib.contextmanager
def installed(maker: BarMaker | None) -> Iterator[None]:
    """``install`` for the duration of a block."""
    previous = install(maker)
    try:
        yield
    finally:
        install(previous)
