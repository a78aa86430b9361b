"""The Dotdigital adapter over the emulator: snapshots of a generated account, jobs, and every write kind."""

from __future__ import annotations

from typing import Any

import pytest

from adapters.dotdigital import rows, wire
from adapters.dotdigital.adapter import DotdigitalAdapter, DotdigitalSettings
from adapters.dotdigital.client import DotdigitalClient
from adapters.dotdigital.emulator_data import SUPPRESSED, generate
from adapters.dotdigital.emulator_state import DotdigitalState
from engine.contract import Outcome, PartialWrite
from engine.errors import TransientError
from engine.fingerprints import fingerprint_all
from engine.plans import Change, Op
from engine.ruleset import SecretRef
from tests.adapters.test_dotdigital_contract import REGIONAL, account, opened, write


def generated(contacts: int = 150, *, activity: bool = True) -> DotdigitalState:
    state = account()
    generate(state, seed=11, contacts=contacts, campaigns=3 if activity else 0, with_activity=activity)
    return state


def test_reasons_are_normalised() -> None:
    expected = {
        "Unsubscribed": "unsubscribed",
        "IspComplained": "complaint",
        "DirectComplaint": "complaint",
        "HardBounced": "hard_bounce",
        "Suppressed": "admin",
        "SharedSuppression": "admin",
        "DomainSuppression": "admin",
        "MailBlocked": "admin",
    }
    assert {status: rows.normalise_reason(status) for status in expected} == expected


def test_a_payload_is_canonical_and_decodes_to_a_row() -> None:
    pairs = [wire.ApiContactData(key="B", value=2), wire.ApiContactData(key="A", value="x")]
    contact = wire.ApiContact(id=1, email="Jo@Example.com", data_fields=pairs, status="HardBounced")
    reordered = wire.ApiContact(id=1, email="Jo@Example.com", data_fields=pairs[::-1], status="HardBounced")
    payload = rows.encode_contact(contact, None, {"Z", "A"})
    assert payload == rows.encode_contact(reordered, None, {"A", "Z"})
    row = rows.decode(payload)
    assert (row.email, row.opted_out, row.opt_out_reason, row.undeliverable) == (
        "Jo@Example.com",
        True,
        "hard_bounce",
        True,
    )
    assert row.values == {"A": "x", "B": 2} and row.memberships == {"A": "member", "Z": "member"}


def test_capabilities_follow_the_settings() -> None:
    settings = {"api_user": "u", "password": {"env": "X"}, "address_book_limit": 1000}
    capabilities = DotdigitalAdapter.capabilities(settings, "esp")
    assert capabilities.max_lists == 1000 and capabilities.calls == 2000
    assert capabilities.reserved_list_names == {"Test", "All Contacts"}
    assert "upsert_contact" in capabilities.writes and "opt_out_crm" not in capabilities.writes
    assert DotdigitalSettings(api_user="u", password=SecretRef(env="X")).max_import_bytes == 5 * 1024 * 1024


@pytest.mark.asyncio
async def test_a_full_snapshot_of_a_generated_account() -> None:
    state = generated()
    hosts: list[str] = []
    async with opened(state, hosts) as adapter:
        first = await adapter.snapshot()
        second = await adapter.snapshot()
    assert hosts == ["https://r1-api.dotdigital.com", REGIONAL]  # discovered once, then regional
    assert first.complete and first.cursor is not None
    assert list(fingerprint_all(first.payloads)) == list(fingerprint_all(second.payloads))
    assert first.version == second.version
    assert first.fields["LEAD_SCORE"] == "numeric" and first.fields["IS_CUSTOMER"] == "boolean"
    assert set(first.lists) == {book.name for book in state.address_books.values()}
    decoded = {str(row.email): row for row in map(first.decode, first.payloads)}
    assert len(decoded) == len(state.contacts)
    reasons = set()
    for contact in state.contacts.values():
        row = decoded[contact.email]
        assert row.opted_out == (contact.status in SUPPRESSED)
        assert set(row.memberships) == {book.name for book in state.books_of(contact.id)}
        assert row.values["CITY"] == contact.data["CITY"]
        assert row.undeliverable == (contact.status == "HardBounced")
        reasons.add(row.opt_out_reason)
    assert reasons <= {None, "unsubscribed", "hard_bounce", "complaint", "admin"}
    assert {"unsubscribed", "hard_bounce"} <= reasons


@pytest.mark.asyncio
async def test_an_incremental_snapshot_returns_only_changed_contacts() -> None:
    state = generated(60, activity=False)
    async with opened(state) as adapter:
        full = await adapter.snapshot()
        subscribed = [c for c in state.contacts.values() if c.status not in SUPPRESSED]
        edited, suppressed = subscribed[0], subscribed[1]
        await write(
            adapter,
            "upsert_contact",
            [Op("upsert_contact", edited.email, changes={"CITY": Change(edited.data["CITY"], "Oxford")})],
        )
        state.suppress(suppressed, "IspComplained")
        delta = await adapter.snapshot(full.cursor)
        again = await adapter.snapshot()
    assert not delta.complete
    changed = {str(row.email): row for row in map(delta.decode, delta.payloads)}
    assert set(changed) == {edited.email, suppressed.email}
    assert changed[edited.email].values["CITY"] == "Oxford"
    assert changed[suppressed.email].opt_out_reason == "complaint"
    # A delta row has the very bytes the next full read gives the contact.
    assert set(delta.payloads) <= set(again.payloads)


@pytest.mark.asyncio
async def test_an_import_job_maps_its_faults_to_per_op_outcomes() -> None:
    state = account([{"email": "gone@example.com", "opted_out": False, "lists": []}], import_polls=2)
    state.suppress(state.contacts[1], "HardBounced")
    ops = [
        Op("upsert_contact", "new@example.com", changes={"FIRSTNAME": Change(None, "New")}),
        Op("upsert_contact", "gone@example.com", changes={"FIRSTNAME": Change(None, "Gone")}),
        Op("upsert_contact", "bad@@example", changes={"FIRSTNAME": Change(None, "Bad")}),
    ]
    async with opened(state) as adapter:
        submitted = await adapter.write("upsert_contact", ops)
        job = submitted[0].job
        assert job is not None and all(o.ok and o.job == job for o in submitted)
        assert not (await adapter.poll(job, ops)).terminal
        status = await adapter.poll(job, ops)
        while not status.terminal:
            status = await adapter.poll(job, ops)
    assert status.state == "Finished"
    assert [(o.ok, o.reason) for o in status.outcomes] == [
        (True, None),
        (False, "HardBounced"),
        (False, "InvalidEmail"),
    ]
    assert state.contact_by_email("new@example.com") is not None


@pytest.mark.asyncio
async def test_a_watchdog_rejection_rejects_every_op_of_the_import() -> None:
    state = account(import_outcome="RejectedByWatchdog")
    async with opened(state) as adapter:
        outcomes = await write(
            adapter, "upsert_contact", [Op("upsert_contact", f"p{i}@example.com") for i in range(3)]
        )
    reason = (
        "the import ended RejectedByWatchdog: Dotdigital's watchdog held it back (see the import in "
        "Dotdigital); nothing of it was applied, and the next run tries again"
    )
    assert [(o.ok, o.reason) for o in outcomes] == [(False, reason)] * 3
    assert not state.contacts


@pytest.mark.asyncio
async def test_remove_member_runs_a_deletion_job_even_without_a_snapshot() -> None:
    state = account(
        [{"email": "ada@example.com", "lists": ["Spring"]}, {"email": "bo@example.com", "lists": []}]
    )
    ops = [
        Op("remove_member", "ada@example.com", list="Spring"),
        Op("remove_member", "bo@example.com", list="Spring"),
        Op("remove_member", "ada@example.com", list="No Such Book"),
    ]
    async with opened(state) as adapter:
        submitted = await adapter.write("remove_member", ops)
        assert submitted[0].job is not None and submitted[0].job.startswith("deletion:")
        assert submitted[1] == submitted[2] == Outcome(True)  # already not members
        outcomes = await write(adapter, "remove_member", ops[:1])
    assert outcomes[0].ok and not next(iter(state.address_books.values())).members


@pytest.mark.asyncio
async def test_create_list_and_create_field_are_idempotent() -> None:
    state = account([{"email": "ada@example.com", "lists": ["Spring"]}])
    async with opened(state) as adapter:
        lists = await write(
            adapter,
            "create_list",
            [
                Op("create_list", list="Autumn"),
                Op("create_list", list="Autumn"),
                Op("create_list", list="spring"),
            ],
        )
        reserved = await write(adapter, "create_list", [Op("create_list", list="All Contacts")])
        fields = await write(
            adapter,
            "create_field",
            [
                Op("create_field", field="CITY", field_type="text"),
                Op("create_field", field="CITY", field_type="text"),
                Op("create_field", field="FIRSTNAME", field_type="numeric"),
            ],
        )
        snapshot = await adapter.snapshot()
    assert all(o.ok for o in lists) and sorted(snapshot.lists) == ["Autumn", "Spring"]
    assert not reserved[0].ok and reserved[0].reason
    assert [o.ok for o in fields] == [True, True, False]
    assert fields[2].reason == "data field FIRSTNAME already exists as String, not Numeric"
    assert snapshot.fields["CITY"] == "text"


@pytest.mark.asyncio
async def test_opt_outs_suppress_known_and_unknown_addresses() -> None:
    state = account([{"email": "ada@example.com", "lists": ["Spring"]}])
    unknown = [f"new{n}@example.com" for n in range(40)]
    async with opened(state) as adapter:
        ops = [Op("opt_out_esp", email) for email in ["ADA@example.com", *unknown, "not-an-email"]]
        outcomes = await write(adapter, "opt_out_esp", ops)
        rows_by_email = {str(r.email): r for r in map(rows.decode, (await adapter.snapshot()).payloads)}
    assert all(o.ok for o in outcomes[:-1])
    assert outcomes[-1].reason is not None and outcomes[-1].reason.startswith("invalidEmail")
    assert rows_by_email["ada@example.com"].opt_out_reason == "admin"  # bulk suppress: Suppressed
    assert {rows_by_email[email].opt_out_reason for email in unknown} == {"unsubscribed"}
    # The unknown addresses cost one import, never one call each, and were never subscribed.
    calls = [(method, path) for method, path, _ in state.calls]
    assert calls.count(("PUT", "/contacts/v3/import")) == 1
    assert ("POST", "/v2/contacts/unsubscribe") not in calls
    assert all(state.contact_by_email(email).status == "Unsubscribed" for email in unknown)  # type: ignore[union-attr]


@pytest.mark.asyncio
async def test_an_unsubscribe_import_that_fails_is_an_opt_out_not_done() -> None:
    state = account(import_outcome="Failed")
    async with opened(state) as adapter:
        [outcome] = await write(adapter, "opt_out_esp", [Op("opt_out_esp", "new@example.com")])
    assert not outcome.ok  # planned again by the next run
    assert str(outcome.reason).startswith("the import ended Failed: it failed at Dotdigital")


@pytest.mark.asyncio
async def test_an_upsert_resubscribes_with_the_op_and_refuses_to_clear_a_field() -> None:
    state = account([{"email": "ada@example.com", "FIRSTNAME": "Ada"}, {"email": "cy@example.com"}])
    state.suppress(state.contacts[2], "Suppressed")
    async with opened(state) as adapter:
        outcomes = await write(
            adapter,
            "upsert_contact",
            [
                Op("upsert_contact", "ada@example.com", changes={"FIRSTNAME": Change("Ada", None)}),
                Op("upsert_contact", "cy@example.com", changes={"opted_out": Change(True, False)}),
            ],
        )
    assert not outcomes[0].ok and "cannot clear data fields (FIRSTNAME)" in str(outcomes[0].reason)
    assert outcomes[1].ok and state.contacts[2].status == "Subscribed"
    assert state.contacts[1].data["FIRSTNAME"] == "Ada"


@pytest.mark.asyncio
async def test_kinds_dotdigital_does_not_do_are_rejected() -> None:
    async with opened(account()) as adapter:
        outcomes = await adapter.write("update_crm", [Op("update_crm", "a@example.com")])
    assert not outcomes[0].ok and outcomes[0].reason and "Dotdigital does not" in outcomes[0].reason


@pytest.mark.asyncio
async def test_a_job_submitted_before_a_restart_is_polled_to_its_end_by_a_new_adapter() -> None:
    state = account([{"email": "gone@example.com"}], import_polls=0)
    state.suppress(state.contacts[1], "Unsubscribed")
    ops = [Op("upsert_contact", "a@example.com"), Op("upsert_contact", "gone@example.com")]
    async with opened(state) as first:
        missing = await first.write("add_member", [Op("add_member", "a@example.com", list="Nope")])
        submitted = await first.write("upsert_contact", ops)
    assert not missing[0].ok and missing[0].reason == "no address book named 'Nope' (create_list first)"
    job = submitted[0].job
    assert job is not None
    async with opened(state) as second:
        status = await second.poll(job, ops)
    assert status.terminal and [(o.ok, o.reason) for o in status.outcomes] == [
        (True, None),
        (False, "Unsubscribed"),
    ]


@pytest.mark.asyncio
async def test_an_import_failing_after_another_was_submitted_is_a_partial_write(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Members of two books are two imports: when the second fails in transit, the first is
    answered (its job) so that a retry submits only the second."""
    state = account(
        [{"email": "a@example.com", "lists": ["One"]}, {"email": "b@example.com", "lists": ["Two"]}]
    )
    submit = DotdigitalClient.import_contacts
    calls = 0

    async def second_fails(self: DotdigitalClient, *args: Any, **kwargs: Any) -> str:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise TransientError("Dotdigital POST import failed in transit (RemoteProtocolError)")
        return await submit(self, *args, **kwargs)

    monkeypatch.setattr(DotdigitalClient, "import_contacts", second_fails)
    ops = [
        Op("add_member", email="c@example.com", list="One"),
        Op("add_member", email="d@example.com", list="Two"),
    ]
    async with opened(state) as adapter:
        with pytest.raises(PartialWrite) as cut:
            await adapter.write("add_member", ops)
        [taken, left] = cut.value.outcomes
        assert taken is not None and taken.job is not None and left is None
        [again] = await adapter.write("add_member", ops[1:])
    assert again.job is not None and again.job != taken.job and calls == 3
    assert len(state.imports) == 2  # one per book: none submitted twice
