"""The one place the engine finds adapters: the ``listsync.adapters`` entry-point group.

The engine never imports an adapter package by name (import-linter enforces it); adapters register
themselves in `pyproject.toml`, and third-party adapters can do the same from their own packages.
"""

from __future__ import annotations

import difflib
from functools import cache
from importlib.metadata import entry_points
from typing import cast

from engine.contract import AdapterFactory

GROUP = "listsync.adapters"


@cache
def available() -> dict[str, str]:
    """Adapter name -> entry-point target, for every installed adapter."""
    return {ep.name: ep.value for ep in entry_points(group=GROUP)}


class UnknownAdapter(LookupError):
    def __init__(self, name: str) -> None:
        known = sorted(available())
        close = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        super().__init__(f"unknown adapter {name!r}{hint} (installed: {', '.join(known) or 'none'})")
        self.name = name


def adapter_factory(name: str) -> AdapterFactory:
    """The adapter class registered under `name`."""
    for ep in entry_points(group=GROUP, name=name):
        return cast(AdapterFactory, ep.load())
    raise UnknownAdapter(name)
