"""The Dotdigital adapter reads a contact who unsubscribed from one address book as opted out, the
reason naming the book, on full and incremental reads alike, at one paged read per book; a read of a
book's unsubscribes that changes as it is paged misses none."""

from __future__ import annotations

from datetime import timedelta

import msgspec
import pytest

from adapters.dotdigital import rows, wire
from adapters.dotdigital.client import BEGINNING
from adapters.dotdigital.emulator_book_unsubscribes import resubscribe_to_book
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from engine.contract import Snapshot
from engine.records import Row
from tests.adapters.meddling import once
from tests.adapters.test_dotdigital_client import dotdigital
from tests.adapters.test_dotdigital_contract import account, opened
from tests.adapters.test_dotdigital_paging import second_page

SINCE = "/contacts/unsubscribed-since/"


def test_a_book_unsubscribe_opts_the_row_out_unless_an_account_status_says_more() -> None:
    contact = wire.ApiContact(id=1, email="jo@example.com", status="Subscribed")
    row = rows.decode(rows.encode_contact(contact, None, {"B"}, "A"))
    assert (row.opted_out, row.opt_out_reason, row.undeliverable) == (
        True,
        "unsubscribed from address book 'A'",
        False,
    )
    assert row.memberships == {"B": "member"}
    bounced = msgspec.structs.replace(contact, status="HardBounced")
    assert rows.decode(rows.encode_contact(bounced, None, set(), "A")).opt_out_reason == "hard_bounce"
    unsubscribed = rows.decode(rows.encode_contact(contact, "Unsubscribed", set(), "A"))
    assert unsubscribed.opt_out_reason == "unsubscribed"
    assert not rows.decode(rows.encode_contact(contact, None, {"A"})).opted_out


def world() -> tuple[DotdigitalState, dict[str, int]]:
    """Ann in A and B, Bob in A, Cy in A and B, Dan in B."""
    state = account(
        [
            {"email": "ann@example.com", "FIRSTNAME": "Ann", "lists": ["A", "B"]},
            {"email": "bob@example.com", "FIRSTNAME": "Bob", "lists": ["A"]},
            {"email": "cy@example.com", "FIRSTNAME": "Cy", "lists": ["A", "B"]},
            {"email": "dan@example.com", "FIRSTNAME": "Dan", "lists": ["B"]},
        ]
    )
    return state, {book.name: book.id for book in state.address_books.values()}


def by_email(snapshot: Snapshot) -> dict[str, Row]:
    return {str(row.email): row for row in map(snapshot.decode, snapshot.payloads)}


@pytest.mark.asyncio
async def test_a_snapshot_reads_each_books_own_unsubscribes_as_opt_outs_naming_the_book() -> None:
    state, books = world()
    state.unsubscribe_from_book(books["A"], "ann@example.com")
    state.unsubscribe_from_book(books["B"], "bob@example.com")  # not a member of B: recorded all the same
    state.unsubscribe_from_book(books["B"], "cy@example.com")
    cy = state.contact_by_email("cy@example.com")
    assert cy is not None
    state.address_books[books["B"]].unsubscribed[cy.id] -= timedelta(minutes=1)  # Cy left B first
    state.unsubscribe_from_book(books["A"], "cy@example.com")
    async with opened(state) as adapter:
        calls = len(state.calls)
        snapshot = await adapter.snapshot()
        reads = [path for _, path, _ in state.calls[calls:] if SINCE in path]
    found = by_email(snapshot)
    assert {email: (row.opted_out, row.opt_out_reason) for email, row in found.items()} == {
        "ann@example.com": (True, "unsubscribed from address book 'A'"),
        "bob@example.com": (True, "unsubscribed from address book 'B'"),
        "cy@example.com": (True, "unsubscribed from address book 'B'"),  # the first book it left
        "dan@example.com": (False, None),
    }
    assert set(found["ann@example.com"].memberships) == {"B"} and not found["cy@example.com"].memberships
    assert found["ann@example.com"].values["FIRSTNAME"] == "Ann"
    assert not state.suppressions  # nothing was written to Dotdigital
    # One read per book, whole (since 2000), each one page here.
    assert sorted(reads) == sorted(
        f"/v2/address-books/{i}{SINCE}2000-01-01T00:00:00Z" for i in books.values()
    )


@pytest.mark.asyncio
async def test_an_incremental_read_keeps_an_old_book_unsubscribe_in_the_full_reads_bytes() -> None:
    """A contact that left a book long ago and is edited in Dotdigital since comes in an incremental
    read still opted out: its row has the very bytes the next full read gives it."""
    state, books = world()
    state.unsubscribe_from_book(books["A"], "ann@example.com")
    ann = state.contact_by_email("ann@example.com")
    assert ann is not None
    state.address_books[books["A"]].unsubscribed[ann.id] = state.now() - timedelta(days=30)
    async with opened(state) as adapter:
        full = await adapter.snapshot()
        ann.data["FIRSTNAME"], ann.modified = "Annie", state.now()
        delta = await adapter.snapshot(full.cursor)
        again = await adapter.snapshot()
    row = by_email(delta)["ann@example.com"]
    assert row.values["FIRSTNAME"] == "Annie"
    assert (row.opted_out, row.opt_out_reason) == (True, "unsubscribed from address book 'A'")
    assert set(delta.payloads) <= set(again.payloads)


@pytest.mark.asyncio
async def test_a_resubscribe_to_the_book_during_the_read_hides_no_other_unsubscribe() -> None:
    # A book's unsubscribes are listed by date: one lifted between two pages moves the rest up.
    state = DotdigitalState(Knobs(rate_scheme="none"))
    book = state.create_address_book("Big")
    emails = [f"p{n}@example.com" for n in range(2300)]
    for email in emails:
        state.add_contact(email)
        state.unsubscribe_from_book(book.id, email)
    lifted = emails[:3]

    def resubscribe() -> None:
        for email in lifted:
            resubscribe_to_book(state, book.id, email, {})

    meddle = once(second_page(f"/v2/address-books/{book.id}{SINCE}"), resubscribe)
    async with dotdigital(state, meddle=meddle) as (client, _, _sent):
        read = {
            entry.suppressed_contact.email
            async for entry in client.address_book_unsubscribed_since(book.id, BEGINNING)
        }
    assert read >= set(emails) - set(lifted)
