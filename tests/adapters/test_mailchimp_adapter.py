"""The Mailchimp adapter over the emulator: snapshots, consent, bulk writes, batches, the connection cap."""

from __future__ import annotations

from datetime import timedelta

import httpx
import pytest

from adapters.mailchimp import members, rows, wire
from adapters.mailchimp.adapter import MailchimpAdapter
from adapters.mailchimp.client import MailchimpClient, concurrently
from adapters.mailchimp.emulator import create_app
from adapters.mailchimp.emulator_data import subscriber_hash
from adapters.mailchimp.emulator_seeding import generate
from adapters.mailchimp.emulator_state import MailchimpState
from adapters.mailchimp.errors import CONNECTIONS_WAIT
from adapters.mailchimp.memberships import NOT_IN_AUDIENCE
from engine.errors import PermanentError, TransientError
from engine.plans import Change, Op
from tests.adapters.test_mailchimp_contract import AUDIENCE, account, opened, write

GONE = {"email": "gone@example.com", "opted_out": True, "lists": ["Spring"]}
ANN = {"email": "ann@example.com", "lists": ["Spring"], "FIRSTNAME": "Ann"}


def upsert(email: str, **changes: Change) -> Op:
    return Op("upsert_contact", email, changes=changes)


def status_of(state: MailchimpState, email: str) -> str:
    (audience,) = state.audiences.values()
    return audience.members[subscriber_hash(email)].status


def test_rows_normalise_statuses_and_values() -> None:
    def member(status: str, reason: str = "") -> wire.Member:
        return wire.Member(id="x", email_address="Jo@Example.com", status=status, unsubscribe_reason=reason)

    cases = [("subscribed",), ("pending",), ("cleaned",), ("unsubscribed", "N/A (Unsubscribed by an admin)")]
    cases += [("unsubscribed", "N/A (Campaign Abuse Complaint)"), ("unsubscribed", "Other")]
    reasons = [rows.opt_out_reason(member(*args)) for args in cases]
    assert reasons == [None, None, "hard_bounce", "admin", "complaint", "unsubscribed"]
    tags = [wire.Tag(id=2, name="Z"), wire.Tag(id=1, name="A")]
    fields = {"B": "", "A": 3, "ADDRESS": {"addr1": "1 High St", "city": "Leeds", "state": "", "zip": "LS1"}}
    one = wire.Member(
        id="x", email_address="Jo@Example.com", status="cleaned", merge_fields=fields, tags=tags
    )
    again = wire.Member(
        id="x",
        email_address="Jo@Example.com",
        status="cleaned",
        merge_fields=dict(reversed(fields.items())),
        tags=tags[::-1],
    )
    assert rows.encode_member(one) == rows.encode_member(again)
    row = rows.decode(rows.encode_member(one))
    assert (row.opted_out, row.opt_out_reason, row.undeliverable) == (True, "hard_bounce", True)
    assert row.values == {"A": 3, "B": None, "ADDRESS": "1 High St, Leeds, LS1"}
    assert row.memberships == {"A": "member", "Z": "member"}
    assert [rows.merge_value(v) for v in (True, False, None, 4, "x")] == ["Yes", "No", "", 4, "x"]
    yes_no = wire.MergeField(
        merge_id=1, tag="T", type="radio", options=wire.MergeFieldOptions(choices=["Yes", "No"])
    )
    assert rows.engine_type(yes_no) == "boolean"


def test_capabilities_follow_the_settings() -> None:
    capabilities = MailchimpAdapter.capabilities(
        {"api_key": {"env": "K"}, "audience": "A", "merge_field_limit": 80}, "esp"
    )
    assert capabilities.field_limits == {"total": 80} and capabilities.calls is None
    assert capabilities.field_name_max == 10 and capabilities.activity
    assert "add_member" in capabilities.writes and "opt_out_crm" not in capabilities.writes


@pytest.mark.asyncio
async def test_a_full_snapshot_of_a_generated_audience() -> None:
    state = account()
    (audience,) = state.audiences.values()
    generate(state, seed=4, members=400, campaigns=0, name="Other")  # a second audience, not ours
    target = state.audiences[next(i for i, a in state.audiences.items() if a.name == "Other")]
    hosts: list[str] = []
    async with opened(state, hosts, audience=target.id) as adapter:
        first = await adapter.snapshot()
        second = await adapter.snapshot()
    assert hosts == ["https://us21.api.mailchimp.com"]  # the key's data centre
    assert first.payloads == second.payloads and first.version == second.version
    assert first.fields["SCORE"] == "numeric" and first.fields["CUSTOMER"] == "boolean"
    assert set(first.lists) == {s.name for s in target.segments.values()} and audience is not target
    decoded = {str(r.email): r for r in map(first.decode, first.payloads)}
    archived = {m.email for m in target.members.values() if m.status == "archived"}
    assert archived and not archived & set(decoded)
    assert len(decoded) == len(target.members) - len(archived)
    for member in target.members.values():
        if member.status == "archived":
            continue
        row = decoded[member.email]
        assert row.opted_out == (member.status in ("unsubscribed", "cleaned"))
        assert row.undeliverable == (member.status == "cleaned")
        assert set(row.memberships) == {s.name for s in target.tags_of(member.id)}
        assert row.values["CITY"] == member.merge["CITY"]
    assert {r.opt_out_reason for r in decoded.values()} == {
        None,
        "hard_bounce",
        "unsubscribed",
        "admin",
        "complaint",
    }


@pytest.mark.asyncio
async def test_an_incremental_snapshot_has_the_changed_members_and_the_archived_as_deleted() -> None:
    state = account([ANN, GONE, {"email": "cy@example.com"}, {"email": "di@example.com"}])
    (audience,) = state.audiences.values()
    for member in audience.members.values():  # seeded well before the first read
        member.last_changed -= timedelta(hours=1)
    async with opened(state) as adapter:
        full = await adapter.snapshot()
        await write(adapter, "upsert_contact", [upsert("ann@example.com", FIRSTNAME=Change("Ann", "Anne"))])
        state.archive(audience, "cy@example.com")
        delta = await adapter.snapshot(full.cursor)
        again = await adapter.snapshot()
    assert not delta.complete and list(delta.deleted) == ["cy@example.com"]
    assert [r.email for r in map(delta.decode, delta.payloads)] == ["ann@example.com"]
    assert set(delta.payloads) <= set(again.payloads) and len(again.payloads) == 3


@pytest.mark.asyncio
async def test_opt_outs_both_ways() -> None:
    state = account([ANN, GONE, {"email": "bounced@example.com"}])
    (audience,) = state.audiences.values()
    audience.members[subscriber_hash("bounced@example.com")].status = "cleaned"
    async with opened(state) as adapter:
        ops = [Op("opt_out_esp", e) for e in ("ann@example.com", "bounced@example.com", "New@Example.com")]
        outcomes = await write(adapter, "opt_out_esp", ops)
        snapshot = await adapter.snapshot()
    rows_ = {r.email: r for r in map(snapshot.decode, snapshot.payloads)}
    assert all(o.ok for o in outcomes)
    assert [status_of(state, e) for e in ("ann@example.com", "bounced@example.com", "new@example.com")] == [
        "unsubscribed", "cleaned", "unsubscribed",
    ]  # fmt: skip
    # Read back: listsync's (API) opt-outs are "admin"; the member's own unsubscribe stays "unsubscribed".
    assert rows_["ann@example.com"].opt_out_reason == "admin"
    assert rows_["gone@example.com"].opted_out and rows_["bounced@example.com"].undeliverable


@pytest.mark.asyncio
async def test_upserts_set_status_only_for_new_members_and_never_resubscribe() -> None:
    state = account([ANN, GONE, {"email": "bounced@example.com"}])
    (audience,) = state.audiences.values()
    audience.members[subscriber_hash("bounced@example.com")].status = "cleaned"
    back = {"opted_out": Change(True, False)}
    async with opened(state, new_member_status="pending") as adapter:
        refused = await write(adapter, "upsert_contact", [upsert("gone@example.com", **back)])
        assert not [c for c in state.calls if c[0] != "GET"]  # refused without asking Mailchimp
        named = [upsert(e, FIRSTNAME=Change(None, "X")) for e in ("gone@example.com", "eve@example.com")]
        fields = await write(adapter, "upsert_contact", named)
    async with opened(state, resubscribe="pending") as adapter:
        pending = await write(
            adapter,
            "upsert_contact",
            [upsert("gone@example.com", **back), upsert("bounced@example.com", **back)],
        )
    assert not refused[0].ok and refused[0].reason == members.NEVER_RESUBSCRIBED
    assert all(o.ok for o in fields)
    assert pending[0].ok and status_of(state, "gone@example.com") == "pending"
    assert not pending[1].ok and "compliance state" in str(pending[1].reason)
    assert status_of(state, "bounced@example.com") == "cleaned"
    assert status_of(state, "eve@example.com") == "pending"  # new_member_status


@pytest.mark.asyncio
async def test_archived_members_are_left_alone_or_restored_by_setting() -> None:
    state = account([ANN])
    (audience,) = state.audiences.values()
    state.archive(audience, "ann@example.com")
    op = upsert("ann@example.com", FIRSTNAME=Change("Ann", "Annie"))
    async with opened(state) as adapter:
        skipped = await write(adapter, "upsert_contact", [op])
    assert (
        not skipped[0].ok
        and skipped[0].reason == members.ARCHIVED
        and status_of(state, "ann@example.com") == "archived"
    )
    async with opened(state, archived="restore") as adapter:
        restored = await write(adapter, "upsert_contact", [op])
    assert restored[0].ok and status_of(state, "ann@example.com") == "subscribed"


@pytest.mark.asyncio
async def test_upserts_are_cut_into_batch_subscribe_calls_of_500() -> None:
    state = account()
    ops = [upsert(f"p{n}@example.com", FIRSTNAME=Change(None, f"P{n}")) for n in range(1203)]
    async with opened(state) as adapter:
        outcomes = await adapter.write("upsert_contact", ops)
    (audience,) = state.audiences.values()
    assert all(o.ok and o.job is None for o in outcomes) and len(audience.members) == 1203
    assert [c for c in state.calls if c[0] == "POST"] == [("POST", f"/3.0/lists/{audience.id}", 200)] * 3


@pytest.mark.asyncio
async def test_a_tag_batch_is_tracked_to_finished_with_each_operations_outcome() -> None:
    state = account([ANN, GONE], batch_polls=3)
    ops = [
        Op("add_member", e, list="Autumn")
        for e in ("ann@example.com", "ghost@example.com", "gone@example.com")
    ]
    async with opened(state) as adapter:
        submitted = await adapter.write("add_member", [*ops, Op("add_member", "x@example.com")])
        job = submitted[0].job
        assert job and all(o.job == job for o in submitted[:3]) and not submitted[3].ok
        states = [await adapter.poll(job, ops) for _ in range(3)]
        state.tune(operation_fault_share=1.0)
        faulty = await adapter.write("remove_member", [Op("remove_member", "ann@example.com", list="Autumn")])
        failed = [await adapter.poll(str(faulty[0].job), ops[:1]) for _ in range(3)][-1]
    assert [s.state for s in states] == ["preprocessing", "started", "finished"]
    assert [s.terminal for s in states] == [False, False, True]
    assert [(o.ok, o.reason) for o in states[-1].outcomes] == [
        (True, None),
        (False, NOT_IN_AUDIENCE),
        (True, None),
    ]
    assert states[-1].detail == "1 of 3 operations failed"
    assert failed.terminal and not failed.outcomes[0].ok and "500" in str(failed.outcomes[0].reason)


@pytest.mark.asyncio
async def test_no_more_than_ten_connections_are_open_at_once() -> None:
    state = account(hold=0.02)
    ops = [upsert(f"p{n}@example.com", FIRSTNAME=Change(None, "P")) for n in range(6000)]
    async with opened(state) as adapter:
        outcomes = await adapter.write("upsert_contact", ops)
    assert all(o.ok for o in outcomes)
    assert state.most_in_flight == 10 and not [c for c in state.calls if c[2] == 429]


@pytest.mark.asyncio
async def test_a_429_is_transient_with_a_wait_and_secrets_stay_out_of_errors() -> None:
    state = account(hold=0.02)
    key = state.knobs.api_key
    app = create_app(state)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://us21.api.mailchimp.com") as http:
        crowded = MailchimpClient(http, api_key=key, max_connections=30)
        with pytest.raises(TransientError) as too_many:  # 30 slots: Mailchimp refuses the 11th at once
            await concurrently(crowded.ping() for _ in range(30))
        state.tune(hold=0.0)
        app.state.control.update({"429": 1.0, "retry_after": 7})
        with pytest.raises(TransientError) as told:
            await crowded.ping()
        app.state.control.update({"429": 0.0})
        wrong = MailchimpClient(http, api_key=key.replace("0", "1"), max_connections=1)
        with pytest.raises(PermanentError) as refused:
            await wrong.ping()
    assert too_many.value.retry_after == CONNECTIONS_WAIT and told.value.retry_after == 7
    assert (
        "API Key Invalid" in str(refused.value)
        and key not in repr(crowded)
        and key.replace("0", "1") not in str(refused.value)
    )


@pytest.mark.asyncio
async def test_merge_fields_are_created_by_type_within_the_audience_limit() -> None:
    state = account(merge_field_limit=8)  # five defaults and FIRSTNAME: two to go
    ops = [
        Op("create_field", field=f, field_type=t)
        for f, t in (("SCORE", "numeric"), ("VIP", "boolean"), ("CITY", "text"))
    ]
    async with opened(state) as adapter:
        outcomes = await write(adapter, "create_field", ops)
        twice = [
            Op("create_field", field="VIP", field_type="boolean"),
            Op("create_field", field="SCORE", field_type="date"),
        ]
        again = await write(adapter, "create_field", twice)
        snapshot = await adapter.snapshot()
    assert [o.ok for o in outcomes] == [True, True, False] and "most merge fields" in str(outcomes[2].reason)
    assert again[0].ok and not again[1].ok and "already exists as number" in str(again[1].reason)
    assert snapshot.fields["VIP"] == "boolean" and snapshot.fields["SCORE"] == "numeric"
    (audience,) = state.audiences.values()
    assert audience.merge_fields["VIP"].choices == ("Yes", "No")


@pytest.mark.asyncio
async def test_an_unknown_audience_is_a_permanent_error_naming_the_ones_there_are() -> None:
    async with opened(account(), audience="Nope") as adapter:
        with pytest.raises(PermanentError, match=f"'{AUDIENCE}'"):
            await adapter.snapshot()
