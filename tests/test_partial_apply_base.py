"""The base after a partly failed apply: what was confirmed is recorded, what failed is not.

A contact's ops can end mixed: its upsert confirmed while its list memberships failed (a tag
batch that ended in errors, or a job still running), an opt-out refused while a field write went
through. The base then records what both sides are known to hold, so a later edit on one side
reads as that side's change and not as a conflict; what failed keeps its old base value and is
planned again, and an opt-out seen on either side is never lost or reversed on the way. End to end
over the files adapter, one side wrapped to refuse the ops of some kinds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal

import pytest

from engine.applying import WAITS_FOR_OPT_OUT, ApplyReport, apply_plan, side_of
from engine.contract import Adapter, JobStatus, Outcome, Snapshot
from engine.planning import make_plan
from engine.plans import Change, Op, OpKind
from engine.ruleset import Side
from engine.session import SIDES
from tests.files_world import World, crm_person

pytestmark = pytest.mark.asyncio

Failure = Literal["rejected", "pending"]


@dataclass
class Refusing:
    """Wraps a real adapter; the ops of `kinds` are rejected, or left in a job that never ends."""

    inner: Adapter
    kinds: frozenset[str]
    failure: Failure = "rejected"
    jobs: int = 0

    @property
    def name(self) -> str:
        return "refusing"

    async def snapshot(self, cursor: str | None = None) -> Snapshot:
        return await self.inner.snapshot(cursor)

    async def version(self) -> str:
        return await self.inner.version()

    async def write(self, kind: OpKind, ops: Sequence[Op]) -> Sequence[Outcome]:
        if kind not in self.kinds:
            return await self.inner.write(kind, ops)
        if self.failure == "pending":
            self.jobs += 1
            return [Outcome(True, job=f"stuck-{self.jobs}")] * len(ops)
        return [Outcome(False, f"the {kind} batch ended with every operation failing")] * len(ops)

    async def poll(self, job: str, ops: Sequence[Op]) -> JobStatus:
        return JobStatus("started", False)

    async def flush(self) -> None:
        await self.inner.flush()

    async def aclose(self) -> None:
        await self.inner.aclose()


async def apply_refusing(
    world: World, *kinds: OpKind, failure: Failure = "rejected", incremental: bool = False
) -> ApplyReport:
    """Plan and apply once, with every op of `kinds` failing on the side that executes it."""
    async with world.sync() as sync:
        crm, esp = (
            Refusing(sync.adapter(side), frozenset(k for k in kinds if side_of(k) == side), failure)
            for side in SIDES
        )
        sync = replace(sync, crm=crm, esp=esp)
        return await apply_plan(sync, await make_plan(sync, incremental=incremental), job_wait=0.01)


def seeded(tmp_path: Path) -> World:
    world = World(tmp_path)
    world.write("crm.jsonl", [crm_person(f"p{n}@example.com", city=f"City {n}") for n in range(4)])
    return world


def ops_of(ops: Sequence[Op], email: str) -> list[tuple[str, str | None]]:
    return sorted((op.kind, op.list or op.field) for op in ops if op.email == email)


@pytest.mark.parametrize("failure", ["rejected", "pending"])
async def test_a_crm_edit_after_the_list_writes_failed_is_the_crms_change_not_a_conflict(
    tmp_path: Path, failure: Failure
) -> None:
    """The Mailchimp case: every contact's upsert confirmed, its tag batch failed; no base was
    written, so the CRM's next edit of a two-way field read as a change on both sides."""
    world = seeded(tmp_path)
    report = await apply_refusing(world, "add_member", failure=failure)
    assert report.done["upsert_contact"] == 4
    assert report.rejected["add_member"] + report.pending["add_member"] == 8
    assert world.read("esp.jsonl")["p1@example.com"]["CITY"] == "City 1"

    world.edit("crm.jsonl", "p1@example.com", city="Leeds")
    plan = await world.plan()
    assert [op for op in plan.ops if op.kind == "conflict"] == []
    upsert = next(op for op in plan.ops if op.kind == "upsert_contact")
    assert (upsert.email, upsert.changes) == ("p1@example.com", {"CITY": Change("City 1", "Leeds")})
    assert ops_of(plan.ops, "p0@example.com") == [("add_member", "CRM Spring"), ("add_member", "Everyone")]

    await world.apply()
    assert world.read("esp.jsonl")["p1@example.com"]["CITY"] == "Leeds"
    assert world.read("esp.jsonl")["p1@example.com"]["lists"] == ["CRM Spring", "Everyone"]
    assert world.read("crm.jsonl")["p1@example.com"]["city"] == "Leeds"
    assert (await world.plan()).ops == ()


CITY = {"crm": ("crm.jsonl", "city"), "esp": ("esp.jsonl", "CITY")}


@pytest.mark.parametrize("opting", ["crm", "esp"])
async def test_a_refused_opt_out_is_planned_again_and_the_field_write_beside_it_kept(
    tmp_path: Path, opting: Side
) -> None:
    """One side opts out while the CRM's new city goes to the ESP; the opt-out's write to the other
    side is refused. That side then edits the city: its own change, not a conflict."""
    lagging: Side = "esp" if opting == "crm" else "crm"
    world = seeded(tmp_path)
    await world.apply()
    world.edit(CITY[opting][0], "p1@example.com", opted_out=True)
    world.edit("crm.jsonl", "p1@example.com", city="Leeds")
    report = await apply_refusing(world, f"opt_out_{lagging}")
    assert report.rejected[f"opt_out_{lagging}"] == 1 and report.done["upsert_contact"] == 1
    assert world.read(CITY[lagging][0])["p1@example.com"]["opted_out"] is False

    path, name = CITY[lagging]
    world.edit(path, "p1@example.com", **{name: "Hull"})
    plan = await world.plan()
    write = "update_crm" if lagging == "esp" else "upsert_contact"
    assert ops_of(plan.ops, "p1@example.com") == sorted([(f"opt_out_{lagging}", None), (write, None)])
    assert next(op for op in plan.ops if op.kind == write).changes == {"CITY": Change("Leeds", "Hull")}
    assert all("opted_out" not in op.changes for op in plan.ops)

    await world.apply()
    for path, name in CITY.values():
        row = world.read(path)["p1@example.com"]
        assert (row["opted_out"], row[name]) == (True, "Hull")
    assert (await world.plan()).ops == ()


async def test_a_blocked_resubscribe_whose_restore_was_refused_is_blocked_again(tmp_path: Path) -> None:
    world = seeded(tmp_path)
    unsubscribed = {"email": "p3@example.com", "opted_out": True, "opt_out_reason": "unsubscribed"}
    world.write("esp.jsonl", [unsubscribed])
    await world.apply()
    world.edit("crm.jsonl", "p3@example.com", opted_out=False, city="Leeds")
    report = await apply_refusing(world, "opt_out_crm")
    assert report.rejected["opt_out_crm"] == 1 and report.done["upsert_contact"] == 1
    assert world.read("esp.jsonl")["p3@example.com"]["opted_out"] is True

    plan = await world.plan()
    assert ops_of(plan.ops, "p3@example.com") == [("blocked_resubscribe", None), ("opt_out_crm", None)]
    await world.apply()
    assert world.read("crm.jsonl")["p3@example.com"]["opted_out"] is True
    assert world.read("esp.jsonl")["p3@example.com"]["opted_out"] is True
    assert (await world.plan()).ops == ()


async def test_a_failed_list_write_is_planned_again_by_an_incremental_plan(tmp_path: Path) -> None:
    """A membership that failed keeps its old base value, so that a side whose row is not in its
    delta, and which the base therefore stands for, still reads as holding it."""
    world = seeded(tmp_path)
    await world.apply()
    world.edit("esp.jsonl", "p1@example.com", FIRSTNAME="Pat", lists=["Everyone"])
    world.write("esp-delta.jsonl", [world.read("esp.jsonl")["p1@example.com"]])
    world.write("crm-delta.jsonl", [])
    report = await apply_refusing(world, "add_member", incremental=True)
    assert report.done["upsert_contact"] == 1 and report.rejected["add_member"] == 1

    world.write("esp-delta.jsonl", [world.read("esp.jsonl")["p1@example.com"]])
    plan = await world.plan(incremental=True)
    assert [(op.kind, op.email, op.list) for op in plan.ops] == [
        ("add_member", "p1@example.com", "CRM Spring")
    ]


async def test_a_new_contact_whose_opt_out_was_refused_is_not_made_subscribed_meanwhile(
    tmp_path: Path,
) -> None:
    world = seeded(tmp_path)
    await world.apply()
    people = list(world.read("crm.jsonl").values())
    world.write("crm.jsonl", [*people, crm_person("p9@example.com", opted_out=True)])
    first = await world.plan()
    report = await apply_refusing(world, "opt_out_esp")
    assert report.rejected == {"opt_out_esp": 1, "upsert_contact": 1, "add_member": 2}
    assert report.reasons[WAITS_FOR_OPT_OUT] == 3
    assert "p9@example.com" not in world.read("esp.jsonl")

    assert (await world.plan()).ops == first.ops
    await world.apply()
    assert world.read("esp.jsonl")["p9@example.com"]["opted_out"] is True
    assert (await world.plan()).ops == ()


async def test_a_resubscribe_held_off_stays_held_off_when_the_contact_comes_back_half_made(
    tmp_path: Path,
) -> None:
    """Opted out on both sides, then deleted from the ESP while the CRM opted back in (the rules
    allow no resubscribe). Both opt-outs that restore it fail: the ESP must not get the contact
    subscribed meanwhile, or both sides would agree on an opt-in and the opt-out would be lost."""
    world = seeded(tmp_path)
    unsubscribed = {"email": "p3@example.com", "opted_out": True, "opt_out_reason": "unsubscribed"}
    world.write("esp.jsonl", [unsubscribed])
    await world.apply()
    kept = [row for email, row in world.read("esp.jsonl").items() if email != "p3@example.com"]
    world.write("esp.jsonl", kept)  # deleted from the ESP
    world.edit("crm.jsonl", "p3@example.com", opted_out=False)
    report = await apply_refusing(world, "opt_out_esp", "opt_out_crm")
    assert report.reasons[WAITS_FOR_OPT_OUT] == 3  # its upsert and two memberships
    assert "p3@example.com" not in world.read("esp.jsonl")

    plan = await world.plan()
    assert ("opt_out_crm", None) in ops_of(plan.ops, "p3@example.com")
    await world.apply()
    assert world.read("crm.jsonl")["p3@example.com"]["opted_out"] is True
    assert world.read("esp.jsonl")["p3@example.com"]["opted_out"] is True
    assert (await world.plan()).ops == ()
