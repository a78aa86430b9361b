"""Unsubscribes from one address book (a list-specific unsubscribe link) in the emulated account.

v2 keeps them apart from account-wide suppressions, in the lists document
(``Dotdigital-dotdigital-lists-address-books-2.0.0-resolved.json``): ``POST
/v2/address-books/{id}/contacts/unsubscribe`` ("Unsubscribes contact from a given list"), ``GET
/v2/address-books/{id}/contacts/unsubscribed-since/{date}`` and ``POST
/v2/address-books/{id}/contacts/resubscribe[-with-no-challenge]``. The documents say little more, so
what the emulator does beyond the shapes is a choice, each the safe reading (the real behaviour is
UNSURE):

- An unsubscribe takes the contact out of the book and the book records (contact, when); unsubscribing
  again keeps the first date. The contact stays subscribed account-wide (its status is unchanged, as
  the lists document's example answer shows ``"status": "Subscribed"``) and stays in its other books.
  Its date modified moves on, as any change of its books does here. An address the account does not
  hold is refused (404 ``ERROR_CONTACT_NOT_FOUND``); a contact of the account that is not in the book
  is recorded all the same.
- An import into the book does not put such a contact back: ``emulator_imports.py`` answers its row
  with a fault ``Unsubscribed`` (the reference's fault rows show ``Unsubscribed,<email>``), counted as
  ``unsubscribed`` in the import report but not as ``globallySuppressed`` (it is not), and applies none
  of the row (its data fields neither).
- ``unsubscribed-since`` lists ``ApiContactSuppression`` entries (reason ``Unsubscribed``, the contact
  as the account holds it), oldest first. Deleting the contact or the book forgets them.
- A resubscribe to the book (with or without challenge: no challenge email is emulated, as for the
  account-wide one) first goes through the account-wide resubscribe's rules: when those refuse
  (``ContactCannotBeUnsuppressed``), the book unsubscribe stays; otherwise it is lifted and the contact
  is back in the book.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from adapters.dotdigital.emulator_data import AddressBook, Contact, Suppression

if TYPE_CHECKING:
    from adapters.dotdigital.emulator_state import DotdigitalState

REASON = "Unsubscribed"


def unsubscribe(state: DotdigitalState, book: AddressBook, contact: Contact) -> Suppression:
    """Take ``contact`` out of ``book`` and keep it out; the entry as v2 answers it."""
    when = book.unsubscribed.setdefault(contact.id, state.now())
    book.members.pop(contact.id, None)
    contact.modified = max(contact.modified, state.now())
    return Suppression(contact.id, REASON, when, self_service=True)


def unsubscribed_since(state: DotdigitalState, book_id: int, since: datetime) -> list[Suppression]:
    """The book's unsubscribes from ``since`` on, oldest first."""
    entries = state.book(book_id).unsubscribed.items()
    hits = [Suppression(cid, REASON, when, self_service=True) for cid, when in entries if when >= since]
    return sorted(hits, key=lambda entry: (entry.date_removed, entry.contact_id))


def resubscribe_to_book(
    state: DotdigitalState, book_id: int, email: str, data: Mapping[str, Any]
) -> tuple[str, Contact | None]:
    """Lift the book unsubscribe once the account-wide rules allow the contact back."""
    book = state.book(book_id)
    status, contact = state.resubscribe(email, data)
    if status == "ContactAdded" and contact is not None:
        book.unsubscribed.pop(contact.id, None)
        state.add_member(book_id, contact)
    return status, contact


def unsubscribed_from(state: DotdigitalState, book_id: int | None, contact: Contact | None) -> bool:
    """Whether ``contact`` unsubscribed from the book ``book_id`` (None: no book, never)."""
    book = None if book_id is None else state.address_books.get(book_id)
    return book is not None and contact is not None and contact.id in book.unsubscribed
