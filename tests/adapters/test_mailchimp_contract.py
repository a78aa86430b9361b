"""The Mailchimp adapter against the adapter contract, over the emulator, in both membership modes.

Also home of the helpers the adapter's own tests (``test_mailchimp_adapter.py``, ``..._activity.py``) use:
an emulated account (`account`), the adapter opened on it (`opened`), and writes whose tag batches are
polled to the end (`write`, Dotdigital's, which polls jobs as the engine's apply does for any
adapter). The account's clock starts at the real current time, so that the adapter's cursors (local UTC
time) and the emulator's ``last_changed`` dates agree, as a real account's would.

Mailchimp tags an unsubscribed member as readily as a subscribed one, so the contract holds unchanged.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

import httpx

from adapters.mailchimp.adapter import MailchimpAdapter, MailchimpSettings
from adapters.mailchimp.emulator import create_app
from adapters.mailchimp.emulator_data import MergeField
from adapters.mailchimp.emulator_state import Knobs, MailchimpState
from engine.budgets import Budget
from engine.contract import Adapter, AdapterContext, Outcome
from engine.http import budgeted_client
from engine.plans import Op, OpKind
from engine.ruleset import SecretRef, Side
from tests.adapters.contract import AdapterContract
from tests.adapters.meddling import Meddle, Meddling
from tests.adapters.test_dotdigital_contract import write

AUDIENCE = "Customers"


def account(seed: Sequence[dict[str, Any]] = (), **knobs: Any) -> MailchimpState:
    """A fresh account whose audience holds `seed` rows (contract-suite shape): FIRSTNAME and tags."""
    state = MailchimpState(Knobs(**knobs), started_at=datetime.now(UTC))
    audience = state.create_audience(AUDIENCE)
    audience.merge_fields["FIRSTNAME"] = MergeField(
        len(audience.merge_fields) + 1, "FIRSTNAME", "First name", "text"
    )
    for row in seed:
        member = state.add_member(
            audience, row["email"], "unsubscribed" if row.get("opted_out") else "subscribed"
        )
        member.merge["FIRSTNAME"] = row.get("FIRSTNAME", "")
        for name in row.get("lists", []):
            tag = audience.segment_named(name) or state.create_segment(audience, name)
            tag.members[member.id] = None
    return state


@asynccontextmanager
async def opened(
    state: MailchimpState, hosts: list[str] | None = None, *, meddle: Meddle | None = None, **settings: Any
) -> AsyncIterator[MailchimpAdapter]:
    """The adapter on `state`; `hosts` collects the base URL of every HTTP client it made, and
    `meddle` sees each request before the emulator does."""
    app = create_app(state)

    def http(base_url: str) -> httpx.AsyncClient:
        if hosts is not None:
            hosts.append(base_url)
        transport: httpx.AsyncBaseTransport = httpx.ASGITransport(app=app)
        if meddle is not None:
            transport = Meddling(transport, meddle)
        return budgeted_client(base_url, Budget("mailchimp", None), transport=transport)

    context = AdapterContext(
        "esp", Path("."), Budget("mailchimp", None), lambda ref: state.knobs.api_key, http=http
    )
    chosen = {"audience": AUDIENCE, **settings}
    adapter = MailchimpAdapter(MailchimpSettings(api_key=SecretRef(env="MAILCHIMP_KEY"), **chosen), context)
    try:
        yield adapter
    finally:
        await adapter.aclose()


class TestMailchimpContract(AdapterContract):
    side: Side = "esp"
    settings: ClassVar[dict[str, Any]] = {}

    @asynccontextmanager
    async def opened(self, seed: Sequence[dict[str, Any]]) -> AsyncIterator[Adapter]:
        async with opened(account(seed), **self.settings) as adapter:
            yield adapter

    @staticmethod
    async def write(adapter: Adapter, kind: OpKind, ops: Sequence[Op]) -> Sequence[Outcome]:
        """Tag batches are jobs: poll them to the end before the next snapshot."""
        return await write(adapter, kind, ops)


class TestMailchimpSegmentContract(TestMailchimpContract):
    """The same contract with memberships written as static segments' members."""

    settings: ClassVar[dict[str, Any]] = {"membership": "segment"}
