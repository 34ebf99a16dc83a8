"""Installed versions of the packages edgetl reports (manifests, doctor, device facts).

Standard library only: this runs on devices."""
from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version


def package_versions(packages: tuple[str, ...], missing_as_none: bool = False) -> dict[str, str | None]:
    """Python's version and each installed package's; a package that is not installed is left out,
    or given as None with ``missing_as_none`` (doctor shows what is absent)."""
    out: dict[str, str | None] = {"python": platform.python_version()}
    for pkg in packages:
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            if missing_as_none:
                out[pkg] = None
    return out
