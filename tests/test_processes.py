"""The four processes: each applies its own part of the plan, and together they converge.

Over the files adapter, end to end. What must hold: a process applies only its kinds of op (and
every opt-out), a contact with work left for another process keeps its base, each process's record
cursors move past its own part of a change and no further, and running the processes one after
another ends where one whole apply ends.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from pathlib import Path

import pytest

from adapters.files.adapter import FilesAdapter
from engine.applying import apply_plan
from engine.changes import SideView
from engine.contract import Outcome
from engine.planning import make_plan, records_stream
from engine.plans import REPORT_ONLY, Op, OpKind
from engine.processes import CONSENT, PROCESS_OPS, belongs
from engine.reading import BaseLookup, Reading
from engine.ruleset import ProcessName
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


async def cursor(world: World, process: ProcessName | None) -> str | None:
    async with world.sync() as sync:
        return await sync.store.get_cursor(sync.name, "crm", records_stream(process))


async def test_each_process_moves_its_own_cursor_past_its_part_of_a_change(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.write("crm.jsonl", people(6))
    await world.apply()
    synced = await cursor(world, None)
    assert synced is not None
    # A whole apply did every process's part: each process reads on from where it ended.
    assert [await cursor(world, p) for p in ("members", "contacts", "activity")] == [synced] * 3
    async with world.sync() as sync:
        for process in (None, "members", "contacts", "activity"):
            await sync.store.set_cursor(sync.name, "crm", records_stream(process), "before")
    world.write("crm-delta.jsonl", [crm_person("p1@example.com", first_name="Delta", lists=[])])
    await world.apply(incremental=True, process="members")
    # Members did its part (p1 left the list) and moves on, while the rename waits for contacts,
    # whose cursor has not moved past it: a shared cursor would have waited for both.
    assert await cursor(world, "members") not in (None, "before")
    assert await cursor(world, "contacts") == await cursor(world, None) == "before"
    assert world.read("esp.jsonl")["p1@example.com"]["lists"] == ["Everyone"]
    # What the ESP's changes since the cursor now hold, as a vendor's modified-since read gives them.
    world.write("esp-delta.jsonl", [world.read("esp.jsonl")["p1@example.com"]])
    contacts = await world.plan(incremental=True, process="contacts")
    assert [(op.kind, op.email) for op in contacts.ops] == [("upsert_contact", "p1@example.com")]
    await world.apply(incremental=True, process="contacts")
    assert await cursor(world, "contacts") not in (None, "before")
    assert world.read("esp.jsonl")["p1@example.com"]["FIRSTNAME"] == "Delta"
    world.write("esp-delta.jsonl", [world.read("esp.jsonl")["p1@example.com"]])
    assert (await world.plan(incremental=True)).ops == ()  # both parts done, the base says so


async def test_a_process_without_a_cursor_of_its_own_reads_from_the_whole_applys(tmp_path: Path) -> None:
    """As after an upgrade from one shared cursor: the process reads on from it, not everything."""
    world = World(tmp_path)
    world.write("crm.jsonl", people(6))
    await world.apply()
    with sqlite3.connect(world.rules.state_path) as db:
        db.execute("DELETE FROM cursors WHERE stream = ?", (records_stream("contacts"),))
    world.write("crm-delta.jsonl", [crm_person("p1@example.com", first_name="Delta")])
    plan = await world.plan(incremental=True, process="contacts")
    assert [(op.kind, op.email) for op in plan.ops] == [("upsert_contact", "p1@example.com")]


async def test_rows_rejected_as_read_do_not_hold_the_cursors(tmp_path: Path) -> None:
    """A malformed address comes back in a delta once someone fixes it; whole reads see it too."""
    world = World(tmp_path)
    world.write("crm.jsonl", [*people(6), crm_person("broken@")])
    await world.apply()
    assert await cursor(world, None) is not None
    world.write("crm-delta.jsonl", [crm_person("p1@example.com", first_name="Delta"), crm_person("bad@")])
    plan = await world.plan(incremental=True)
    assert [reason for _, _, reason in plan.rejections] == ["malformed email 'bad@'"]
    async with world.sync() as sync:
        await sync.store.set_cursor(sync.name, "crm", records_stream(None), "before")
    await world.apply(incremental=True)
    assert await cursor(world, None) not in (None, "before")
    world.write("crm-delta.jsonl", [crm_person("bad@example.com")])  # fixed: it is in the delta
    await world.apply(incremental=True)
    assert "bad@example.com" in world.read("esp.jsonl")


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
