"""End to end through the engine: a CRM in JSON Lines files synced to the Constant Contact emulator.

The adapter is opened by the engine's session from a rule file, with its grant in the rule set's
state store (as `listsync auth constant-contact` leaves it) and the emulator reached through
``extras["esp_transport"]``: the first sync creates the lists (the campaign's and the master list),
the custom fields and the contacts, a second plan is empty, and opt-outs made on either side end up
on both.
"""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from adapters.constantcontact.emulator import create_app
from adapters.constantcontact.emulator_state import ConstantContactState
from engine.applying import apply_plan
from engine.contract import OAuthTokens
from engine.planning import make_plan
from engine.plans import Plan, summarise
from engine.rules_loading import load_rules
from engine.session import open_sync
from engine.store import StateStore
from tests.adapters.test_constantcontact_contract import SCOPES, account
from tests.files_world import World, crm_person

RULES = """
name = "cc"
state = "state.sqlite3"

[crm]
adapter = "files"
settings = { path = "crm.jsonl", campaigns = "campaigns.jsonl" }

[esp]
adapter = "constant-contact"
settings = { client_id = "emulator-client-id", client_secret = { env = "CC_CLIENT_SECRET" } }

[esp.limits]
calls = 100  # the vendor's 4 a second would make this test wait; pacing is tested on fake time

[[fields]]
crm = "first_name"
esp = "first_name"

[[fields]]
crm = "city"
esp = "CITY"
direction = "both"

[campaigns]
integrated = ["*"]

[lists]
template = "CRM {name:.100}"
master = "All Workbooks Contacts"
"""


async def _sync(root: Path, state: ConstantContactState, *, apply: bool) -> Plan:
    extras = {"esp_transport": httpx.ASGITransport(app=create_app(state))}
    async with open_sync(load_rules(root / "rules.toml"), extras=extras) as sync:
        plan = await make_plan(sync)
        if apply:
            report = await apply_plan(sync, plan)
            assert not report.rejected and not report.pending, report.reasons
        return plan


@pytest.mark.asyncio
async def test_a_first_sync_then_opt_outs_from_both_sides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path)
    (tmp_path / "rules.toml").write_text(RULES)
    world.write("crm.jsonl", [crm_person(f"p{n}@example.com") for n in range(6)])
    state = account(activity_polls=0)
    monkeypatch.setenv("CC_CLIENT_SECRET", state.knobs.client_secret)
    issued = state.grants.issue(SCOPES)
    tokens = OAuthTokens(str(issued["access_token"]), str(issued["refresh_token"]), time.time() + 86_400)
    async with await StateStore.open(tmp_path / "state.sqlite3") as store:
        await store.save_tokens("cc", "esp", "constant-contact", tokens)

    first = await _sync(tmp_path, state, apply=True)
    counts = summarise(first.ops)
    assert counts["create_list"] == 2 and counts["create_field"] == 1 and counts["upsert_contact"] == 6
    assert {x.name for x in state.lists.values()} == {"CRM Spring", "All Workbooks Contacts"}
    p1 = state.contact_by_email("p1@example.com")
    assert p1 is not None and p1.scalars["first_name"] == "P1" and len(p1.lists) == 2
    assert (await _sync(tmp_path, state, apply=False)).ops == ()
    assert len(state.calls) < 40  # the first sync and a plan: a few reads, one import, two activities

    world.edit("crm.jsonl", "p2@example.com", opted_out=True)
    state.unsubscribe(p1, "Contact")
    plan = await _sync(tmp_path, state, apply=True)
    assert sorted((op.kind, op.email) for op in plan.ops) == [
        ("opt_out_crm", "p1@example.com"),
        ("opt_out_esp", "p2@example.com"),
    ]
    p2 = state.contact_by_email("p2@example.com")
    assert p2 is not None and p2.permission == "unsubscribed" and p2.opt_out_source == "Account"
    assert world.read("crm.jsonl")["p1@example.com"]["opted_out"] is True
    assert (await _sync(tmp_path, state, apply=False)).ops == ()
