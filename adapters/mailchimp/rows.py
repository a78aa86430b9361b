"""Mailchimp members as snapshot rows, and plan values as merge values: the adapter's translations.

Split from ``adapter.py`` because these are pure functions of data, testable without the emulator. A
snapshot row's payload is canonical JSON (struct fields in a fixed order, merge tags sorted, tags sorted,
``last_changed`` left out) so that the same member always gives the same bytes, which is what makes the
engine's fingerprints skip unchanged rows. Statuses and opt-out reasons, in one table:

    subscribed, pending, transactional ........ not opted out (pending awaits the person's confirmation;
                                                transactional never opted in to marketing, and an upsert
                                                never changes an existing member's status either way)
    unsubscribed ............................. opted out: "complaint" when the reason names abuse or spam,
                                                "admin" when an admin or the API did it (listsync's own
                                                opt-outs read back so), else "unsubscribed"
    cleaned .................................. opted out, "hard_bounce", and undeliverable
    archived ................................. not in the snapshot (see ``adapter.py``)

Merge fields: the engine's types map to Mailchimp's as text -> text, numeric -> number, date -> date
(values ``YYYY-MM-DD``) and boolean -> radio with the choices Yes and No, since Mailchimp has no yes/no
type and a merge value cannot be a JSON boolean. An empty value ("") clears a field.
"""

from __future__ import annotations

import msgspec

from adapters.mailchimp import wire
from engine.records import Row
from engine.ruleset import FieldType
from engine.values import Value

OPTED_OUT = frozenset({"unsubscribed", "cleaned"})
YES, NO = "Yes", "No"
# engine type -> (Mailchimp merge field type, choices)
VENDOR_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "text": ("text", ()),
    "numeric": ("number", ()),
    "date": ("date", ()),
    "boolean": ("radio", (YES, NO)),
}
_ENGINE_TYPES: dict[str, FieldType] = {"number": "numeric", "date": "date"}
_ADDRESS = ("addr1", "addr2", "city", "state", "zip", "country")


class MemberPayload(msgspec.Struct, frozen=True):
    """What one snapshot row holds; field order is the byte order of the payload."""

    email: str
    status: str
    opted_out: bool
    opt_out_reason: str | None
    undeliverable: bool
    merge_fields: dict[str, str | int | float | None]
    tags: list[str]


_ENCODER = msgspec.json.Encoder(order="deterministic")
_DECODER = msgspec.json.Decoder(MemberPayload)


def engine_type(field: wire.MergeField) -> FieldType:
    """The engine's type of a merge field: a Yes/No radio is boolean; address, phone, url... are text."""
    if field.type == "radio" and {c.casefold() for c in field.options.choices} == {"yes", "no"}:
        return "boolean"
    return _ENGINE_TYPES.get(field.type, "text")


def opt_out_reason(member: wire.Member) -> str | None:
    """The engine's opt-out reason for a member, or None when it is not opted out."""
    if member.status == "cleaned":
        return "hard_bounce"
    if member.status != "unsubscribed":
        return None
    said = member.unsubscribe_reason.casefold()
    if "abuse" in said or "spam" in said:
        return "complaint"
    if "admin" in said or "api" in said:
        return "admin"
    return "unsubscribed"


def _value(value: wire.MergeValue) -> str | int | float | None:
    """A merge value as a row value: "" is no value; an address becomes one line."""
    if isinstance(value, dict):
        return ", ".join(value[k] for k in _ADDRESS if value.get(k)) or None
    return None if value == "" else value


def encode_member(member: wire.Member) -> bytes:
    """The canonical payload of one member."""
    reason = opt_out_reason(member)
    payload = MemberPayload(
        email=member.email_address,
        status=member.status,
        opted_out=reason is not None,
        opt_out_reason=reason,
        undeliverable=member.status == "cleaned",
        merge_fields={tag: _value(value) for tag, value in member.merge_fields.items()},
        tags=sorted(tag.name for tag in member.tags),
    )
    return _ENCODER.encode(payload)


def decode(payload: bytes) -> Row:
    """A snapshot payload as the engine's Row (picklable: a module-level function)."""
    member = _DECODER.decode(payload)
    return Row(
        email=member.email,
        opted_out=member.opted_out,
        opt_out_reason=member.opt_out_reason,
        undeliverable=member.undeliverable,
        values=dict(member.merge_fields),
        memberships=dict.fromkeys(member.tags, "member"),
    )


def merge_value(value: Value) -> str | int | float:
    """A plan value as a merge value: yes/no as the radio's choices, nothing as "" (which clears)."""
    if isinstance(value, bool):
        return YES if value else NO
    return "" if value is None else value
