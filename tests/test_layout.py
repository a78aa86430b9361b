"""The packages imported are this checkout's, not same-named distributions from PyPI."""

from __future__ import annotations

from pathlib import Path

import adapters
import engine
import tests

ROOT = Path(__file__).resolve().parents[1]


def test_engine_and_adapters_come_from_this_checkout() -> None:
    for package in (engine, adapters, tests):
        assert package.__file__ is not None
        assert Path(package.__file__).resolve().is_relative_to(ROOT), package.__file__


def test_the_files_adapter_is_registered() -> None:
    from engine.registry import adapter_factory, available

    assert available()["files"] == "adapters.files:FilesAdapter"
    assert adapter_factory("files").name == "files"
