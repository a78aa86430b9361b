"""Workbooks to Dotdigital end to end, through the engine, over both emulators (ASGITransport)."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest

import engine.applying
from adapters.demos.workbooks_dotdigital import emulator_transports
from adapters.dotdigital.emulator_data import ActivityShares
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from adapters.workbooks.emulator_data import generate
from adapters.workbooks.emulator_state import WorkbooksState
from engine.applying import apply_plan
from engine.budgets import Budgets
from engine.errors import RulesError
from engine.following import follow_jobs
from engine.planning import make_plan
from engine.plans import Plan
from engine.rules_loading import load_rules
from engine.session import Sync, open_sync
from tests.workbooks_world import dotdigital_rules

pytestmark = pytest.mark.asyncio


class World:
    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        self.rules = dotdigital_rules(root, monkeypatch)
        monkeypatch.setattr(engine.applying, "POLL_FIRST", 0.01)
        self.crm = WorkbooksState(seed=5)
        generate(self.crm, seed=5, people=120, leads=40)
        self.esp = DotdigitalState(Knobs(rate_scheme="none"), seed=5, started_at=datetime.now(UTC))

    @asynccontextmanager
    async def sync(self, budgets: Budgets | None = None) -> AsyncIterator[Sync]:
        extras = dict(emulator_transports(self.crm, self.esp))
        # Budgets off: these tests are about what the sync does; the rules' real budget (2,000
        # calls an hour) would pace them in real time, since the state store rules out fake time.
        budgets = budgets or Budgets(enabled=False)
        async with open_sync(self.rules, budgets=budgets, extras=extras) as sync:
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

    def person_or_lead(self, email: str) -> dict[str, object]:
        for controller, column in (
            ("crm/people", "main_location[email]"),
            ("crm/sales_leads", "org_lead_party[main_location[email]]"),
        ):
            for record in self.crm.live(controller):
                if str(record.get(column, "")).strip().lower() == email:
                    return record
        raise KeyError(email)

    def email_of(self, person_id: int) -> str:
        return str(self.crm.get("crm/people", person_id)["main_location[email]"]).strip().lower()

    def contact_in_books(self, email: str) -> set[str]:
        contact = self.esp.contact_by_email(email)
        return {book.name for book in self.esp.books_of(contact.id)} if contact else set()

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


async def test_a_member_removed_from_the_campaign_leaves_the_address_book(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path, monkeypatch)
    await world.plan_and_apply()
    member = next(
        m for m in world.crm.live("crm/campaign_membership")
        if m["party_or_lead_type"] == "Private::Crm::Person"
        and world.contact_in_books(world.email_of(m["party_or_lead_id"]))
    )  # fmt: skip
    email = world.email_of(member["party_or_lead_id"])
    before = world.contact_in_books(email)
    world.crm.delete("crm/campaign_membership", member["id"])
    plan = await world.plan_and_apply()
    removed = {op.list for op in plan.ops if op.kind == "remove_member" and op.email == email}
    assert len(removed) == 1
    assert world.contact_in_books(email) == before - removed
    assert (await world.plan()).ops == ()


async def test_a_mapped_crm_field_the_database_lacks_stops_the_plan_at_its_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path, monkeypatch)
    path = world.rules.path
    path.write_text(path.read_text().replace('crm = "cf_person_interests"', 'crm = "cf_person_intrests"'))
    world.rules = load_rules(path)
    with pytest.raises(RulesError) as raised:
        await world.plan()
    [problem] = raised.value.problems
    line = next(n for n, text in enumerate(path.read_text().splitlines(), 1) if "cf_person_intrests" in text)
    assert (problem.line, problem.path) == (line, "fields[2].crm")
    assert "'cf_person_interests'" in problem.message  # the nearest real field
    assert world.esp.contacts == {}  # nothing was written


async def test_the_imports_process_follows_a_job_the_apply_left_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path, monkeypatch)
    monkeypatch.setattr(engine.applying, "JOB_WAIT", 0.05)
    world.esp.tune(import_polls=10_000)  # imports run until the test lets them finish
    async with world.sync() as sync:
        report = await apply_plan(sync, await make_plan(sync))
        assert report.pending["add_member"] > 0
        assert report.base_written < report.pending["upsert_contact"]  # no base for pending rows
        assert await follow_jobs(sync) is not None
        still = await sync.store.open_jobs(sync.name)
        assert still and all(job.state == "NotFinished" for job in still)
    for job in [*world.esp.imports.values(), *world.esp.v3_imports.values()]:
        job.polls_needed = 0  # Dotdigital gets round to them
    async with world.sync() as sync:
        followed = await follow_jobs(sync)
        assert followed.jobs["Finished"] == len(still)
        assert followed.rows["done"] > 0
        assert await sync.store.open_jobs(sync.name) == []
    # The rows those imports carried are in Dotdigital now: the next sync converges without them.
    again = await world.plan_and_apply()
    assert not [op for op in again.ops if op.kind == "add_member"]
    assert (await world.plan()).ops == ()


async def test_each_process_alone_then_together_converge_over_both_vendors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path, monkeypatch)
    for process in ("members", "contacts", "activity"):
        async with world.sync() as sync:
            report = await apply_plan(sync, await make_plan(sync, process=process))
            assert sum(report.rejected.values()) == 0, report.reasons
    assert world.esp.address_books and world.esp.data_fields
    assert (await world.plan()).ops == ()


async def test_activity_lands_once_with_campaign_totals_and_bounces_mark_the_crm(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path, monkeypatch)
    await world.plan_and_apply()
    book = max(world.esp.address_books.values(), key=lambda b: len(world.esp.members(b.id)))
    sent = world.esp.add_campaign("November news", book_ids=[book.id])  # sent after the last sync
    world.esp.generate_activity(sent.id, ActivityShares(hard_bounce=0.05, open=0.6, click=0.5))
    expected = sent.activity.values()
    opens = sum(len(a.opens) for a in expected)
    assert opens and any(a.hard_bounced for a in expected)

    async with world.sync() as sync:
        plan = await make_plan(sync, process="activity")
        # A send of ~140 with 5% hard bounces plus unsubscribes passes the rules' 5% opt-out threshold.
        report = await apply_plan(sync, plan, override_safety=True)
    assert report.rejected["record_activity"] == 0, report.reasons
    activities = world.crm.live("crm/online_activities")
    by_type = Counter(a["online_activity_type"] for a in activities)
    assert by_type["Email Open"] == opens
    assert by_type["Click Through"] == sum(len(a.clicks) for a in expected)
    assert by_type["Email Bounce"] == sum(1 for a in expected if a.hard_bounced or a.soft_bounced)
    campaign_id = activities[0]["marketing_campaign_id"]
    assert {a["marketing_campaign_id"] for a in activities} == {campaign_id}
    assert world.crm.get("crm/campaigns", campaign_id)["cf_marketing_campaign_email_opens"] == opens
    # Hard bounces came back as the CRM's undeliverable flag, in the same run.
    bounced = next(a.email for a in expected if a.hard_bounced)
    record = world.person_or_lead(bounced)
    assert [v for k, v in record.items() if "email_address_undeliverable" in k] == [True]

    # The next run re-reads the cursor's overlap and plans none of it again.
    assert (await world.plan()).ops == ()
    # Even a run that forgot everything and re-reads the whole window writes nothing twice.
    async with world.sync() as sync:
        await sync.store.set_cursor(sync.name, "esp", "activity", '{"cursor": null}')
    replay = await world.plan_and_apply()
    assert sum(op.kind == "record_activity" and op.email is not None for op in replay.ops) > 0
    assert len(world.crm.live("crm/online_activities")) == len(activities)


async def test_a_run_reports_its_own_calls_when_the_account_budget_outlives_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path, monkeypatch)
    shared = Budgets(enabled=False)  # as in a service or the demo: one budget per account, many runs
    for _ in range(2):
        before = len(world.esp.calls)
        async with world.sync(shared) as sync:
            report = await apply_plan(sync, await make_plan(sync))
        assert report.calls["esp"] == len(world.esp.calls) - before > 0
