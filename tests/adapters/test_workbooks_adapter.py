"""The Workbooks adapter over the emulator: full and incremental snapshots, write-backs, lock retries,
idempotent activities, settings and both ways of authenticating."""

from __future__ import annotations

from collections import Counter
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import httpx
import msgspec
import pytest

from adapters.workbooks.adapter import WorkbooksAdapter, WorkbooksSettings
from adapters.workbooks.emulator import create_app
from adapters.workbooks.emulator_data import generate
from adapters.workbooks.emulator_state import DEFAULT_API_KEY, WorkbooksState
from adapters.workbooks.emulator_types import LEAD, PERSON, PUBLIC_NAME_FIELD
from engine.budgets import Budget
from engine.contract import AdapterContext, Snapshot
from engine.plans import Change, Op
from engine.records import Row
from engine.ruleset import SecretRef
from engine.values import normalise_email

BASE = "https://secure.workbooks.com"
UNDELIVERABLE = "main_location[email_address_undeliverable]"
LEAD_EMAIL, LEAD_OPT_OUT = "org_lead_party[main_location[email]]", "org_lead_party[no_email_soliciting]"
KEYED = WorkbooksSettings(base_url=BASE, api_key=SecretRef(env="KEY"))
SESSION = WorkbooksSettings(
    base_url=BASE, username="api.user@example.com", password=SecretRef(env="PASSWORD")
)
Hook = Callable[[httpx.Request], Any]


class Clock:
    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def opened(
    state: WorkbooksState, settings: WorkbooksSettings = KEYED, sent: list[httpx.Request] | None = None,
    hook: Hook | None = None,
) -> AsyncIterator[WorkbooksAdapter]:  # fmt: skip
    async def record(request: httpx.Request) -> None:
        if sent is not None:
            sent.append(request)
        if hook is not None:
            hook(request)

    def http(base_url: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=create_app(state))
        return httpx.AsyncClient(transport=transport, base_url=base_url, event_hooks={"request": [record]})

    secrets = {"KEY": DEFAULT_API_KEY, "PASSWORD": "secret"}
    context = AdapterContext(
        "crm", Path("."), Budget("wb", None), lambda ref: secrets[ref.env or ""], http=http
    )
    async with WorkbooksAdapter(settings, context) as adapter:
        yield adapter


def generated(clock: Clock) -> WorkbooksState:
    state = WorkbooksState(clock=clock, seed=5)
    generate(
        state,
        seed=5,
        people=160,
        leads=70,
        campaigns=2,
        opted_out_share=0.2,
        unsubscribed_share=0.2,
        malformed_share=0.05,
    )
    return state


def rows_of(snapshot: Snapshot) -> list[Row]:
    return [snapshot.decode(payload) for payload in snapshot.payloads]


def by_email(snapshot: Snapshot) -> dict[str, Row]:
    return {str(row.email): row for row in rows_of(snapshot)}


def expected_memberships(state: WorkbooksState, party_type: str, party_id: int) -> dict[str, str]:
    return {
        str(m["marketing_campaign_id"]): state.status_name(m["campaign_membership_status_id"])
        for m in state.live("crm/campaign_membership")
        if m["party_or_lead_id"] == party_id and m["party_or_lead_type"] == party_type
    }


def valid(email: str) -> bool:
    try:
        normalise_email(email)
    except ValueError:
        return False
    return True


def at_cursor(state: WorkbooksState, cursor: str) -> set[str]:
    """Emails of records re-read because they or a membership changed in the cursor's own second."""
    when = datetime.fromisoformat(cursor)
    parties = {(PERSON, p["id"]) for p in state.live("crm/people") if p["updated_at"] == when}
    parties |= {(LEAD, lead["id"]) for lead in state.live("crm/sales_leads") if lead["updated_at"] == when}
    members = state.records["crm/campaign_membership"].values()
    parties |= {(m["party_or_lead_type"], m["party_or_lead_id"]) for m in members if m["updated_at"] == when}
    emails = {state.get("crm/people", i)["main_location[email]"] for t, i in parties if t == PERSON}
    return emails | {state.get("crm/sales_leads", i)[LEAD_EMAIL] for t, i in parties if t == LEAD}


def find(state: WorkbooksState, controller: str, column: str, email: str) -> dict[str, Any]:
    return next(r for r in state.live(controller) if r[column] == email)


@pytest.mark.asyncio
async def test_a_full_snapshot_reads_people_leads_memberships_and_campaigns() -> None:
    state = generated(Clock())
    async with opened(state) as adapter:
        snapshot = await adapter.snapshot()
    assert snapshot.complete and snapshot.cursor is not None and not snapshot.deleted
    rows = rows_of(snapshot)
    people = [p for p in state.live("crm/people") if p["main_location[email]"]]
    leads = [lead for lead in state.live("crm/sales_leads") if lead[LEAD_EMAIL]]
    assert len(rows) == len(people) + len(leads)
    found = {row.values["object_ref"]: row for row in rows}
    for person in people:
        row = found[person["object_ref"]]
        assert row.kind == "person" and row.email == person["main_location[email]"]
        assert row.opted_out == person["no_email_soliciting"]
        assert row.undeliverable == person[UNDELIVERABLE]
        assert row.values["person_first_name"] == person["person_first_name"]
        assert row.values["cf_person_customer_since"] == person["cf_person_customer_since"].isoformat()
        assert "lock_version" not in row.values and "updated_at" not in row.values
        assert row.memberships == expected_memberships(state, PERSON, person["id"])
    for lead in leads:
        row = found[lead["object_ref"]]
        assert row.kind == "lead" and row.email == lead[LEAD_EMAIL]
        assert row.opted_out == lead[LEAD_OPT_OUT]
        assert row.values["cf_sales_lead_score"] == lead["cf_sales_lead_score"]
        assert row.memberships == expected_memberships(state, LEAD, lead["id"])
    statuses = {status for row in rows for status in row.memberships.values()}
    assert "Unsubscribed" in statuses and any(row.opted_out for row in rows)
    assert any(not valid(str(row.email)) for row in rows)  # malformed: passed through for the engine
    campaigns = {c.name: c for c in snapshot.campaigns}
    assert campaigns["Winter Sale 2024"].status == "closed"
    assert campaigns["Spring Newsletter 2025"].status == "open"
    assert campaigns["Spring Newsletter 2025"].fields == {PUBLIC_NAME_FIELD: "Spring news from us"}
    assert {c.key for c in snapshot.campaigns} == {str(c["id"]) for c in state.live("crm/campaigns")}


@pytest.mark.asyncio
async def test_payloads_are_canonical_and_people_without_email_are_skipped() -> None:
    state = WorkbooksState(clock=Clock())
    state.insert("crm/people", {"person_last_name": "Nobody"})
    state.insert("crm/people", {"person_last_name": "Blank", "main_location[email]": "  "})
    state.insert("crm/people", {"person_last_name": "Real", "main_location[email]": "real@example.com"})
    async with opened(state) as adapter:
        first, second = await adapter.snapshot(), await adapter.snapshot()
    assert list(first.payloads) == list(second.payloads) and len(first.payloads) == 1
    keys = list(msgspec.json.decode(first.payloads[0]))
    assert keys == ["email", "kind", "opted_out", "undeliverable", "values", "memberships"]


@pytest.mark.asyncio
async def test_an_incremental_snapshot_returns_only_changes_and_deletions() -> None:
    clock = Clock()
    state = generated(clock)
    people = [
        p for p in state.live("crm/people") if p["main_location[email]"] and "@" in p["main_location[email]"]
    ]
    leads = [lead for lead in state.live("crm/sales_leads") if lead[LEAD_EMAIL] and "@" in lead[LEAD_EMAIL]]
    async with opened(state) as adapter:
        full = await adapter.snapshot()
        clock.now += 100
        edited, member_only, deleted_lead, unsubscribed = people[0], people[1], leads[0], people[2]
        state.update("crm/people", edited["id"], {"person_job_title": "Chief Listener"})
        campaign = next(c for c in state.live("crm/campaigns") if c["record_state"] == "open")
        state.insert(
            "crm/campaign_membership",
            {"marketing_campaign_id": campaign["id"], "party_or_lead_id": member_only["id"]},
        )
        member = next(
            (m for m in state.live("crm/campaign_membership") if m["party_or_lead_id"] == unsubscribed["id"]),
            None,
        )
        if member is None:
            member = state.insert(
                "crm/campaign_membership",
                {"marketing_campaign_id": campaign["id"], "party_or_lead_id": unsubscribed["id"]},
            )
        status = state.statuses_of(member["marketing_campaign_id"])["Unsubscribed"]
        state.update("crm/campaign_membership", member["id"], {"campaign_membership_status_id": status})
        state.delete("crm/sales_leads", deleted_lead["id"])
        assert full.cursor is not None
        delta = await adapter.snapshot(full.cursor)
        # A delta from the edits' second re-reads the records changed in it (>=), nothing more.
        clock.now += 100
        again = await adapter.snapshot(delta.cursor)
    assert not delta.complete
    rows = by_email(delta)
    assert set(rows) - at_cursor(state, full.cursor) == {
        edited["main_location[email]"],
        member_only["main_location[email]"],
        unsubscribed["main_location[email]"],
    }
    assert rows[edited["main_location[email]"]].values["person_job_title"] == "Chief Listener"
    assert rows[member_only["main_location[email]"]].memberships == expected_memberships(
        state, PERSON, member_only["id"]
    )
    assert str(campaign["id"]) in rows[member_only["main_location[email]"]].memberships
    assert (
        rows[unsubscribed["main_location[email]"]].memberships[str(member["marketing_campaign_id"])]
        == "Unsubscribed"
    )
    assert list(delta.deleted) == [deleted_lead[LEAD_EMAIL]]
    assert delta.cursor == datetime.fromtimestamp(int(clock.now - 100), UTC).isoformat()
    # The edits' own second, re-read by the next delta: the same changes and deletion again.
    assert set(by_email(again)) == set(rows) - at_cursor(state, full.cursor)
    assert again.deleted == delta.deleted


@pytest.mark.asyncio
async def test_a_deleted_record_whose_email_lives_on_is_not_reported_deleted() -> None:
    clock = Clock()
    state = WorkbooksState(clock=clock)
    twin = {"person_last_name": "Twin", "main_location[email]": "twin@example.com"}
    first, _ = state.insert("crm/people", twin), state.insert("crm/people", twin)
    gone = state.insert(
        "crm/people", {"person_last_name": "Gone", "main_location[email]": "gone@example.com"}
    )
    async with opened(state) as adapter:
        full = await adapter.snapshot()
        clock.now += 10
        state.delete("crm/people", first["id"])
        state.delete("crm/people", gone["id"])
        delta = await adapter.snapshot(full.cursor)
    assert list(delta.deleted) == ["gone@example.com"]


@pytest.mark.asyncio
async def test_opt_outs_flags_and_field_updates_land_in_workbooks() -> None:
    state = generated(Clock())
    person = next(
        p for p in state.live("crm/people") if not p["no_email_soliciting"] and not p[UNDELIVERABLE]
    )
    lead = next(lead for lead in state.live("crm/sales_leads") if not lead[LEAD_OPT_OUT])
    back_in = next(p for p in state.live("crm/people") if p["no_email_soliciting"])
    pe, le, be = person["main_location[email]"], lead[LEAD_EMAIL], back_in["main_location[email]"]
    async with opened(state) as adapter:
        await adapter.snapshot()
        out = await adapter.write(
            "opt_out_crm", [Op("opt_out_crm", pe.lower()), Op("opt_out_crm", le.lower())]
        )
        bad = [*await adapter.write("mark_undeliverable_crm", [Op("mark_undeliverable_crm", pe.lower())])]
        bad += await adapter.write("mark_undeliverable_crm", [Op("mark_undeliverable_crm", le.lower())])
        changes = {"person_job_title": Change(None, "Buyer"), "cf_person_loyalty_points": Change(1, 42)}
        lead_changes = {"cf_sales_lead_score": Change(1, 99)}
        updates = await adapter.write(
            "update_crm",
            [
                Op("update_crm", pe.lower(), record_kind="person", changes=changes),
                Op("update_crm", le.lower(), record_kind="lead", changes=lead_changes),
                Op(
                    "update_crm", be.lower(), record_kind="person", changes={"opted_out": Change(True, False)}
                ),
                Op(
                    "update_crm",
                    pe.lower(),
                    record_kind="person",
                    changes={"no_such_field": Change(None, "x")},
                ),
            ],
        )
        await adapter.flush()
        rows = by_email(await adapter.snapshot())
    assert all(o.ok for o in [*out, *bad, *updates[:3]]) and all(o.fingerprint is None for o in out)
    assert not updates[3].ok and "no_such_field" in (updates[3].reason or "")
    person, lead = state.get("crm/people", person["id"]), state.get("crm/sales_leads", lead["id"])
    assert person["no_email_soliciting"] and person[UNDELIVERABLE]
    assert lead[LEAD_OPT_OUT] and lead["org_lead_party[main_location[email_address_undeliverable]]"]
    assert person["person_job_title"] == "Buyer" and person["cf_person_loyalty_points"] == 42
    assert lead["cf_sales_lead_score"] == 99
    assert not state.get("crm/people", back_in["id"])["no_email_soliciting"]
    assert rows[pe].opted_out and rows[pe].undeliverable and not rows[be].opted_out


@pytest.mark.asyncio
async def test_writes_find_records_by_email_without_a_snapshot_and_reach_every_duplicate() -> None:
    state = WorkbooksState(clock=Clock())
    twins = [
        state.insert("crm/people", {"person_last_name": "Twin", "main_location[email]": "Twin@Example.com"})
        for _ in range(2)
    ]
    async with opened(state) as adapter:
        outcomes = await adapter.write("opt_out_crm", [Op("opt_out_crm", "twin@example.com")])
    assert outcomes[0].ok
    assert all(state.get("crm/people", t["id"])["no_email_soliciting"] for t in twins)


@pytest.mark.asyncio
async def test_a_stale_lock_version_is_reloaded_and_retried_once() -> None:
    state = WorkbooksState(clock=Clock())
    person = state.insert(
        "crm/people", {"person_last_name": "Stale", "main_location[email]": "s@example.com"}
    )
    sent: list[httpx.Request] = []
    async with opened(state, sent=sent) as adapter:
        await adapter.snapshot()
        state.update("crm/people", person["id"], {"person_job_title": "Edited in the CRM"})  # a user's edit
        sent.clear()
        outcomes = await adapter.write("opt_out_crm", [Op("opt_out_crm", "s@example.com")])
        follow = await adapter.write(
            "mark_undeliverable_crm", [Op("mark_undeliverable_crm", "s@example.com")]
        )
    assert outcomes[0].ok and follow[0].ok
    saved = state.get("crm/people", person["id"])
    assert (
        saved["no_email_soliciting"]
        and saved["person_job_title"] == "Edited in the CRM"
        and saved[UNDELIVERABLE]
    )
    puts = [r for r in sent if b"__method" in r.content]
    assert len(puts) == 3  # stale, retried, then the follow-up with the lock version the retry returned


@pytest.mark.asyncio
async def test_a_record_that_keeps_changing_is_reported_after_one_retry() -> None:
    state = WorkbooksState(clock=Clock())
    person = state.insert("crm/people", {"person_last_name": "Busy", "main_location[email]": "b@example.com"})

    def meddle(request: httpx.Request) -> None:
        if request.url.path == "/crm/people.api" and b"__method" in request.content:
            state.update("crm/people", person["id"], {"person_job_title": "Busy"})

    async with opened(state, hook=meddle) as adapter:
        outcomes = await adapter.write("opt_out_crm", [Op("opt_out_crm", "b@example.com")])
    assert not outcomes[0].ok and "retried once" in (outcomes[0].reason or "")
    assert not state.get("crm/people", person["id"])["no_email_soliciting"]


@pytest.mark.asyncio
async def test_record_activity_is_idempotent() -> None:
    state = generated(Clock())
    campaign = next(c for c in state.live("crm/campaigns") if c["record_state"] == "open")
    lead = next(
        lead for lead in state.live("crm/sales_leads") if lead[LEAD_EMAIL] and "@" in lead[LEAD_EMAIL]
    )
    email = lead[LEAD_EMAIL].lower()
    opened_op = Op(
        "record_activity",
        email,
        list=str(campaign["id"]),
        changes={"type": Change(None, "open"), "at": Change(None, "2025-06-01T10:00:00+00:00")},
    )
    by_name = Op("record_activity", email, list=campaign["name"], changes={"type": Change(None, "click")})
    untyped = Op("record_activity", email, list=campaign["name"])
    nowhere = Op("record_activity", email, list="No Such Campaign", changes={"type": Change(None, "open")})
    async with opened(state) as adapter:
        first = await adapter.write("record_activity", [opened_op, opened_op, by_name, untyped, nowhere])
        second = await adapter.write("record_activity", [opened_op, by_name])
    assert [o.ok for o in first] == [True, True, True, False, False] and all(o.ok for o in second)
    assert "type" in (first[3].reason or "") and "No Such Campaign" in (first[4].reason or "")
    activities = state.live("crm/online_activities")
    assert sorted(a["online_activity_type"] for a in activities) == ["Click Through", "Email Open"]
    for activity in activities:
        assert activity["party_or_lead_id"] == lead["id"] and activity["party_or_lead_type"] == LEAD
        assert activity["marketing_campaign_id"] == campaign["id"]
        assert activity["created_through_reference"].startswith("listsync:")


@pytest.mark.asyncio
async def test_session_mode_logs_in_reads_writes_and_logs_out() -> None:
    state = WorkbooksState(clock=Clock())
    state.insert("crm/people", {"person_last_name": "S", "main_location[email]": "s@example.com"})
    sent: list[httpx.Request] = []
    async with opened(state, SESSION, sent=sent) as adapter:
        rows = by_email(await adapter.snapshot())
        outcomes = await adapter.write("opt_out_crm", [Op("opt_out_crm", "s@example.com")])
        assert state.sessions
    assert set(rows) == {"s@example.com"} and outcomes[0].ok
    assert not state.sessions  # logged out on close
    assert sent[0].url.path == "/login.api" and all(b"api_key" not in r.content for r in sent)


@pytest.mark.asyncio
async def test_api_key_mode_sends_the_key_and_never_logs_in() -> None:
    state = WorkbooksState(clock=Clock())
    sent: list[httpx.Request] = []
    async with opened(state, KEYED, sent=sent) as adapter:
        snapshot = await adapter.snapshot()
    assert snapshot.complete and not list(snapshot.payloads)
    assert sent and all(b"api_key=" in r.content for r in sent) and not state.sessions
    assert all(r.url.path not in ("/login.api", "/logout.api") for r in sent)


@pytest.mark.asyncio
async def test_ops_a_crm_does_not_take_are_rejected_and_poll_has_no_jobs() -> None:
    async with opened(WorkbooksState(clock=Clock())) as adapter:
        outcomes = await adapter.write("upsert_contact", [Op("upsert_contact", "a@example.com")] * 2)
        status = await adapter.poll("job-1", [Op("opt_out_crm", "a@example.com")])
    assert [o.ok for o in outcomes] == [False, False] and "CRM side" in (outcomes[0].reason or "")
    assert status.terminal and status.state == "unknown" and [o.ok for o in status.outcomes] == [False]


@pytest.mark.asyncio
async def test_a_full_snapshot_reads_pages_of_the_configured_size() -> None:
    state, sent = generated(Clock()), []
    settings = msgspec.structs.replace(KEYED, page_size=1000)
    async with opened(state, settings, sent) as adapter:
        await adapter.snapshot()
    reads = Counter(request.url.path for request in sent)
    # Every table fits one page of 1,000; the version's four one-row reads come on top.
    assert reads["/crm/people.api"] == reads["/crm/sales_leads.api"] == 2
    assert reads["/crm/campaign_membership.api"] == 2 and len(state.live("crm/campaign_membership")) > 100


def test_settings_take_exactly_one_way_to_authenticate() -> None:
    key = {"env": "K"}
    assert msgspec.convert({"api_key": key}, WorkbooksSettings).page_size == 100
    assert msgspec.convert({"username": "u", "password": key}, WorkbooksSettings).api_key is None
    for bad in (
        {},
        {"username": "u"},
        {"api_key": key, "username": "u", "password": key},
        {"api_key": key, "x": 1},
    ):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(bad, WorkbooksSettings)
    with pytest.raises(msgspec.ValidationError, match="either `api_key`"):
        msgspec.convert({"api_key": key, "username": "u", "password": key}, WorkbooksSettings)


def test_capabilities() -> None:
    caps = WorkbooksAdapter.capabilities({"api_key": {"env": "K"}, "campaign_fields": ["cf_x"]}, "crm")
    assert caps.max_batch == 100 and caps.calls is None
    assert caps.campaign_field_lengths == {"key": 20, "name": 255, "cf_x": 255}
    assert caps.writes == {"opt_out_crm", "update_crm", "mark_undeliverable_crm", "record_activity"}
    default = WorkbooksAdapter.capabilities(KEYED, "crm")
    assert default.campaign_field_lengths[PUBLIC_NAME_FIELD] == 255


def changing_during_reads(
    state: WorkbooksState, clock: Clock, controller: str, at_start: int, edited: list[dict[str, Any]]
) -> Hook:
    """A hook that, as the page of `controller` from offset `at_start` is asked for, edits three of its
    records (into `edited`), as people or another listsync run would in the middle of a read: the one
    least recently updated, then, a little later each, the first and the last by id."""
    live = state.live(controller)
    picks = [min(live, key=lambda r: (r["updated_at"], r["id"])), live[0], live[-1]]
    change = (
        {"person_job_title": "Edited mid-read"}
        if controller == "crm/people"
        else {"campaign_membership_status_id": None}
    )

    def edit(request: httpx.Request) -> None:
        asked = parse_qs(request.content.decode())  # reads are POSTs with _method=GET
        if request.url.path == f"/{controller}.api" and asked.get("_start") == [str(at_start)]:
            for record in picks:
                clock.now += 5
                edited.append(state.update(controller, record["id"], change))

    return edit


@pytest.mark.asyncio
@pytest.mark.parametrize("controller", ["crm/people", "crm/campaign_membership"])
async def test_a_record_edited_during_a_paged_read_makes_no_other_go_missing_and_is_read_next_time(
    controller: str,
) -> None:
    # Paging is by offset: were the read ordered by updated_at, the record least recently updated
    # would jump to the end when edited, everything after it would move up one place, and one record
    # would fall between two pages, read as deleted from the CRM (and taken off its lists: for good,
    # if opted out in the ESP). And the next delta must start no later than this read began, or an
    # edit to a record already read would be missed behind the later edit of one read after it.
    clock, edited = Clock(), []
    state = generated(clock)
    settings = msgspec.structs.replace(KEYED, page_size=20)
    async with opened(state, settings) as adapter:
        before = by_email(await adapter.snapshot())
    hook = changing_during_reads(state, clock, controller, 20, edited)
    async with opened(state, settings, hook=hook) as adapter:
        during = await adapter.snapshot()
        clock.now += 5
        assert during.cursor is not None
        after = by_email(await adapter.snapshot(during.cursor))
    assert set(by_email(during)) == set(before)
    if controller == "crm/people":
        emails = {p["main_location[email]"] for p in edited}
    else:
        parties = {(PERSON, p["id"]): p["main_location[email]"] for p in state.live("crm/people")}
        parties |= {(LEAD, lead["id"]): lead[LEAD_EMAIL] for lead in state.live("crm/sales_leads")}
        emails = {parties[(m["party_or_lead_type"], m["party_or_lead_id"])] for m in edited}
    assert len(edited) == 3 and {e for e in emails if e in before} <= set(after)
