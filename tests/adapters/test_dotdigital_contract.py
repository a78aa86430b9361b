"""The Dotdigital adapter against the adapter contract, over the emulator.

Also home of the helpers the adapter's own tests (``test_dotdigital_adapter.py``) use: an emulated account
(`account`), the adapter opened on it (`opened`), and writes whose import and deletion jobs are polled to
their terminal state (`write`), as the engine's apply does. The account's clock starts at the real
current time so that the adapter's cursors (local UTC time) and the emulator's modification dates agree,
as a real account's would.

Dotdigital cannot add a suppressed contact to an address book, and a CSV import into a book creates the
contacts it names; three contract tests assume otherwise and are overridden below with the Dotdigital
equivalent, each saying why.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.dotdigital.adapter import DotdigitalAdapter, DotdigitalSettings
from adapters.dotdigital.emulator import create_app
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from engine.budgets import Budget
from engine.contract import Adapter, AdapterContext, Outcome
from engine.http import budgeted_client
from engine.plans import Change, Op, OpKind
from engine.ruleset import SecretRef, Side
from tests.adapters.contract import SEED, AdapterContract
from tests.adapters.meddling import Meddle, Meddling

REGIONAL = "https://r3-api.dotdigital.com"


def account(seed: Sequence[dict[str, Any]] = (), **knobs: Any) -> DotdigitalState:
    """A fresh account holding `seed` rows (contract-suite shape) in FIRSTNAME and address books."""
    state = DotdigitalState(Knobs(api_endpoint=REGIONAL, **knobs), started_at=datetime.now(UTC))
    state.create_data_field("FIRSTNAME", "String")
    for row in seed:
        contact = state.add_contact(row["email"])
        if row.get("FIRSTNAME"):
            contact.data["FIRSTNAME"] = row["FIRSTNAME"]
        for name in row.get("lists", []):
            book = next((b for b in state.address_books.values() if b.name == name), None)
            state.add_member((book or state.create_address_book(name)).id, contact)
        if row.get("opted_out"):
            state.suppress(contact, "Unsubscribed")
    return state


@asynccontextmanager
async def opened(
    state: DotdigitalState,
    hosts: list[str] | None = None,
    *,
    meddle: Meddle | None = None,
    account_state: dict[str, Any] | None = None,
    **settings: Any,
) -> AsyncIterator[DotdigitalAdapter]:
    """The adapter on `state` with `settings` besides its credentials; `hosts` collects the base URL of
    every HTTP client it made, `meddle` sees each request before the emulator does, and
    `account_state` is what it shares with other adapters of the account (as the runs of a service)."""
    app = create_app(state)

    def http(base_url: str) -> httpx.AsyncClient:
        if hosts is not None:
            hosts.append(base_url)
        transport: httpx.AsyncBaseTransport = httpx.ASGITransport(app=app)
        if meddle is not None:
            transport = Meddling(transport, meddle)
        return budgeted_client(base_url, Budget("dotdigital", None), transport=transport)

    context = AdapterContext(
        "esp",
        Path("."),
        Budget("dotdigital", None),
        lambda ref: state.knobs.api_password,
        http=http,
        account_state={} if account_state is None else account_state,
    )
    credentials = DotdigitalSettings(
        api_user=state.knobs.api_user, password=SecretRef(env="DD_PASSWORD"), **settings
    )
    adapter = DotdigitalAdapter(credentials, context)
    try:
        yield adapter
    finally:
        await adapter.aclose()


async def settle(
    adapter: Adapter, ops: Sequence[Op], outcomes: Sequence[Outcome], *, polls: int = 20
) -> list[Outcome]:
    """Outcomes with every job polled (with its ops) to its terminal state, as the engine's apply does."""
    final = list(outcomes)
    jobs: dict[str, list[int]] = {}
    for index, outcome in enumerate(outcomes):
        if outcome.job is not None:
            jobs.setdefault(outcome.job, []).append(index)
    for job, indexes in jobs.items():
        for _ in range(polls):
            status = await adapter.poll(job, [ops[i] for i in indexes])
            if status.terminal:
                break
        assert status.terminal, f"job {job} did not finish"
        assert len(status.outcomes) == len(indexes)
        for index, outcome in zip(indexes, status.outcomes, strict=True):
            final[index] = outcome
    return final


async def write(adapter: Adapter, kind: OpKind, ops: Sequence[Op]) -> list[Outcome]:
    outcomes = await adapter.write(kind, ops)
    assert len(outcomes) == len(ops)
    final = await settle(adapter, ops, outcomes)
    await adapter.flush()
    return final


class TestDotdigitalContract(AdapterContract):
    side: Side = "esp"

    @asynccontextmanager
    async def opened(self, seed: Sequence[dict[str, Any]]) -> AsyncIterator[Adapter]:
        async with opened(account(seed)) as adapter:
            yield adapter

    @staticmethod
    async def write(adapter: Adapter, kind: OpKind, ops: Sequence[Op]) -> Sequence[Outcome]:
        """Imports and deletions are jobs: poll them to completion before the next snapshot."""
        return await write(adapter, kind, ops)

    @pytest.mark.asyncio
    async def test_memberships_are_added_and_removed(self) -> None:
        """The contract adds bo, who is suppressed, to a list: Dotdigital refuses to put a suppressed
        contact in an address book. Here a subscribed contact joins a list and another leaves one, and
        the suppressed contact's add is rejected with its suppression as the reason."""
        async with self.opened(SEED) as adapter:
            await self.write(adapter, "create_list", [Op("create_list", list="Autumn")])
            added = await self.write(
                adapter,
                "add_member",
                [
                    Op("add_member", "ada@example.com", list="Autumn"),
                    Op("add_member", "bo@example.com", list="Autumn"),
                ],
            )
            await self.write(
                adapter, "remove_member", [Op("remove_member", "ada@example.com", list="Spring")]
            )
            rows = self.emails(await adapter.snapshot())
        assert added[0].ok and not added[1].ok and added[1].reason == "Unsubscribed"
        assert "Autumn" in rows["ada@example.com"].memberships
        assert "Spring" not in rows["ada@example.com"].memberships
        assert "Autumn" not in rows["bo@example.com"].memberships

    @pytest.mark.asyncio
    async def test_an_op_on_a_missing_contact_is_a_rejection_not_an_exception(self) -> None:
        """The contract adds an unknown address to a list and expects a rejection, but a Dotdigital
        import into an address book creates the contacts it names (the engine orders upserts before
        memberships, so that is harmless). The Dotdigital equivalent of an op a contact cannot take:
        an upsert of a suppressed contact is rejected with the reason from the import's fault report,
        not raised, and removing an address that is in no book is a no-op that succeeds."""
        async with self.opened(SEED) as adapter:
            change = {"FIRSTNAME": Change("Bo", "Bob")}
            upsert = await self.write(
                adapter, "upsert_contact", [Op("upsert_contact", "bo@example.com", changes=change)]
            )
            removed = await self.write(
                adapter, "remove_member", [Op("remove_member", "ghost@example.com", list="Spring")]
            )
        assert not upsert[0].ok and upsert[0].reason == "Unsubscribed"
        assert removed[0].ok

    @pytest.mark.asyncio
    async def test_the_version_moves_when_the_data_does(self) -> None:
        """The contract moves the data by adding suppressed bo to a list, which Dotdigital refuses (so
        nothing moves); here a subscribed contact joins a list instead."""
        async with self.opened(SEED) as adapter:
            await self.write(adapter, "create_list", [Op("create_list", list="Autumn")])
            before = await adapter.version()
            assert await adapter.version() == before
            await self.write(adapter, "add_member", [Op("add_member", "ada@example.com", list="Autumn")])
            assert await adapter.version() != before
