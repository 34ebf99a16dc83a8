"""Let a subpackage be called like its main function (``edgetl.train(...)``), whatever the order in
which ``edgetl.train`` the package and ``edgetl.train`` the function were first reached."""
from __future__ import annotations

import sys
import types
from collections.abc import Callable


def make_callable(module_name: str, function: Callable) -> None:
    """Make the module ``module_name`` callable, forwarding to ``function``."""

    class CallableModule(types.ModuleType):
        def __call__(self, *args, **kwargs):
            return function(*args, **kwargs)

    sys.modules[module_name].__class__ = CallableModule
