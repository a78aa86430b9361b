"""Unsubscribes from one Dotdigital address book in the emulator: the contact leaves that book alone,
an import cannot put it back, and the answers match the v2 documents (the full v2 document, and the
lists document the endpoints come from).

The lists document declares ``unsubscribed-since``'s answer an object, though its own example is an
array of suppressions; the full v2 document declares an array of ``ApiContactSuppression``, which is
what the emulator answers and what that answer is held to.
"""

from __future__ import annotations

from datetime import timedelta

import pytest

from adapters.dotdigital.emulator_control import dump
from adapters.dotdigital.emulator_data import iso
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from tests.emulators.test_dotdigital_emulator import SPECS, client, conforms, csv_file, finish

pytestmark = pytest.mark.asyncio
LISTS = SPECS / "Dotdigital-dotdigital-lists-address-books-2.0.0-resolved.json"
BOOK = "/v2/address-books/{addressBookId}/contacts"


def world() -> tuple[DotdigitalState, int, int]:
    """Ann in books A and B, Bob in A; a FIRSTNAME data field."""
    state = DotdigitalState(Knobs(rate_scheme="none", import_polls=0))
    state.create_data_field("FIRSTNAME", "String")
    first, second = state.create_address_book("A"), state.create_address_book("B")
    for email, books in (("ann@example.com", (first, second)), ("bob@example.com", (first,))):
        contact = state.add_contact(email)
        contact.data["FIRSTNAME"] = email[:3].title()
        for book in books:
            state.add_member(book.id, contact)
    return state, first.id, second.id


def members(state: DotdigitalState, book_id: int) -> set[str]:
    return {contact.email for contact in state.members(book_id)}


async def test_an_unsubscribe_from_a_book_takes_the_contact_out_of_that_book_alone() -> None:
    state, a, b = world()
    ann = state.contact_by_email("ann@example.com")
    assert ann is not None
    before = ann.modified
    async with client(state) as http:
        gone = await http.post(
            f"/v2/address-books/{a}/contacts/unsubscribe", json={"email": "ANN@example.com"}
        )
        answer = conforms(gone, BOOK + "/unsubscribe")
        conforms(gone, "/v2/address-books/{id}/contacts/unsubscribe", LISTS)
        unknown = await http.post(
            f"/v2/address-books/{a}/contacts/unsubscribe", json={"email": "x@example.com"}
        )
        no_book = await http.post(
            "/v2/address-books/999/contacts/unsubscribe", json={"email": "ann@example.com"}
        )
        since_a = await http.get(f"/v2/address-books/{a}/contacts/unsubscribed-since/2000-01-01T00:00:00Z")
        since_b = await http.get(f"/v2/address-books/{b}/contacts/unsubscribed-since/2000-01-01")
        later = iso(state.now() + timedelta(minutes=1))
        none_since = await http.get(f"/v2/address-books/{a}/contacts/unsubscribed-since/{later}")
    assert answer["reason"] == "Unsubscribed" and answer["suppressedContact"]["email"] == "ann@example.com"
    assert answer["suppressedContact"]["status"] == "Subscribed"  # still subscribed account-wide
    assert members(state, a) == {"bob@example.com"} and members(state, b) == {"ann@example.com"}
    assert ann.id not in state.suppressions and ann.modified >= before
    assert unknown.status_code == 404 and unknown.json()["message"].endswith("ERROR_CONTACT_NOT_FOUND")
    assert no_book.json()["message"].endswith("ERROR_ADDRESSBOOK_NOT_FOUND")
    listed = conforms(since_a, BOOK + "/unsubscribed-since/{date}")
    assert [(entry["suppressedContact"]["email"], entry["reason"]) for entry in listed] == [
        ("ann@example.com", "Unsubscribed")
    ]
    assert listed[0]["dateRemoved"] == answer["dateRemoved"]
    assert conforms(since_b, BOOK + "/unsubscribed-since/{date}") == []
    assert none_since.json() == []
    assert dump(state)["address_books"][0]["unsubscribed"] == ["ann@example.com"]


async def test_an_import_into_the_book_does_not_put_an_unsubscribed_contact_back() -> None:
    state, a, b = world()
    state.unsubscribe_from_book(a, "ann@example.com")
    rows = ("Email,FIRSTNAME", "ann@example.com,Annie", "bob@example.com,Robert", "cy@example.com,Cy")
    async with client(state) as http:
        into_a = await http.post(
            f"/v2/address-books/{a}/contacts/import", files={"file": ("a.csv", csv_file(*rows))}
        )
        assert await finish(http, into_a.json()["id"]) == ["Finished"]
        report = (await http.get(f"/v2/contacts/import/{into_a.json()['id']}/report")).json()
        faults = (await http.get(f"/v2/contacts/import/{into_a.json()['id']}/report-faults")).text
        ann = state.contact_by_email("ann@example.com")
        assert ann is not None and ann.data["FIRSTNAME"] == "Ann"  # nothing of the row was applied
        # Into another book, the same row is imported: the unsubscribe was from A alone.
        into_b = await http.post(
            f"/v2/address-books/{b}/contacts/import", files={"file": ("b.csv", csv_file(*rows[:2]))}
        )
        assert await finish(http, into_b.json()["id"]) == ["Finished"]
        other = (await http.get(f"/v2/contacts/import/{into_b.json()['id']}/report")).json()
    assert faults.splitlines() == ["Reason,email,FIRSTNAME", "Unsubscribed,ann@example.com,Annie"]
    assert {key: count for key, count in report.items() if count} == {
        "newContacts": 1, "updatedContacts": 1, "unsubscribed": 1,
    }  # fmt: skip
    assert members(state, a) == {"bob@example.com", "cy@example.com"}
    assert {key: count for key, count in other.items() if count} == {"updatedContacts": 1}
    assert ann.data["FIRSTNAME"] == "Annie"  # from the import into B
    assert members(state, b) == {"ann@example.com"}


async def test_a_resubscribe_to_the_book_lifts_it_unless_the_contact_may_not_be_resubscribed() -> None:
    state, a, _ = world()
    for email in ("ann@example.com", "bob@example.com"):
        state.unsubscribe_from_book(a, email)
    bob = state.contact_by_email("bob@example.com")
    assert bob is not None
    state.suppress(bob, "IspComplained")
    async with client(state) as http:
        back = await http.post(
            f"/v2/address-books/{a}/contacts/resubscribe-with-no-challenge",
            json={"unsubscribedContact": {"email": "ann@example.com", "dataFields": []}},
        )
        refused = await http.post(
            f"/v2/address-books/{a}/contacts/resubscribe",
            json={"unsubscribedContact": {"email": "bob@example.com"}},
        )
        left = await http.get(f"/v2/address-books/{a}/contacts/unsubscribed-since/2000-01-01")
    assert conforms(back, BOOK + "/resubscribe-with-no-challenge")["status"] == "ContactAdded"
    conforms(back, "/v2/address-books/{id}/contacts/resubscribe-with-no-challenge", LISTS)
    assert conforms(refused, BOOK + "/resubscribe")["status"] == "ContactCannotBeUnsuppressed"
    conforms(refused, "/v2/address-books/{id}/contacts/resubscribe", LISTS)
    assert [entry["suppressedContact"]["email"] for entry in left.json()] == ["bob@example.com"]
    assert members(state, a) == {"ann@example.com"}


async def test_deleting_the_contact_forgets_its_book_unsubscribes() -> None:
    state, a, _ = world()
    state.unsubscribe_from_book(a, "ann@example.com")
    ann = state.contact_by_email("ann@example.com")
    assert ann is not None
    state.delete_contact(ann.id)
    async with client(state) as http:
        left = await http.get(f"/v2/address-books/{a}/contacts/unsubscribed-since/2000-01-01")
    assert left.json() == []
