"""The Workbooks adapter against the adapter contract, as the CRM side, over the emulator.

Workbooks is a CRM: the adapter writes opt-outs, flags, field values and activities, and never
creates people, leads, campaigns or memberships (those are the CRM users' records). The contract's
tests that assume an ESP's writes are overridden below with the Workbooks equivalent, and with a
check that the adapter answers the op it does not do with a rejected outcome and a clear reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.workbooks.adapter import WorkbooksAdapter, WorkbooksSettings
from adapters.workbooks.emulator import create_app
from adapters.workbooks.emulator_state import DEFAULT_API_KEY, WorkbooksState
from engine.budgets import Budget
from engine.contract import Adapter, AdapterContext
from engine.fingerprints import fingerprint_all
from engine.plans import Change, Op
from engine.ruleset import SecretRef, Side
from tests.adapters.contract import SEED, AdapterContract

BASE = "https://secure.workbooks.com"


class TickingClock:
    """Each reading is a second later, so every change gets its own `updated_at`."""

    def __init__(self, start: float = 1_750_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        self.now += 1
        return self.now


def seeded(seed: Sequence[dict[str, Any]]) -> WorkbooksState:
    """People with the seed's emails, opt-outs and FIRSTNAME (a custom field), campaigns per list."""
    state = WorkbooksState(clock=TickingClock(), seed=1)
    state.add_custom_field("crm/people", "FIRSTNAME", "string", "First Name (ESP)")
    campaigns: dict[str, int] = {}
    for row in seed:
        person = state.insert(
            "crm/people",
            {
                "person_last_name": "Seed",
                "main_location[email]": row["email"],
                "no_email_soliciting": row["opted_out"],
                "FIRSTNAME": row["FIRSTNAME"],
            },
        )
        for name in row["lists"]:
            if name not in campaigns:
                campaigns[name] = state.insert("crm/campaigns", {"name": name})["id"]
            state.insert(
                "crm/campaign_membership",
                {"marketing_campaign_id": campaigns[name], "party_or_lead_id": person["id"]},
            )
    return state


def context(state: WorkbooksState, side: Side = "crm") -> AdapterContext:
    def http(base_url: str) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(state)), base_url=base_url)

    secrets = {"WORKBOOKS_API_KEY": DEFAULT_API_KEY, "WORKBOOKS_PASSWORD": "secret"}
    return AdapterContext(
        side, Path("."), Budget("workbooks", None), lambda ref: secrets[ref.env or ""], http=http
    )


KEYED = WorkbooksSettings(base_url=BASE, api_key=SecretRef(env="WORKBOOKS_API_KEY"))


class TestWorkbooksAsCrm(AdapterContract):
    side: Side = "crm"
    state: WorkbooksState

    @asynccontextmanager
    async def opened(self, seed: Sequence[dict[str, Any]]) -> AsyncIterator[Adapter]:
        self.state = seeded(seed)
        async with WorkbooksAdapter(KEYED, context(self.state)) as adapter:
            yield adapter

    def person(self, email: str) -> dict[str, Any]:
        return next(p for p in self.state.live("crm/people") if p["main_location[email]"] == email)

    @pytest.mark.asyncio
    async def test_fingerprints_are_stable_and_follow_the_row(self) -> None:
        """As the contract's, with `update_crm` in place of `upsert_contact` (a CRM takes updates)."""
        async with self.opened(SEED) as adapter:
            first = list(fingerprint_all(self.payloads(await adapter.snapshot())))
            second = list(fingerprint_all(self.payloads(await adapter.snapshot())))
            assert first == second and len(set(first)) == len(first)
            change = {"FIRSTNAME": Change("Ada", "Adah")}
            op = Op("update_crm", "ada@example.com", record_kind="person", changes=change)
            assert (await self.write(adapter, "update_crm", [op]))[0].ok
            third = list(fingerprint_all(self.payloads(await adapter.snapshot())))
        assert len(set(third) - set(first)) == 1

    @pytest.mark.asyncio
    async def test_an_upsert_creates_a_contact_that_the_next_snapshot_shows(self) -> None:
        """A CRM adapter creates no people: `upsert_contact` is rejected, saying why, and nothing appears."""
        async with self.opened(SEED) as adapter:
            op = Op(
                "upsert_contact",
                "cy@example.com",
                record_kind="person",
                changes={"FIRSTNAME": Change(None, "Cy")},
            )
            outcomes = await self.write(adapter, "upsert_contact", [op])
            rows = self.emails(await adapter.snapshot())
        assert not outcomes[0].ok and "CRM side" in (outcomes[0].reason or "")
        assert "cy@example.com" not in rows

    @pytest.mark.asyncio
    async def test_memberships_are_added_and_removed(self) -> None:
        """Memberships are edited by CRM users: such edits show in the next snapshot (an unsubscribed
        status is reported as such, a deleted membership disappears); `add_member` is rejected."""
        async with self.opened(SEED) as adapter:
            spring = next(c for c in self.state.live("crm/campaigns") if c["name"] == "Spring")
            bo, ada = self.person("bo@example.com"), self.person("ada@example.com")
            self.state.insert(
                "crm/campaign_membership",
                {"marketing_campaign_id": spring["id"], "party_or_lead_id": bo["id"]},
            )
            ada_member = next(
                m for m in self.state.live("crm/campaign_membership") if m["party_or_lead_id"] == ada["id"]
            )
            self.state.delete("crm/campaign_membership", ada_member["id"])
            outcomes = await self.write(
                adapter, "add_member", [Op("add_member", "bo@example.com", list="Spring")]
            )
            rows = self.emails(await adapter.snapshot())
        key = str(spring["id"])
        assert rows["bo@example.com"].memberships == {key: "Potential"}
        assert key not in rows["ada@example.com"].memberships
        assert not outcomes[0].ok and outcomes[0].reason

    @pytest.mark.asyncio
    async def test_an_opt_out_sticks_even_for_an_unknown_address(self) -> None:
        """A CRM adapter cannot create a person to hold an opt-out: the known address is opted out,
        the unknown one is rejected with a reason naming it (the engine keeps it pending, not lost)."""
        async with self.opened(SEED) as adapter:
            ops = [Op("opt_out_crm", "ada@example.com"), Op("opt_out_crm", "new@example.com")]
            outcomes = await self.write(adapter, "opt_out_crm", ops)
            rows = self.emails(await adapter.snapshot())
        assert outcomes[0].ok and rows["ada@example.com"].opted_out
        assert not outcomes[1].ok and "new@example.com" in (outcomes[1].reason or "")
        assert "new@example.com" not in rows

    @pytest.mark.asyncio
    async def test_an_op_on_a_missing_contact_is_a_rejection_not_an_exception(self) -> None:
        """As the contract's, with each CRM op kind the adapter does execute."""
        async with self.opened(SEED) as adapter:
            for kind in ("opt_out_crm", "mark_undeliverable_crm", "update_crm", "record_activity"):
                op = Op(kind, "ghost@example.com", list="Spring", changes={"type": Change(None, "open")})
                outcomes = await self.write(adapter, kind, [op])
                assert not outcomes[0].ok and "ghost@example.com" in (outcomes[0].reason or "")

    @pytest.mark.asyncio
    async def test_created_lists_and_fields_show_in_the_snapshot(self) -> None:
        """Campaigns, not lists, are what a CRM shows: the seed's show in the snapshot; creating a list
        or a field is rejected with a reason."""
        async with self.opened(SEED) as adapter:
            lists = await self.write(adapter, "create_list", [Op("create_list", list="Autumn")])
            fields = await self.write(
                adapter, "create_field", [Op("create_field", field="CITY", field_type="text")]
            )
            snapshot = await adapter.snapshot()
        assert not lists[0].ok and lists[0].reason and not fields[0].ok and fields[0].reason
        assert [(c.name, c.status) for c in snapshot.campaigns] == [("Spring", "open")]

    @pytest.mark.asyncio
    async def test_the_version_moves_when_the_data_does(self) -> None:
        """As the contract's, with an opt-out written to the CRM and an edit made by a CRM user."""
        async with self.opened(SEED) as adapter:
            before = await adapter.version()
            assert await adapter.version() == before
            await self.write(adapter, "opt_out_crm", [Op("opt_out_crm", "ada@example.com")])
            after = await adapter.version()
            assert after != before
            self.state.update("crm/people", self.person("bo@example.com")["id"], {"FIRSTNAME": "Bob"})
            assert await adapter.version() != after
