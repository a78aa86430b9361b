"""Dotdigital reads while records move: an edit between two page calls hides no other record.

v2 pages by ``select``/``skip`` in an order it does not name; the emulator lists contacts by date
modified, address-book members in the order they joined, suppressions by date. Each test changes the
account as the second page of one list is asked for, as another listsync process or a person would,
in the way that moves every later record up a place: plain offset paging then misses the records at
the page boundary (a contact the snapshot reads as deleted, a member as removed from its book).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

import httpx
import pytest

from adapters.dotdigital.client import BEGINNING
from adapters.dotdigital.emulator_data import SUPPRESSED, generate
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from engine.contract import Snapshot
from engine.records import Row
from tests.adapters.meddling import once
from tests.adapters.test_dotdigital_client import dotdigital
from tests.adapters.test_dotdigital_contract import account, opened


def large(contacts: int = 2300) -> DotdigitalState:
    """An account with (by default) more contacts than two pages of 1,000, in two address books."""
    state = account()
    generate(state, seed=5, contacts=contacts, address_books=2, campaigns=0)
    return state


def second_page(path: str) -> Callable[[httpx.Request], bool]:
    """Whether a call asks for a page after the first of the list at ``path`` (or under it)."""
    return lambda request: path in request.url.path and request.url.params.get("skip", "0") != "0"


def rows(snapshot: Snapshot) -> dict[str, Row]:
    decoded = [snapshot.decode(payload) for payload in snapshot.payloads]
    assert len(decoded) == len({str(row.email) for row in decoded})  # one row per contact
    return {str(row.email): row for row in decoded}


@pytest.mark.asyncio
async def test_contacts_edited_during_a_full_read_hide_no_other_and_are_read_again_later() -> None:
    # Ordered by date modified, the three contacts edited move to the end; every contact after them
    # moves up three places, and offset paging would miss the three at the 1,000 boundary.
    state = large()
    first_page = sorted(state.contacts.values(), key=lambda c: c.modified)[:1000]
    edited = [first_page[0], first_page[300], first_page[600]]

    def edit() -> None:
        for contact in edited:
            state.upsert_contact(contact.email, {"CITY": "Edited mid-read"})

    async with opened(state, meddle=once(second_page(BEGINNING.strftime("/%Y-%m-%d")), edit)) as adapter:
        during = await adapter.snapshot()
        after = await adapter.snapshot(during.cursor)
    read = rows(during)
    assert set(read) == {contact.email for contact in state.contacts.values()}
    # Each edited contact was read twice, the later read (at the end of the list) kept; and the next
    # delta, from the moment the read began, has it again.
    assert {read[c.email].values["CITY"] for c in edited} == {"Edited mid-read"}
    assert {c.email for c in edited} <= set(rows(after))


@pytest.mark.asyncio
async def test_members_removed_from_a_book_during_a_read_hide_no_other_member() -> None:
    state = large()
    book = max(state.address_books.values(), key=lambda b: len(b.members))
    assert len(book.members) > 1000
    removed = list(book.members)[10:13]

    def remove() -> None:
        for contact_id in removed:
            state.remove_member(book.id, contact_id)

    meddle = once(second_page(f"/v2/address-books/{book.id}/contacts"), remove)
    async with opened(state, meddle=meddle) as adapter:
        read = rows(await adapter.snapshot())
    for contact in state.contacts.values():
        if contact.id not in removed:
            assert set(read[contact.email].memberships) == {b.name for b in state.books_of(contact.id)}


@pytest.mark.asyncio
async def test_suppressed_contacts_deleted_during_a_read_hide_no_other_suppression() -> None:
    # Suppressions are listed by date: contacts deleted (their suppression with them) move the rest up.
    state = DotdigitalState(Knobs(rate_scheme="none"))
    generate(state, seed=5, contacts=2300, address_books=1, campaigns=0, suppressed_share=0.6)
    listed = state.suppressed_since(BEGINNING)
    assert len(listed) > 1000
    deleted = [entry.contact_id for entry in listed[:3]]

    def delete() -> None:
        for contact_id in deleted:
            state.delete_contact(contact_id)

    meddle = once(second_page("/v2/contacts/suppressed-since/"), delete)
    async with dotdigital(state, meddle=meddle) as (client, _, _sent):
        read = {entry.suppressed_contact.id async for entry in client.suppressed_since(BEGINNING)}
    assert read >= {c.id for c in state.contacts.values() if c.status in SUPPRESSED}


def test_the_emulator_lists_contacts_by_date_modified() -> None:
    # What makes the first test bite: an edit moves a contact to the end of the modified-since list.
    state = large(50)
    oldest = min(state.contacts.values(), key=lambda c: c.modified)
    state.upsert_contact(oldest.email, {"CITY": "Oxford"})
    assert state.modified_since(BEGINNING - timedelta(days=1))[-1] is oldest
