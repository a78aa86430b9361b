"""What a snapshot reads of the address books: the books each contact is in, and the book it left by
unsubscribing from that book alone.

Split from ``adapter.py`` because both are per-book reads over every address book, the part of a
snapshot whose cost grows with the number of books:

- Members: one paged read per book (ids only, 1,000 a call), as v2 has no cheap way to read one
  contact's books.
- Unsubscribes from one book (a list's own unsubscribe link): one paged read per book of ``GET
  /v2/address-books/{id}/contacts/unsubscribed-since/{date}``. Such a contact has left the book but
  stays subscribed account-wide, so neither the contact list nor the suppressions show it; without
  this read the engine would see a member missing from a book whose campaign still holds them and
  plan ``add_member``, putting back someone who unsubscribed from that list. Each is read since the
  beginning, on incremental snapshots too: a contact's row must carry the same opt-out whichever read
  made it (``rows.py``), and a contact edited in Dotdigital long after it left a book would otherwise
  come in an incremental read without it, looking opted back in. That costs one call per book for
  every 950 unsubscribes it ever had (and one more to confirm a list of more than one page), beside
  the member read's one call per 950 members.

What follows from reading such a contact as opted out (the adapter's choice, the conservative one):
its row is opted out with the reason "unsubscribed from address book 'X'", so the engine sets the
CRM's opt-out flag and holds the contact's ESP side still, as for any opted-out contact. Nothing is
written to Dotdigital for it: both sides then agree, so no ``opt_out_esp`` is sent; the contact stays
in its other books and subscribed account-wide, but listsync no longer adds it to books nor updates
its data fields. The reason is none of ``resubscribe_reasons``' words, so a CRM opt-in never reverses
it. Limits: a book unsubscribe whose contact an incremental read does not bring (if Dotdigital did not
mark it modified) is seen at the next full read, as a suppression is; and one from a book deleted
since is forgotten with the book, so the CRM's opt-out then goes to Dotdigital as an account-wide one
(shown in the plan as a ``blocked_resubscribe``). The version token (``DotdigitalAdapter.version``)
does not read them, to save a call per book: an unsubscribe from a book changes its member count,
which the token holds, unless the contact was not in the book; a plan saved before such a one may
still carry an ``add_member`` into that book, which the import then refuses (in the emulator, a
fault ``Unsubscribed``: the op is rejected, not done).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import msgspec

from adapters.dotdigital import wire
from adapters.dotdigital.client import BEGINNING, DotdigitalClient


class BookReads(msgspec.Struct, frozen=True):
    """Contact id -> names of the books it is in; contact id -> the book it unsubscribed from (the
    earliest, by date then name, when it left several)."""

    lists_of: dict[int, set[str]]
    left: dict[int, str]

    def lists(self, contact_id: int) -> set[str]:
        return self.lists_of.get(contact_id, set())


async def read_books(api: DotdigitalClient, books: Sequence[wire.ApiAddressBook]) -> BookReads:
    """Every book's members and every book's own unsubscribes, one paged read of each per book."""
    lists_of: dict[int, set[str]] = {}
    earliest: dict[int, tuple[datetime, str]] = {}
    for book in books:
        async for member in api.address_book_members(book.id, with_full_data=False):
            lists_of.setdefault(member.id, set()).add(book.name)
        async for entry in api.address_book_unsubscribed_since(book.id, BEGINNING):
            contact_id = entry.suppressed_contact.id
            seen = (_utc(entry.date_removed), book.name)
            if contact_id not in earliest or seen < earliest[contact_id]:
                earliest[contact_id] = seen
    return BookReads(lists_of, {contact_id: name for contact_id, (_, name) in earliest.items()})


def _utc(moment: datetime | None) -> datetime:
    """A date to order by: none is the earliest, one without a zone is taken as UTC (as v2's are)."""
    if moment is None:
        return BEGINNING
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
