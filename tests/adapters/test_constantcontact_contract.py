"""The Constant Contact adapter against the adapter contract, over the emulator.

Also home of the helpers the adapter's own tests use: an emulated account (`account`) with a grant
already in a token store (`MemoryTokens`), the adapter opened on it (`opened`), and writes whose bulk
activities are polled to their terminal state (`write`), as the engine's apply does. The account's
clock starts at the real current time so that the adapter's cursors and the account's dates agree.

Constant Contact never lets an account add a contact who unsubscribed themselves to a list; the
contract's seeded "bo" is such a contact, so the two contract tests that add bo to a list are
overridden with the Constant Contact equivalent, each saying why.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest

from adapters.constantcontact.adapter import ConstantContactAdapter, ConstantContactSettings
from adapters.constantcontact.emulator import create_app
from adapters.constantcontact.emulator_state import ConstantContactState, Knobs
from engine.budgets import Budget
from engine.contract import Adapter, AdapterContext, OAuthTokens, Outcome
from engine.http import budgeted_client
from engine.plans import Op, OpKind
from engine.registry import adapter_factory
from engine.ruleset import SecretRef, Side
from tests.adapters.contract import SEED, AdapterContract
from tests.adapters.test_dotdigital_contract import write

SCOPES = "contact_data campaign_data offline_access"


class MemoryTokens:
    """A token store in memory that counts its saves."""

    def __init__(self, tokens: OAuthTokens | None) -> None:
        self.tokens, self.saves = tokens, 0

    async def load(self) -> OAuthTokens | None:
        return self.tokens

    async def save(self, tokens: OAuthTokens) -> None:
        self.tokens, self.saves = tokens, self.saves + 1


def account(seed: Sequence[dict[str, Any]] = (), **knobs: Any) -> ConstantContactState:
    """A fresh account holding `seed` rows (contract-suite shape): FIRSTNAME is a custom field, and an
    opted-out row unsubscribed itself (source Contact)."""
    knobs.setdefault("rate_limited", False)
    state = ConstantContactState(Knobs(**knobs), started_at=datetime.now(UTC))
    first = state.create_custom_field("FIRSTNAME", "string")
    for row in seed:
        contact = state.add_contact(row["email"])
        if row.get("FIRSTNAME"):
            contact.custom[first.id] = row["FIRSTNAME"]
        for name in row.get("lists", []):
            found = next((x for x in state.lists.values() if x.name == name), None)
            contact.lists[(found or state.create_list(name)).id] = None
        if row.get("opted_out"):
            state.unsubscribe(contact, "Contact")
    return state


def grant(state: ConstantContactState, *, expires_in: float | None = None) -> MemoryTokens:
    issued = state.grants.issue(SCOPES)
    expires = time.time() + (float(str(issued["expires_in"])) if expires_in is None else expires_in)
    return MemoryTokens(OAuthTokens(str(issued["access_token"]), str(issued["refresh_token"]), expires))


@asynccontextmanager
async def opened(
    state: ConstantContactState,
    tokens: MemoryTokens | None = None,
    *,
    budget: Budget | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    **settings: Any,
) -> AsyncIterator[ConstantContactAdapter]:
    """The adapter on `state`, its tokens in `tokens` (a fresh grant when omitted)."""
    app = create_app(state)
    spend = budget or Budget("constant-contact", None)

    def http(base_url: str) -> httpx.AsyncClient:
        return budgeted_client(base_url, spend, transport=transport or httpx.ASGITransport(app=app))

    context = AdapterContext(
        "esp",
        Path("."),
        spend,
        lambda ref: state.knobs.client_secret,
        http=http,
        tokens=tokens if tokens is not None else grant(state),
    )
    base = ConstantContactSettings(client_id=state.knobs.client_id, client_secret=SecretRef(env="CC_SECRET"))
    adapter = ConstantContactAdapter(msgspec.structs.replace(base, **settings), context)
    try:
        yield adapter
    finally:
        await adapter.aclose()


class TestConstantContactContract(AdapterContract):
    side: Side = "esp"

    @asynccontextmanager
    async def opened(self, seed: Sequence[dict[str, Any]]) -> AsyncIterator[Adapter]:
        async with opened(account(seed)) as adapter:
            yield adapter

    @staticmethod
    async def write(adapter: Adapter, kind: OpKind, ops: Sequence[Op]) -> Sequence[Outcome]:
        """Imports and membership changes are bulk activities: poll them before the next snapshot."""
        return await write(adapter, kind, ops)

    @pytest.mark.asyncio
    async def test_memberships_are_added_and_removed(self) -> None:
        """The contract adds bo, who unsubscribed themselves, to a list: Constant Contact never lets the
        account do that. Here a subscribed contact joins a list and another leaves one, and bo's add is
        refused with the reason."""
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
        assert added[0].ok and not added[1].ok
        assert "unsubscribed themselves" in (added[1].reason or "")
        assert "Autumn" in rows["ada@example.com"].memberships
        assert "Spring" not in rows["ada@example.com"].memberships
        assert "Autumn" not in rows["bo@example.com"].memberships

    @pytest.mark.asyncio
    async def test_the_version_moves_when_the_data_does(self) -> None:
        """The contract moves the data by adding bo to a list, which is refused (so nothing moves);
        here a subscribed contact joins a list instead."""
        async with self.opened(SEED) as adapter:
            await self.write(adapter, "create_list", [Op("create_list", list="Autumn")])
            before = await adapter.version()
            assert await adapter.version() == before
            await self.write(adapter, "add_member", [Op("add_member", "ada@example.com", list="Autumn")])
            assert await adapter.version() != before


def test_the_adapter_is_registered_under_its_name() -> None:
    assert adapter_factory("constant-contact") is ConstantContactAdapter
