"""Reading a side gives the same view in a worker process as here."""

from __future__ import annotations

from pathlib import Path

import pytest

from adapters.files import FilesAdapter, FilesSettings, jsonl
from engine.budgets import Budget
from engine.changes import Reading
from engine.contract import AdapterContext
from engine.fingerprints import FingerprintSet, fingerprint_all
from engine.reading import read_sides, reading_of
from tests.support import make_rules

pytestmark = pytest.mark.asyncio
RULES = make_rules(fields=[{"crm": "n", "esp": "N", "type": "numeric"}])


async def test_a_large_side_read_in_a_worker_matches_the_side_read_here(tmp_path: Path) -> None:
    rows = [jsonl.encode_object({"email": f"p{i}@example.com", "N": i}) for i in range(300)]
    rows.append(jsonl.encode_object({"email": "p7@example.com", "N": "seven"}))  # a duplicate, and bad
    jsonl.write_atomically(tmp_path / "a.jsonl", rows)
    jsonl.write_atomically(tmp_path / "b.jsonl", rows[:200])
    known = FingerprintSet(fingerprint_all(rows[100:250]))  # 150 confirmed rows, 50 of them gone from b
    context = AdapterContext("esp", tmp_path, Budget("x", None), lambda ref: "")

    async def readings() -> list[tuple[Reading, FingerprintSet]]:
        pairs = []
        for name in ("a.jsonl", "b.jsonl"):
            snapshot = await FilesAdapter(FilesSettings(path=name), context).snapshot()
            pairs.append((reading_of("esp", snapshot, RULES, [], trusted=True), known))
        return pairs

    here = await read_sides(await readings())
    worker = await read_sides(await readings(), threshold=1)
    assert here == worker
    a, b = here
    assert (a.rows, b.rows) == (301, 200)
    assert len(a.changed) == 150 and a.changed["p0@example.com"].fields == {"N": 0}
    assert a.rejected == {"p7@example.com"}  # left alone: the plan skips rejected emails
    assert sorted(b.changed) == sorted(f"p{i}@example.com" for i in range(100))
    assert b.missing == {int(fp) for fp in fingerprint_all(rows[200:250])}
