"""The activity feed to CRM ops (`engine.activity_ops`): which events are recorded, on which
campaign, under which key, and how campaign totals are summed and retried."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec

from engine.activity_feed import ActivityEvent, ActivityFeed, ActivityState, CampaignTotals
from engine.activity_ops import TOTALS_REASON, activity_ops, settled
from engine.ruleset import Activity, CampaignTotalsFields

AT = datetime(2026, 11, 20, 9, 30, tzinfo=UTC)
LISTS = {"Spring": "C1", "Autumn": "C2"}  # ESP list -> CRM campaign key
TOTALS = Activity(totals=CampaignTotalsFields(opens="cf_opens", sends="cf_sent"))


def event(
    email: str, kind: str = "open", lists: tuple[str, ...] = ("Spring",), **extra: object
) -> ActivityEvent:
    return ActivityEvent(
        key=f"k:{email}:{kind}:{lists}", email=email, type=kind, at=AT, campaign="77",  # type: ignore[arg-type]
        campaign_name="Spring offer", lists=lists, **extra,  # type: ignore[arg-type]
    )  # fmt: skip


def feed(*events: ActivityEvent, totals: tuple[CampaignTotals, ...] = ()) -> ActivityFeed:
    return ActivityFeed(events=events, totals=totals, cursor="next")


def test_each_event_of_a_synced_contact_becomes_one_activity_on_its_campaign() -> None:
    members = {"a@x.com": frozenset({"Spring"}), "b@x.com": frozenset({"Spring"})}
    click = event("b@x.com", "click", url="https://example.com/offer")
    planned = activity_ops(feed(event("a@x.com"), click), Activity(), LISTS, members, ActivityState())
    assert [(op.kind, op.email, op.list) for op in planned.ops] == [
        ("record_activity", "a@x.com", "C1"),
        ("record_activity", "b@x.com", "C1"),
    ]
    details = {name: change.new for name, change in planned.ops[1].changes.items()}
    assert details == {"type": "click", "at": AT.isoformat(), "url": "https://example.com/offer",
                       "key": click.key}  # fmt: skip
    assert planned.ops[1].reason == "Click: Spring offer"
    assert planned.state.cursor == "next"


def test_unsynced_contacts_unowned_lists_and_unwanted_types_are_skipped() -> None:
    members = {"a@x.com": frozenset({"Spring"})}
    events = (
        event("stranger@x.com"),
        event("a@x.com", lists=("Not integrated",)),
        event("a@x.com", "bounce"),
    )
    rules = Activity(record=("open", "click"))
    assert activity_ops(feed(*events), rules, LISTS, members, ActivityState()).ops == []


def test_a_send_to_two_campaigns_lands_on_the_contacts_own_or_on_both_with_distinct_keys() -> None:
    both = ("Spring", "Autumn")
    members = {"a@x.com": frozenset({"Autumn"}), "left@x.com": frozenset()}
    planned = activity_ops(
        feed(event("a@x.com", lists=both), event("left@x.com", "bounce", lists=both, bounce="hard")),
        Activity(), LISTS, members, ActivityState(),
    )  # fmt: skip
    assert [(op.email, op.list) for op in planned.ops] == [
        ("a@x.com", "C2"),  # only the campaign the contact is in
        ("left@x.com", "C1"),  # in neither any more: both campaigns sent it
        ("left@x.com", "C2"),
    ]
    keys = [op.changes["key"].new for op in planned.ops[1:]]
    assert len(set(keys)) == 2
    assert planned.ops[1].reason == "Hard bounce: Spring offer"


def test_totals_are_summed_over_the_esp_campaigns_of_a_crm_campaign() -> None:
    stored = ActivityState(esp={"1": CampaignTotals("1", ("Spring",), sends=100, opens=40)})
    fresh = CampaignTotals("2", ("Spring",), sends=50, opens=10)
    planned = activity_ops(feed(totals=(fresh,)), TOTALS, LISTS, {}, stored)
    [op] = planned.ops
    assert (op.kind, op.email, op.list, op.reason) == ("record_activity", None, "C1", TOTALS_REASON)
    assert {name: (c.old, c.new) for name, c in op.changes.items()} == {
        "cf_opens": (None, 50),
        "cf_sent": (None, 150),
    }
    assert planned.state.crm["C1"]["sends"] == 150


def test_totals_already_written_give_no_op_and_failed_ones_are_tried_again() -> None:
    totals = CampaignTotals("1", ("Spring",), sends=100, opens=40)
    first = activity_ops(feed(totals=(totals,)), TOTALS, LISTS, {}, ActivityState())
    assert len(first.ops) == 1
    written = settled(first.state, ActivityState(), failed=())
    assert activity_ops(feed(), TOTALS, LISTS, {}, written).ops == []
    # The write failed: the state keeps nothing for C1, so the next run, with no new activity, retries.
    failed = settled(first.state, ActivityState(), failed=("C1",))
    assert "C1" not in failed.crm
    assert len(activity_ops(feed(), TOTALS, LISTS, {}, failed).ops) == 1


def test_without_totals_fields_nothing_is_written_to_campaigns() -> None:
    totals = CampaignTotals("1", ("Spring",), sends=100)
    planned = activity_ops(feed(totals=(totals,)), Activity(), LISTS, {}, ActivityState())
    assert planned.ops == []
    assert planned.state.crm == {}
    assert planned.state.esp == {"1": totals}


def test_events_the_last_read_planned_are_not_planned_again_from_the_overlap() -> None:
    members = {"a@x.com": frozenset({"Spring"}), "b@x.com": frozenset({"Spring"})}
    old = msgspec.structs.replace(event("b@x.com"), key="old", at=AT - timedelta(days=2))
    first = activity_ops(feed(event("a@x.com"), old), Activity(), LISTS, members, ActivityState())
    assert first.state.recent == {event("a@x.com").key}  # "old" is too far behind to be re-read
    again = activity_ops(feed(event("a@x.com"), event("b@x.com")), Activity(), LISTS, members, first.state)
    assert [op.email for op in again.ops] == ["b@x.com"]


def test_a_bounce_keeps_the_vendors_code_in_its_details_and_its_name() -> None:
    members = {"a@x.com": frozenset({"Spring"})}
    bounce = event("a@x.com", "bounce", bounce="soft", bounce_code="F")
    [op] = activity_ops(feed(bounce), Activity(), LISTS, members, ActivityState()).ops
    assert op.changes["bounce_code"].new == "F"
    assert op.reason == "Soft bounce (code F): Spring offer"


def test_a_hard_bounce_marks_the_crm_undeliverable_once_unless_already_marked() -> None:
    members = {email: frozenset({"Spring"}) for email in ("a@x.com", "b@x.com", "c@x.com", "d@x.com")}
    bounces = [
        msgspec.structs.replace(event(email, "bounce", bounce=kind, bounce_code=code), key=f"{email}:{n}")
        for n, (email, kind, code) in enumerate([
            ("a@x.com", "hard", "B"), ("a@x.com", "hard", "D"), ("b@x.com", "soft", "F"),
            ("c@x.com", "hard", "S"), ("d@x.com", "hard", None),
        ])
    ]  # fmt: skip
    # Whatever activity.record says: here bounces are not even recorded as activities.
    rules = Activity(record=("open",))
    planned = activity_ops(feed(*bounces), rules, LISTS, members, ActivityState(), undeliverable={"c@x.com"})
    assert [(op.kind, op.email, op.reason) for op in planned.ops] == [
        ("mark_undeliverable_crm", "a@x.com", "hard bounce in the ESP (code B) on 'Spring offer'"),
        ("mark_undeliverable_crm", "d@x.com", "hard bounce in the ESP on 'Spring offer'"),
    ]
    # Not planned again from the overlap of the next read, and never without the rules asking.
    again = activity_ops(feed(*bounces), rules, LISTS, members, planned.state, undeliverable=set())
    assert again.ops == []
    assert activity_ops(feed(*bounces), rules, LISTS, members, ActivityState()).ops == []
