"""Workbooks to Dotdigital over both emulators, with the shipped rules: what the account holds after a
sync, record by record, worked out from the CRM's records on their own; the account's limits and
list names checked in the plan, before anything is written; and a contact unsubscribed from one
address book kept out of it, its opt-out on both sides."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

import engine.applying
import engine.following
from adapters.demos import workbooks_dotdigital as kit
from adapters.demos.workbooks_crm import CAMPAIGNS, LEAD_EMAIL, LEADS, MEMBERSHIPS, PEOPLE, PERSON_EMAIL
from adapters.dotdigital.emulator import create_app
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from engine.applying import apply_plan
from engine.errors import PermanentError, SafetyStop
from engine.following import follow_jobs
from engine.planning import make_plan
from engine.values import normalise_email
from tests.workbooks_world import WorkbooksWorld

pytestmark = pytest.mark.asyncio
LEAD_CLASS = "Private::Crm::SalesLead"
STATUSES = "crm/campaign_membership_status"


class World(WorkbooksWorld):
    def __init__(self, root: Path, monkeypatch: pytest.MonkeyPatch, knobs: Knobs | None = None) -> None:
        self.esp = DotdigitalState(knobs or Knobs(rate_scheme="none"), seed=5, started_at=datetime.now(UTC))
        super().__init__(
            root,
            monkeypatch,
            rules=kit.RULES,
            replacements=kit.REPLACEMENTS,
            secrets=kit.EMULATOR_SECRETS,
            esp_transport=lambda: httpx.ASGITransport(app=create_app(self.esp)),
        )

    def books_of(self, email: str) -> set[str]:
        contact = self.esp.contact_by_email(email)
        return {book.name for book in self.esp.books_of(contact.id)} if contact else set()

    def crm_contacts(self) -> dict[str, tuple[str, dict[str, Any]]]:
        """Every person and lead the rules sync, by email: those whose email is well formed and
        used by no other record (the rest are rejected, never synced)."""
        found: dict[str, list[tuple[str, dict[str, Any]]]] = {}
        for controller, column in ((PEOPLE, PERSON_EMAIL), (LEADS, LEAD_EMAIL)):
            for record in self.crm.state.live(controller):
                try:
                    email = normalise_email(record.get(column))
                except ValueError:
                    continue
                found.setdefault(email, []).append((controller, record))
        return {email: records[0] for email, records in found.items() if len(records) == 1}

    def expected_books(self, controller: str, record_id: int) -> set[str]:
        """The open campaigns the record is a member of, by the name the rules' template gives
        them, leaving out memberships whose status is the rules' `Unsubscribed`."""
        party_class = LEAD_CLASS if controller == LEADS else "Private::Crm::Person"
        books = set()
        for member in self.crm.state.live(MEMBERSHIPS):
            if member["party_or_lead_id"] != record_id or member["party_or_lead_type"] != party_class:
                continue
            campaign = self.crm.state.get(CAMPAIGNS, member["marketing_campaign_id"])
            status = self.crm.state.get(STATUSES, member["campaign_membership_status_id"])
            if campaign["record_state"] == "open" and status["name"] != "Unsubscribed":
                books.add(str(campaign.get("cf_marketing_campaign_public_name") or campaign["name"]).strip())
        return books


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> World:
    return World(tmp_path, monkeypatch)


def _text(value: object) -> str | None:
    return None if value in (None, "") else str(value)


async def test_after_a_sync_every_crm_contact_is_in_dotdigital_as_the_rules_say(world: World) -> None:
    await world.plan_and_apply()
    contacts = world.crm_contacts()
    assert len(contacts) > 100
    checked = Counter[str]()
    for email, (controller, record) in contacts.items():
        contact = world.esp.contact_by_email(email)
        assert contact is not None, email
        opted_out = world.crm.opted_out(email)
        in_esp_opted_out = contact.status != "Subscribed" or contact.id in world.esp.suppressions
        assert in_esp_opted_out == opted_out, email
        if opted_out:  # Dotdigital refuses changes to a suppressed contact: only the opt-out is kept
            checked["opted out"] += 1
            continue
        assert world.books_of(email) == world.expected_books(controller, record["id"]), email
        lead = controller == LEADS
        expected_fields = {
            "FIRSTNAME": record["person_lead_party[person_first_name]" if lead else "person_first_name"],
            "LASTNAME": record["person_lead_party[person_last_name]" if lead else "person_last_name"],
            "INTERESTS": record["cf_sales_lead_interests" if lead else "cf_person_interests"],
        }
        assert {name: _text(contact.data.get(name)) for name in expected_fields} == {
            name: _text(value) for name, value in expected_fields.items()
        }, email
        if lead and record.get("cf_sales_lead_score") is not None:
            assert contact.data["LEADSCORE"] == record["cf_sales_lead_score"], email
        checked["leads" if lead else "people"] += 1
    assert checked["people"] and checked["leads"] and checked["opted out"], checked
    # Nobody else: Dotdigital holds no contact the CRM does not have.
    assert {contact.email.lower() for contact in world.esp.contacts.values()} == set(contacts)


async def test_members_taken_off_a_campaign_or_unsubscribed_from_it_leave_its_address_book(
    world: World,
) -> None:
    await world.plan_and_apply()
    removed = await world.take_two_off_campaigns(world.crm.subscribed(), world.books_of)
    assert len(removed) == 2
    assert (await world.plan()).ops == ()


async def test_the_address_book_limit_stops_the_plan_before_any_book_is_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path, monkeypatch, Knobs(rate_scheme="none", address_book_limit=1000))
    needed = len(world.crm.open_campaigns())
    world.edit_rules("address_book_limit = 100", "address_book_limit = 10")
    for number in range(10 - needed + 1):  # one book too many once the campaigns' are made
        world.esp.create_address_book(f"Made by hand {number}")
    books = len(world.esp.address_books)
    with pytest.raises(SafetyStop, match=r"above its limit of 10 \(limits.max_lists\)"):
        await world.plan()
    assert len(world.esp.address_books) == books and not world.esp.contacts

    world.esp.address_books.popitem()  # room for exactly the campaigns' books
    await world.plan_and_apply()
    assert len(world.esp.address_books) == 10


async def test_data_fields_already_on_the_account_count_toward_the_per_type_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path, monkeypatch)
    mapped_text = 3  # FIRSTNAME, LASTNAME, INTERESTS
    for number in range(246 - mapped_text + 1):
        world.esp.create_data_field(f"OTHER{number}", "String")
    with pytest.raises(SafetyStop, match="creating 3 text field"):
        await world.plan()
    assert "FIRSTNAME" not in world.esp.data_fields and not world.esp.address_books

    world.esp.delete_data_field("OTHER0")  # now the mapped fields fit exactly
    await world.plan_and_apply()
    assert sum(field.type == "String" for field in world.esp.data_fields.values()) == 246


async def test_two_campaigns_that_would_share_an_address_book_stop_the_plan(world: World) -> None:
    first, second = world.crm.open_campaigns()[:2]
    name = str(first.get("cf_marketing_campaign_public_name") or first["name"])
    world.crm.state.update(CAMPAIGNS, second["id"], {"cf_marketing_campaign_public_name": name.upper()})
    with pytest.raises(PermanentError) as raised:
        await world.plan()
    message = str(raised.value)
    assert f"campaign {first['id']} " in message and f"campaign {second['id']} " in message
    assert "{key}" in message
    assert not world.esp.address_books and not world.esp.contacts


async def test_an_import_open_past_the_job_timeout_is_given_up_and_its_rows_planned_again(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine.applying, "JOB_WAIT", 0.05)
    world.esp.tune(import_polls=10_000)  # Dotdigital never gets round to them
    async with world.sync() as sync:
        report = await apply_plan(sync, await make_plan(sync))
        stuck = await sync.store.open_jobs(sync.name)
        assert report.pending["add_member"] > 0 and stuck
        monkeypatch.setattr(engine.following, "JOB_TIMEOUT", 0.0)
        followed = await follow_jobs(sync)
        assert followed.jobs["timed_out"] == len(stuck) and not followed.jobs["running"]
        assert followed.rows["rejected"] == sum(report.pending.values())
        assert all("timed out" in reason for reason in followed.reasons)
        assert await sync.store.open_jobs(sync.name) == []
    world.esp.tune(import_polls=1)
    again = await world.plan_and_apply()
    # The members the stuck imports carried are planned again, and this time they land.
    assert sum(op.kind == "add_member" for op in again.ops) == report.pending["add_member"]
    assert (await world.plan()).ops == ()


async def test_a_member_unsubscribed_from_one_address_book_is_opted_out_in_the_crm_and_not_put_back(
    world: World,
) -> None:
    """An unsubscribe from one address book (a list's own link) reaches the CRM's opt-out flag, as an
    account-wide one does; the contact is not put back in that book, and stays in its others."""
    await world.plan_and_apply()
    email = next(email for email in world.crm.subscribed() if len(world.books_of(email)) >= 2)
    books = world.books_of(email)
    left = min(books)
    world.esp.unsubscribe_from_book(
        next(b.id for b in world.esp.address_books.values() if b.name == left), email
    )
    plan = await world.plan_and_apply()
    reason = f"opted out in the ESP (unsubscribed from address book {left!r})"
    assert [(op.kind, op.email, op.reason) for op in plan.ops] == [("opt_out_crm", email, reason)]
    assert world.crm.opted_out(email)
    assert world.books_of(email) == books - {left}
    contact = world.esp.contact_by_email(email)
    assert contact is not None and contact.status == "Subscribed" and contact.id not in world.esp.suppressions
    assert (await world.plan()).ops == ()

    # The person's opt-out cleared by hand in the CRM does not put them back: it is restored instead.
    world.crm.opt_out(email, False)
    again = await world.plan_and_apply()
    assert {(op.kind, op.email) for op in again.ops} == {
        ("opt_out_crm", email),
        ("blocked_resubscribe", email),
    }
    assert world.crm.opted_out(email) and world.books_of(email) == books - {left}
    assert (await world.plan()).ops == ()
