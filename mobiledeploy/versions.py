"""Installed package versions, as recorded in manifests and benchmark results."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def dist_version(dist: str, missing: str | None = "not installed") -> str | None:
    """The installed version of distribution `dist` (`_` and `-` alike), or `missing` when it is not installed."""
    try:
        return version(dist.replace("_", "-"))
    except PackageNotFoundError:
        return missing
