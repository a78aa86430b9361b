"""End to end over the files adapter: plan, apply, plan again; consent, safety, stale plans."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import SafetyStop, StalePlanError
from engine.planning import check_fresh, make_plan
from engine.plans import summarise
from tests.files_world import World, crm_person

pytestmark = pytest.mark.asyncio


def people(n: int) -> list[dict[str, object]]:
    return [crm_person(f"p{i}@example.com") for i in range(n)]


async def test_first_sync_creates_everything_and_the_second_plan_is_empty(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.write("crm.jsonl", [*people(5), crm_person("lead@example.com", kind="lead", score="42")])
    plan = await world.plan()
    counts = summarise(plan.ops)
    assert counts["create_list"] == 2  # "CRM Spring" and the master list; Autumn is closed
    assert counts["create_field"] == 3
    assert counts["upsert_contact"] == 6
    assert counts["add_member"] == 12
    report = await world.apply()
    assert sum(report.rejected.values()) == 0
    esp = world.read("esp.jsonl")
    assert esp["lead@example.com"]["SCORE"] == 42
    assert sorted(esp["p1@example.com"]["lists"]) == ["CRM Spring", "Everyone"]
    assert (await world.plan()).ops == ()


async def test_opt_outs_made_on_either_side_end_up_on_both(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.write("crm.jsonl", people(6))
    await world.apply()
    world.edit("crm.jsonl", "p1@example.com", opted_out=True)
    world.edit("esp.jsonl", "p2@example.com", opted_out=True, opt_out_reason="unsubscribed")
    plan = await world.plan()
    assert [(op.kind, op.email) for op in plan.ops] == [
        ("opt_out_esp", "p1@example.com"),
        ("opt_out_crm", "p2@example.com"),
    ]
    await world.apply()
    assert world.read("esp.jsonl")["p1@example.com"]["opted_out"] is True
    assert world.read("crm.jsonl")["p2@example.com"]["opted_out"] is True
    assert (await world.plan()).ops == ()


async def test_a_resubscribe_in_the_crm_is_blocked_and_the_opt_out_kept(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.write("crm.jsonl", people(5))
    world.write(
        "esp.jsonl",
        [{"email": "p1@example.com", "opted_out": True, "opt_out_reason": "unsubscribed"}],
    )
    await world.apply()
    assert world.read("crm.jsonl")["p1@example.com"]["opted_out"] is True
    world.edit("crm.jsonl", "p1@example.com", opted_out=False)
    plan = await world.plan()
    assert sorted(op.kind for op in plan.ops) == ["blocked_resubscribe", "opt_out_crm"]
    await world.apply()
    assert world.read("crm.jsonl")["p1@example.com"]["opted_out"] is True
    assert world.read("esp.jsonl")["p1@example.com"]["opted_out"] is True
    assert (await world.plan()).ops == ()


async def test_a_member_removed_from_the_campaign_leaves_the_list(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.write("crm.jsonl", people(5))
    await world.apply()
    world.edit("crm.jsonl", "p3@example.com", lists=[])
    plan = await world.plan()
    assert [(op.kind, op.list) for op in plan.ops] == [("remove_member", "CRM Spring")]
    await world.apply()
    assert world.read("esp.jsonl")["p3@example.com"]["lists"] == ["Everyone"]


async def test_field_changes_flow_both_ways_and_conflicts_are_parked(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.write("crm.jsonl", people(4))
    await world.apply()
    world.edit("crm.jsonl", "p0@example.com", first_name="Zed")
    world.edit("esp.jsonl", "p1@example.com", CITY="Hull")
    world.edit("crm.jsonl", "p2@example.com", city="Leeds")
    world.edit("esp.jsonl", "p2@example.com", CITY="Bath")
    plan = await world.plan()
    assert sorted((op.kind, op.email) for op in plan.ops) == [
        ("conflict", "p2@example.com"),
        ("update_crm", "p1@example.com"),
        ("upsert_contact", "p0@example.com"),
    ]
    await world.apply()
    assert world.read("esp.jsonl")["p0@example.com"]["FIRSTNAME"] == "Zed"
    assert world.read("crm.jsonl")["p1@example.com"]["city"] == "Hull"
    # The conflict stays parked, both sides untouched, until someone settles it.
    again = await world.plan()
    assert [op.kind for op in again.ops] == ["conflict"]
    world.edit("esp.jsonl", "p2@example.com", CITY="Leeds")
    assert (await world.plan()).ops == ()


async def test_a_rejected_record_is_reported_and_left_alone(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.write("crm.jsonl", people(4))
    await world.apply()
    world.edit("crm.jsonl", "p1@example.com", kind="lead", score="lots")
    rows = [*world.read("crm.jsonl").values(), {"email": "not-an-email", "opted_out": False}]
    world.write("crm.jsonl", rows)
    plan = await world.plan()
    reasons = {email: reason for _, email, reason in plan.rejections}
    assert "field score" in reasons["p1@example.com"]
    assert "malformed email" in reasons["'not-an-email'"]
    # A rejected row is not a deletion: p1 keeps its lists on the ESP.
    assert plan.ops == ()


async def test_a_saved_plan_is_refused_when_a_side_moved(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.write("crm.jsonl", people(3))
    async with world.sync() as sync:
        plan = await make_plan(sync)
        await check_fresh(sync, plan)
        world.edit("esp.jsonl", "p0@example.com", CITY="Hull")
        world.write("esp.jsonl", [{"email": "x@example.com", "opted_out": False}])
        with pytest.raises(StalePlanError, match="ESP data changed"):
            await check_fresh(sync, plan)


async def test_mass_removal_is_held_before_any_write(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.write("crm.jsonl", people(10))
    await world.apply()
    rows = list(world.read("crm.jsonl").values())
    for row in rows[:8]:
        row["lists"] = []
    world.write("crm.jsonl", rows)
    before = (tmp_path / "esp.jsonl").read_bytes()
    plan = await world.plan()
    assert plan.safety_stops and "CRM Spring" in plan.safety_stops[0]
    with pytest.raises(SafetyStop):
        await world.apply()
    assert (tmp_path / "esp.jsonl").read_bytes() == before
    await world.apply(override_safety=True)
    assert (await world.plan()).ops == ()


async def test_an_empty_side_is_an_outage_not_a_mass_deletion(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.write("crm.jsonl", people(5))
    await world.apply()
    world.write("crm.jsonl", [])
    with pytest.raises(SafetyStop, match="outage"):
        await world.plan()


async def test_an_incremental_plan_reads_only_the_delta(tmp_path: Path) -> None:
    world = World(tmp_path)
    world.write("crm.jsonl", people(50))
    await world.apply()
    world.write(
        "crm-delta.jsonl",
        [
            crm_person("p7@example.com", opted_out=True),
            {"email": "p8@example.com", "deleted": True},
        ],
    )
    plan = await world.plan(incremental=True)
    assert sorted((op.kind, op.email, op.list) for op in plan.ops) == [
        ("opt_out_esp", "p7@example.com", None),
        ("remove_member", "p8@example.com", "CRM Spring"),
        ("remove_member", "p8@example.com", "Everyone"),
    ]
