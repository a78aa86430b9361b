"""Dotdigital contacts as snapshot rows, and plan values as import cells: the adapter's translations.

Split from ``adapter.py`` because these are pure functions of data, testable without the emulator. A
snapshot row's payload is canonical JSON (struct fields in a fixed order, dict keys sorted, lists sorted)
so that the same contact always gives the same bytes, which is what makes the engine's fingerprints
skip unchanged rows. Opt-out reasons are normalised here, in one table, from v2's ApiContactStatuses:

    Unsubscribed ............................. "unsubscribed"
    IspComplained, DirectComplaint ........... "complaint"
    HardBounced, NoMxRecord .................. "hard_bounce" (and undeliverable)
    Suppressed, MailBlocked, SharedSuppression,
    DomainSuppression, Deleted, others ....... "admin"

A contact unsubscribed from one address book alone (a list's own unsubscribe link) stays subscribed
account-wide, its status ``Subscribed``; its row is opted out all the same, with the reason
"unsubscribed from address book '<name>'" (the earliest such book: ``adapter.py`` says why and how it
is read). An account-wide status comes first: it is the stronger opt-out, and it alone says a hard
bounce.

A suppression listsync made itself (``opt_out_esp``) reads back as "admin" (bulk suppress gives
``Suppressed``) or "unsubscribed" (an address Dotdigital did not know is unsubscribed instead): the
adapter keeps no state across runs, so it cannot tell its own suppressions from an administrator's.
"""

from __future__ import annotations

import msgspec

from adapters.common import import_refusal, import_text
from adapters.dotdigital import wire
from engine.plans import Op, OpKind
from engine.records import Row
from engine.ruleset import FieldType
from engine.values import Value

# ApiContactStatuses that take a contact out of mailing account-wide (SoftBounced, PendingOptIn do not).
OPTED_OUT_STATUSES = frozenset(
    {"Unsubscribed", "HardBounced", "IspComplained", "Suppressed", "MailBlocked", "DirectComplaint"}
    | {"DomainSuppression", "SharedSuppression", "NoMxRecord", "Deleted"}
)
_REASONS = {
    "Unsubscribed": "unsubscribed",
    "IspComplained": "complaint",
    "DirectComplaint": "complaint",
    "HardBounced": "hard_bounce",
    "NoMxRecord": "hard_bounce",
}
UNDELIVERABLE = frozenset({"HardBounced", "NoMxRecord"})

FIELD_TYPES: dict[str, FieldType] = {
    "String": "text",
    "Numeric": "numeric",
    "Date": "date",
    "Boolean": "boolean",
}
VENDOR_TYPES: dict[str, str] = {engine: vendor for vendor, engine in FIELD_TYPES.items()}


class ContactPayload(msgspec.Struct, frozen=True, rename={"data_fields": "dataFields"}):
    """What one snapshot row holds; field order is the byte order of the payload."""

    email: str
    status: str
    opted_out: bool
    opt_out_reason: str | None
    undeliverable: bool
    data_fields: dict[str, wire.FieldValue]
    lists: list[str]


_ENCODER = msgspec.json.Encoder(order="deterministic")
_DECODER = msgspec.json.Decoder(ContactPayload)


def normalise_reason(status: str) -> str:
    """The engine's opt-out reason for a Dotdigital suppression status."""
    return _REASONS.get(status, "admin")


def opt_out_status(contact: wire.ApiContact, suppression: str | None) -> str | None:
    """The status that opts ``contact`` out, or None when it is mailable.

    The contact's own status wins, so full and incremental reads of one contact agree; a suppression
    entry only counts when the status has not caught up with it.
    """
    if contact.status in OPTED_OUT_STATUSES:
        return contact.status
    return suppression


def book_reason(book: str) -> str:
    """The opt-out reason of a contact unsubscribed from the address book ``book`` alone."""
    return f"unsubscribed from address book {book!r}"


def encode_contact(
    contact: wire.ApiContact,
    suppression: str | None,
    lists: set[str] | frozenset[str],
    left_book: str | None = None,
) -> bytes:
    """The canonical payload of one contact, its suppression reason (if any), its book names and the
    address book it unsubscribed from alone (if any)."""
    status = opt_out_status(contact, suppression)
    reason = normalise_reason(status) if status is not None else None
    payload = ContactPayload(
        email=contact.email,
        status=contact.status,
        opted_out=status is not None or left_book is not None,
        opt_out_reason=reason if reason or left_book is None else book_reason(left_book),
        undeliverable=status in UNDELIVERABLE,
        data_fields=contact.fields(),
        lists=sorted(lists),
    )
    return _ENCODER.encode(payload)


def decode(payload: bytes) -> Row:
    """A snapshot payload as the engine's Row (picklable: a module-level function)."""
    contact = _DECODER.decode(payload)
    return Row(
        email=contact.email,
        opted_out=contact.opted_out,
        opt_out_reason=contact.opt_out_reason,
        undeliverable=contact.undeliverable,
        values=dict(contact.data_fields),
        memberships=dict.fromkeys(contact.lists, "member"),
    )


def refusal(kind: OpKind, op: Op) -> str | None:
    """Why an import op cannot be written as asked, or None."""
    return import_refusal(
        kind,
        op,
        "Dotdigital's import cannot clear data fields ({fields}): an empty cell keeps the old value; "
        "clear it in Dotdigital",
    )


def import_row(op: Op) -> dict[str, str]:
    values: dict[str, Value] = {name: change.new for name, change in op.changes.items()}
    return {wire.EMAIL_COLUMN: str(op.email), **{name: import_text(value) for name, value in values.items()}}


def column(row: dict[str, str], name: str) -> str | None:
    return next((value for key, value in row.items() if key.strip().lower() == name), None)
