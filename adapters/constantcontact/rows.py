"""Constant Contact contacts as snapshot rows, and plan values as import properties: pure translations.

Split from ``adapter.py`` because these are functions of data, testable without the emulator. A row's
payload is canonical JSON (fields in a fixed order, dict keys sorted, lists sorted), so one contact
always gives the same bytes and the engine's fingerprints skip unchanged rows.

Fields: a mapping's ESP name is either one of the contact's own text properties (``first_name``,
``last_name``, ``job_title``, ``company_name``) or the ``name`` of a custom field, imported as
``cf:<name>``. Values are text on the wire; the engine coerces them to the mapping's type.

Consent, from the contact's ``email_address``:

    permission_to_send unsubscribed, opt_out_source Contact .... opted out, reason "unsubscribed": the
                                                                 contact did it; Constant Contact never
                                                                 lets the account re-add them
    permission_to_send unsubscribed, opt_out_source Account .... opted out, reason "admin": the account
                                                                 did it (listsync's opt_out_esp too)
    anything else .............................................. mailable

v3 keeps no bounce status on a contact: hard bounces reach the CRM through the activity feed.
"""

from __future__ import annotations

import msgspec

from adapters.common import import_refusal, import_text
from adapters.constantcontact import wire
from engine.plans import Op, OpKind
from engine.records import Row
from engine.ruleset import FieldType

STANDARD_FIELDS = ("first_name", "last_name", "job_title", "company_name")
MAX_CUSTOM_FIELDS = 25  # per contact in one import or PUT
FIELD_TYPES: dict[str, FieldType] = {
    "string": "text",
    "date": "date",
    "number": "numeric",
    "currency": "numeric",
}
# Engine type -> custom field type created for it. Yes/no values are stored as text "true"/"false":
# v3 documents no boolean custom field type.
VENDOR_TYPES: dict[str, str] = {"text": "string", "date": "date", "numeric": "string", "boolean": "string"}
SELF_OPT_OUT = "Contact"


class ContactPayload(msgspec.Struct, frozen=True):
    """What one snapshot row holds; field order is the byte order of the payload."""

    email: str
    opted_out: bool
    opt_out_reason: str | None
    opt_out_source: str | None
    fields: dict[str, str]
    lists: list[str]


_ENCODER = msgspec.json.Encoder(order="deterministic")
_DECODER = msgspec.json.Decoder(ContactPayload)


def opted_out(contact: wire.Contact) -> bool:
    return contact.email_address is not None and contact.email_address.permission_to_send == "unsubscribed"


def self_opted_out(contact: wire.Contact) -> bool:
    """The contact opted out themselves: Constant Contact will not let the account re-add them."""
    address = contact.email_address
    return opted_out(contact) and address is not None and address.opt_out_source == SELF_OPT_OUT


def encode_contact(contact: wire.Contact, field_names: dict[str, str], list_names: dict[str, str]) -> bytes:
    """The canonical payload of one contact; ``field_names`` maps custom field ids to names and
    ``list_names`` list ids to names (ids of lists not in it are left out)."""
    address = contact.email_address
    out = opted_out(contact)
    source = address.opt_out_source if out and address is not None else None
    fields = {name: getattr(contact, name) for name in STANDARD_FIELDS if getattr(contact, name)}
    for value in contact.custom_fields:
        name = field_names.get(value.custom_field_id)
        if name is not None and value.value not in (None, ""):
            fields[name] = str(value.value)
    payload = ContactPayload(
        email=address.address if address is not None else "",
        opted_out=out,
        opt_out_reason=None if not out else ("unsubscribed" if source == SELF_OPT_OUT else "admin"),
        opt_out_source=source,
        fields=fields,
        lists=sorted(list_names[i] for i in contact.list_memberships if i in list_names),
    )
    return _ENCODER.encode(payload)


def decode(payload: bytes) -> Row:
    """A snapshot payload as the engine's Row (picklable: a module-level function)."""
    contact = _DECODER.decode(payload)
    return Row(
        email=contact.email,
        opted_out=contact.opted_out,
        opt_out_reason=contact.opt_out_reason,
        values=dict(contact.fields),
        memberships=dict.fromkeys(contact.lists, "member"),
    )


def refusal(kind: OpKind, op: Op) -> str | None:
    """Why an upsert or add_member op cannot be written as asked, or None."""
    refused = import_refusal(
        kind,
        op,
        "Constant Contact's import cannot clear fields ({fields}): it only sets the properties it is "
        "given; clear them in Constant Contact",
    )
    if refused is not None or kind == "add_member":
        return refused
    custom = [name for name in op.changes if name not in STANDARD_FIELDS and name != "opted_out"]
    if len(custom) > MAX_CUSTOM_FIELDS:
        return f"{len(custom)} custom fields for one contact; an import takes at most {MAX_CUSTOM_FIELDS}"
    return None


def import_row(op: Op) -> dict[str, str]:
    """The import properties of an upsert: ``email``, the contact's own fields, ``cf:<name>`` for custom."""
    row = {wire.EMAIL_KEY: str(op.email)}
    for name, change in op.changes.items():
        if name == "opted_out":
            continue
        key = name if name in STANDARD_FIELDS else wire.CUSTOM_PREFIX + name
        row[key] = import_text(change.new)
    return row
