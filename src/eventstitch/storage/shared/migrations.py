"""Where a backend's migrations are: `NNNN_description.sql` files in its `migrations` package,
applied by version, so a version that lands late is still applied once (see patterns.md)."""

from __future__ import annotations

from collections.abc import Container
from importlib import resources


def discover(package: str) -> list[tuple[int, str]]:
    """Every (version, script) shipped in `package`, in version order."""
    found = []
    for entry in resources.files(package).iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.read_text(encoding="utf-8")))
    return sorted(found)


def pending(shipped: list[tuple[int, str]], done: Container[int]) -> list[tuple[int, str]]:
    """The shipped migrations not yet recorded in `schema_version`, in order."""
    return [(version, script) for version, script in shipped if version not in done]
