"""The files adapter against the adapter contract, on both sides."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from adapters.files import FilesAdapter, FilesSettings, jsonl
from engine.budgets import Budget
from engine.contract import Adapter, AdapterContext
from engine.ruleset import Side
from tests.adapters.contract import AdapterContract


class FilesContract(AdapterContract):
    @pytest.fixture(autouse=True)
    def _directory(self, tmp_path: Path) -> None:
        self.directory = tmp_path

    @asynccontextmanager
    async def opened(self, seed: Sequence[dict[str, Any]]) -> AsyncIterator[Adapter]:
        path = self.directory / f"{self.side}.jsonl"
        jsonl.write_atomically(path, [jsonl.encode_object(dict(row)) for row in seed])
        context = AdapterContext(self.side, self.directory, Budget("files", None), lambda ref: "")
        adapter = FilesAdapter(FilesSettings(path=path.name), context)
        try:
            yield adapter
        finally:
            await adapter.aclose()


class TestFilesAsEsp(FilesContract):
    side: Side = "esp"


class TestFilesAsCrm(FilesContract):
    side: Side = "crm"
