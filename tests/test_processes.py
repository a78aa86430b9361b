"""The four processes: each applies its own part of the plan, and together they converge.

Over the files adapter, end to end. What must hold: a process applies only its kinds of op (and
every opt-out), a contact with work left for another process keeps its base, record cursors do
not move past deferred work, and running the processes one after another ends where one whole
apply ends.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from adapters.files.adapter import FilesAdapter
from engine.applying import apply_plan
from engine.changes import SideView
from engine.contract import Outcome
from engine.planning import make_plan
from engine.plans import REPORT_ONLY, Op, OpKind
from engine.processes import CONSENT, PROCESS_OPS, belongs
from engine.reading import BaseLookup, Reading
from tests.files_world import World, crm_person

pytestmark = pytest.mark.asyncio


def people(n: int) -> list[dict[str, object]]:
    return [crm_person(f"p{i}@example.com") for i in range(n)]


async def changed_world(root: Path) -> World:
    """A synced world, then changes of every process's kind on both sides."""
    root.mkdir(exist_ok=True)
    world = World(root)
    world.write("crm.jsonl", [*people(8), crm_person("lead@example.com", kind="lead", score="1")])
    await world.apply()
    make_changes(world)
    return world


def make_changes(world: World) -> None:
    world.edit("crm.jsonl", "p1@example.com", first_name="Renamed")  # contacts
    world.edit("crm.jsonl", "p2@example.com", lists=[])  # members: leaves CRM Spring
    world.edit("crm.jsonl", "p3@example.com", opted_out=True)  # consent, CRM side
    world.edit("esp.jsonl", "p4@example.com", opted_out=True, opt_out_reason="unsubscribed")
    world.edit("crm.jsonl", "p5@example.com", first_name="Both", lists=[])  # contacts and members
    rows = list(world.read("crm.jsonl").values())
    world.write("crm.jsonl", [*rows, crm_person("new@example.com")])  # all of them


async def test_each_process_plans_only_its_kinds_and_every_opt_out(tmp_path: Path) -> None:
    world = await changed_world(tmp_path)
    whole = await world.plan()
    for process in ("members", "contacts", "activity"):
        part = await world.plan(process=process)
        assert [op for op in whole.ops if belongs(op, process)] == list(part.ops)
        assert {op.kind for op in part.ops} <= PROCESS_OPS[process] | REPORT_ONLY | {"upsert_contact"}
        assert part.deferred == len(whole.ops) - len(part.ops)
        opt_outs = {(op.kind, op.email) for op in part.ops if op.kind in CONSENT}
        assert opt_outs == {("opt_out_esp", "p3@example.com"), ("opt_out_crm", "p4@example.com")}
    members = await world.plan(process="members")
    creating = [op.email for op in members.ops if op.kind == "upsert_contact"]
    assert creating == ["new@example.com"]  # a new member needs the contact; p1's rename waits


async def test_processes_one_after_another_end_where_one_whole_apply_ends(tmp_path: Path) -> None:
    split, whole = await changed_world(tmp_path / "split"), await changed_world(tmp_path / "whole")
    await whole.apply()
    for process in ("members", "contacts", "activity"):
        report = await split.apply(process=process)
        assert sum(report.rejected.values()) == 0
    assert split.read("esp.jsonl") == whole.read("esp.jsonl")
    assert split.read("crm.jsonl") == whole.read("crm.jsonl")
    assert (await split.plan()).ops == ()


async def test_a_contact_with_work_left_for_another_process_keeps_its_base(tmp_path: Path) -> None:
    world = await changed_world(tmp_path)
    members = await world.plan(process="members")
    # p5 changed a field and left a campaign: members removes it, contacts still owes the rename.
    assert "p5@example.com" not in members.targets
    assert "p2@example.com" in members.targets  # only membership work: committed by members
    await world.apply(process="members")
    assert "CRM Spring" not in world.read("esp.jsonl")["p5@example.com"]["lists"]
    contacts = await world.plan(process="contacts")
    assert [(op.kind, op.email) for op in contacts.ops if op.email == "p5@example.com"] == [
        ("upsert_contact", "p5@example.com")
    ]
    await world.apply(process="contacts")
    assert world.read("esp.jsonl")["p5@example.com"]["FIRSTNAME"] == "Both"
    assert (await world.plan()).ops == ()


async def test_record_cursors_stay_put_while_work_is_deferred(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.write("crm.jsonl", people(6))
    await world.apply()
    async with world.sync() as sync:
        await sync.store.set_cursor(sync.name, "crm", "records", "before")
    world.write("crm-delta.jsonl", [crm_person("p1@example.com", first_name="Delta", lists=[])])
    await world.apply(incremental=True, process="members")
    async with world.sync() as sync:
        assert await sync.store.get_cursor(sync.name, "crm", "records") == "before"
    # The rename is still seen incrementally, because the cursor did not move past it.
    contacts = await world.plan(incremental=True, process="contacts")
    assert [(op.kind, op.email) for op in contacts.ops] == [("upsert_contact", "p1@example.com")]
    await world.apply(incremental=True)  # every process: nothing deferred, the cursor moves
    async with world.sync() as sync:
        assert await sync.store.get_cursor(sync.name, "crm", "records") != "before"
    assert world.read("esp.jsonl")["p1@example.com"]["FIRSTNAME"] == "Delta"


async def test_processes_planned_together_and_applied_in_either_order_leave_nothing_behind(
    tmp_path: Path,
) -> None:
    """Two runs of one rule set at once, as the service runs them: both planned from one base,
    the later-planned one committing first. The other's commit leaves the contacts it wrote."""
    world = await changed_world(tmp_path)
    async with world.sync() as members_run, world.sync() as contacts_run:
        members = await make_plan(members_run, process="members")
        contacts = await make_plan(contacts_run, process="contacts")
        await apply_plan(contacts_run, contacts)
        between = await members_run.store.base_version(world.rules.rules.name)
        report = await apply_plan(members_run, members)
    assert between > members.tokens.base  # the contacts run did commit in between
    # Shared contacts (the opt-outs, the new contact) were written by the contacts run and left alone.
    assert report.base_written < len(members.targets)
    assert (await world.plan()).ops == ()  # nothing lost, nothing left
    crm, esp = world.read("crm.jsonl"), world.read("esp.jsonl")
    assert esp["p3@example.com"]["opted_out"] and crm["p4@example.com"]["opted_out"]


async def test_a_run_plans_nothing_for_contacts_another_run_wrote_while_it_planned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A plan reads the base's fingerprints first and the base rows later; another run of the rule
    set may commit in between. Found by the crash test: a `contacts` run wrote a Dotdigital
    unsubscribe back to Workbooks (whose writes report no fingerprint, so the base kept none for
    the CRM row) while a `members` run was planning; the members run then took the contact for one
    deleted from the CRM and took it off its lists. A contact written since a plan began is left to
    the next run, which sees both sides as they are now."""
    world = await changed_world(tmp_path)
    write = FilesAdapter.write

    async def write_without_fingerprints(
        self: FilesAdapter, kind: OpKind, ops: Sequence[Op]
    ) -> list[Outcome]:
        return [Outcome(o.ok, o.reason, o.job) for o in await write(self, kind, ops)]  # as Workbooks

    monkeypatch.setattr(FilesAdapter, "write", write_without_fingerprints)
    settle = BaseLookup.settle
    async with world.sync() as members_run, world.sync() as contacts_run:
        contacts = await make_plan(contacts_run, process="contacts")

        async def settle_after_the_other_run(self: BaseLookup, reading: Reading, view: SideView) -> None:
            if reading.side == "crm" and not contacts_applied:
                contacts_applied.append(await apply_plan(contacts_run, contacts))
            await settle(self, reading, view)

        contacts_applied: list[object] = []
        monkeypatch.setattr(BaseLookup, "settle", settle_after_the_other_run)
        members = await make_plan(members_run, process="members")
        monkeypatch.setattr(BaseLookup, "settle", settle)
        assert contacts_applied
        assert not [op for op in members.ops if op.email == "p4@example.com"]  # written by contacts
        await apply_plan(members_run, members)
    monkeypatch.setattr(FilesAdapter, "write", write)
    assert (await world.plan()).ops == ()
    crm, esp = world.read("crm.jsonl"), world.read("esp.jsonl")
    assert crm["p4@example.com"]["opted_out"] and esp["p4@example.com"]["lists"]
