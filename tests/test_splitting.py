"""Sorting rows into changed and unchanged gives the same answer in a worker process as here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from adapters.files import FilesAdapter, FilesSettings, jsonl
from engine.budgets import Budget
from engine.contract import AdapterContext
from engine.fingerprints import FingerprintSet, fingerprint_all
from engine.splitting import split_sides

pytestmark = pytest.mark.asyncio


async def test_a_large_side_split_in_a_worker_matches_the_split_done_here(tmp_path: Path) -> None:
    rows = [jsonl.encode_object({"email": f"p{i}@example.com", "N": i}) for i in range(300)]
    jsonl.write_atomically(tmp_path / "a.jsonl", rows)
    jsonl.write_atomically(tmp_path / "b.jsonl", rows[:200])
    known = FingerprintSet(fingerprint_all(rows[100:250]))  # 150 confirmed rows, 50 of them gone from b
    context = AdapterContext("esp", tmp_path, Budget("x", None), lambda ref: "")

    async def snapshots() -> list[tuple[object, FingerprintSet]]:
        return [
            (await FilesAdapter(FilesSettings(path=name), context).snapshot(), known)
            for name in ("a.jsonl", "b.jsonl")
        ]

    here = await split_sides(await snapshots(), trusted=True)  # type: ignore[arg-type]
    worker = await split_sides(await snapshots(), trusted=True, threshold=0)  # type: ignore[arg-type]
    assert here == worker
    a, b = here
    assert (a.rows, len(a.changed), a.absent) == (300, 150, [])
    assert (b.rows, len(b.changed)) == (200, 100)
    assert sorted(b.absent) == sorted(int(fp) for fp in fingerprint_all(rows[200:250]))
    assert {payload for _, payload in b.changed} == set(rows[:100])
    assert np.all(np.isin([fp for fp, _ in a.changed], fingerprint_all(rows[100:250]), invert=True))
