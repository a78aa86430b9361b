"""Workbooks to Dotdigital end to end, through the engine, over both emulators (ASGITransport)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

import engine.applying
from adapters.demos.workbooks_dotdigital import EMULATOR_SECRETS, emulator_rules, emulator_transports
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from adapters.workbooks.emulator_data import generate
from adapters.workbooks.emulator_state import WorkbooksState
from engine.applying import apply_plan
from engine.budgets import Budgets
from engine.planning import make_plan
from engine.plans import Plan
from engine.rules_loading import load_rules
from engine.session import Sync, open_sync

pytestmark = pytest.mark.asyncio


class World:
    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        rules = emulator_rules(root)
        for name, value in EMULATOR_SECRETS.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(engine.applying, "POLL_FIRST", 0.01)
        self.crm = WorkbooksState(seed=5)
        generate(self.crm, seed=5, people=120, leads=40)
        self.esp = DotdigitalState(Knobs(rate_scheme="none"), seed=5)
        self.rules = load_rules(rules)

    @asynccontextmanager
    async def sync(self) -> AsyncIterator[Sync]:
        extras = dict(emulator_transports(self.crm, self.esp))
        # Budgets off: these tests are about what the sync does; the rules' real budget (2,000
        # calls an hour) would pace them in real time, since the state store rules out fake time.
        async with open_sync(self.rules, budgets=Budgets(enabled=False), extras=extras) as sync:
            yield sync

    async def plan_and_apply(self) -> Plan:
        async with self.sync() as sync:
            plan = await make_plan(sync)
            report = await apply_plan(sync, plan)
        assert sum(report.rejected.values()) == 0, report.reasons
        return plan

    async def plan(self) -> Plan:
        async with self.sync() as sync:
            return await make_plan(sync)

    def person(self, email: str) -> dict[str, object]:
        for record in self.crm.records["crm/people"].values():
            if str(record.get("main_location[email]", "")).lower() == email and not record.get("is_deleted"):
                return record
        raise KeyError(email)

    def contact_opted_out(self, email: str) -> bool:
        contact = self.esp.contact_by_email(email)
        return contact is not None and (contact.status != "Subscribed" or contact.id in self.esp.suppressions)


async def test_a_first_sync_builds_the_esp_and_a_second_plan_is_empty(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path, monkeypatch)
    first = await world.plan_and_apply()
    kinds = {op.kind for op in first.ops}
    assert {"create_list", "create_field", "upsert_contact", "add_member"} <= kinds
    assert len(world.esp.address_books) == sum(1 for op in first.ops if op.kind == "create_list")
    assert len(world.esp.contacts) > 100
    assert (await world.plan()).ops == ()


async def test_opt_outs_made_on_either_side_end_up_on_both_and_nobody_is_resubscribed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path, monkeypatch)
    await world.plan_and_apply()
    subscribed = [
        r
        for r in world.crm.records["crm/people"].values()
        if not r.get("no_email_soliciting")
        and not r.get("is_deleted")
        and "@" in str(r.get("main_location[email]"))
        and world.esp.contact_by_email(str(r["main_location[email]"]).lower()) is not None
    ]
    in_crm, in_esp = (str(r["main_location[email]"]).lower() for r in subscribed[:2])
    world.crm.update("crm/people", world.person(in_crm)["id"], {"no_email_soliciting": True})
    world.esp.unsubscribe(in_esp)
    plan = await world.plan_and_apply()
    assert {(op.kind, op.email) for op in plan.ops if op.kind.startswith("opt_out")} == {
        ("opt_out_esp", in_crm),
        ("opt_out_crm", in_esp),
    }
    assert world.contact_opted_out(in_crm) and world.person(in_esp)["no_email_soliciting"]
    # A person opting back in by hand in the CRM does not resubscribe them in the ESP.
    world.crm.update("crm/people", world.person(in_esp)["id"], {"no_email_soliciting": False})
    again = await world.plan_and_apply()
    assert "blocked_resubscribe" in {op.kind for op in again.ops}
    assert world.contact_opted_out(in_esp) and world.person(in_esp)["no_email_soliciting"]
    assert (await world.plan()).ops == ()
