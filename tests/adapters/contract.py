"""The adapter contract suite: every adapter's test module subclasses `AdapterContract`.

A subclass says how to open its adapter on a side with some contacts already present (`opened`);
the tests here then check what the engine relies on: snapshots decode to rows, fingerprints are
stable and change with the row, every write answers one outcome per op, writes show in the next
snapshot once flushed, a bad op is a rejected outcome rather than an exception, and the version
token moves when the data does.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from engine.contract import Adapter, Outcome, Snapshot
from engine.fingerprints import fingerprint, fingerprint_all
from engine.plans import Change, Op, OpKind
from engine.ruleset import Side

SEED = [
    {"email": "ada@example.com", "opted_out": False, "lists": ["Spring"], "FIRSTNAME": "Ada"},
    {"email": "bo@example.com", "opted_out": True, "lists": [], "FIRSTNAME": "Bo"},
]


class AdapterContract:
    """Subclass and implement `opened`; set `side` to the side the adapter plays."""

    side: Side = "esp"

    def opened(self, seed: Sequence[dict[str, Any]]) -> AbstractAsyncContextManager[Adapter]:
        raise NotImplementedError

    @staticmethod
    async def write(adapter: Adapter, kind: OpKind, ops: Sequence[Op]) -> Sequence[Outcome]:
        outcomes = await adapter.write(kind, ops)
        assert len(outcomes) == len(ops)
        await adapter.flush()
        return outcomes

    @staticmethod
    def payloads(snapshot: Snapshot) -> list[bytes]:
        if snapshot.load is None:
            return list(snapshot.payloads)
        return [payload for batch in snapshot.load() for payload in batch]

    @classmethod
    def emails(cls, snapshot: Snapshot) -> dict[str, Any]:
        rows = [snapshot.decode(payload) for payload in cls.payloads(snapshot)]
        return {str(row.email).lower(): row for row in rows}

    @pytest.mark.asyncio
    async def test_a_snapshot_decodes_every_seeded_contact(self) -> None:
        async with self.opened(SEED) as adapter:
            snapshot = await adapter.snapshot()
        assert snapshot.complete
        rows = self.emails(snapshot)
        assert set(rows) == {"ada@example.com", "bo@example.com"}
        assert rows["bo@example.com"].opted_out is True
        assert rows["ada@example.com"].values["FIRSTNAME"] == "Ada"

    @pytest.mark.asyncio
    async def test_fingerprints_are_stable_and_follow_the_row(self) -> None:
        async with self.opened(SEED) as adapter:
            first = list(fingerprint_all(self.payloads(await adapter.snapshot())))
            second = list(fingerprint_all(self.payloads(await adapter.snapshot())))
            assert first == second and len(set(first)) == len(first)
            change = {"FIRSTNAME": Change("Ada", "Adah")}
            await self.write(
                adapter, "upsert_contact", [Op("upsert_contact", "ada@example.com", changes=change)]
            )
            third = list(fingerprint_all(self.payloads(await adapter.snapshot())))
        assert len(set(third) - set(first)) == 1

    @pytest.mark.asyncio
    async def test_an_upsert_creates_a_contact_that_the_next_snapshot_shows(self) -> None:
        async with self.opened(SEED) as adapter:
            op = Op(
                "upsert_contact",
                "cy@example.com",
                record_kind="person",
                changes={"FIRSTNAME": Change(None, "Cy")},
            )
            outcomes = await self.write(adapter, "upsert_contact", [op])
            assert outcomes[0].ok
            snapshot = await adapter.snapshot()
        payloads = self.payloads(snapshot)
        rows = self.emails(snapshot)
        assert rows["cy@example.com"].values["FIRSTNAME"] == "Cy"
        assert rows["cy@example.com"].opted_out is False
        # A reported fingerprint must be the one the next snapshot's row has: the engine skips
        # decoding that row next time on the strength of it.
        if outcomes[0].fingerprint is not None:
            assert outcomes[0].fingerprint in {fingerprint(p) for p in payloads}

    @pytest.mark.asyncio
    async def test_memberships_are_added_and_removed(self) -> None:
        async with self.opened(SEED) as adapter:
            await self.write(adapter, "add_member", [Op("add_member", "bo@example.com", list="Spring")])
            await self.write(
                adapter, "remove_member", [Op("remove_member", "ada@example.com", list="Spring")]
            )
            rows = self.emails(await adapter.snapshot())
        assert "Spring" in rows["bo@example.com"].memberships
        assert "Spring" not in rows["ada@example.com"].memberships

    @pytest.mark.asyncio
    async def test_an_opt_out_sticks_even_for_an_unknown_address(self) -> None:
        kind: OpKind = "opt_out_esp" if self.side == "esp" else "opt_out_crm"
        async with self.opened(SEED) as adapter:
            outcomes = await self.write(
                adapter, kind, [Op(kind, "ada@example.com"), Op(kind, "new@example.com")]
            )
            assert all(o.ok for o in outcomes)
            rows = self.emails(await adapter.snapshot())
        assert rows["ada@example.com"].opted_out and rows["new@example.com"].opted_out

    @pytest.mark.asyncio
    async def test_an_op_on_a_missing_contact_is_a_rejection_not_an_exception(self) -> None:
        async with self.opened(SEED) as adapter:
            outcomes = await self.write(
                adapter, "add_member", [Op("add_member", "ghost@example.com", list="Spring")]
            )
        assert not outcomes[0].ok and outcomes[0].reason

    @pytest.mark.asyncio
    async def test_created_lists_and_fields_show_in_the_snapshot(self) -> None:
        async with self.opened(SEED) as adapter:
            await self.write(adapter, "create_list", [Op("create_list", list="Autumn")])
            await self.write(adapter, "create_field", [Op("create_field", field="CITY", field_type="text")])
            snapshot = await adapter.snapshot()
        assert "Autumn" in snapshot.lists
        assert snapshot.fields.get("CITY") == "text"

    @pytest.mark.asyncio
    async def test_the_version_moves_when_the_data_does(self) -> None:
        async with self.opened(SEED) as adapter:
            before = await adapter.version()
            assert await adapter.version() == before
            await self.write(adapter, "add_member", [Op("add_member", "bo@example.com", list="Spring")])
            assert await adapter.version() != before
