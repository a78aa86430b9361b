"""What a side's record looks like once a plan's ops for it are applied, computed without I/O.

Planning uses it to know whether a side will hold exactly the agreed record after the apply (only
then may the side's new row fingerprint stand for the base); the property tests use it to apply a
plan to in-memory sides and check that planning again finds nothing to do.
"""

from __future__ import annotations

from collections.abc import Iterable

import msgspec

from engine.plans import Op
from engine.records import Record
from engine.ruleset import Side
from engine.values import Value

CRM_OPS = frozenset({"opt_out_crm", "update_crm", "mark_undeliverable_crm", "record_activity"})
ESP_OPS = frozenset(
    {"create_list", "create_field", "upsert_contact", "add_member", "remove_member", "opt_out_esp"}
)


# Ops that create the contact when it does not exist yet: opt-outs run before upserts, and a
# suppression must stick even for an address the ESP has not seen.
CREATING = frozenset({"upsert_contact", "opt_out_esp", "opt_out_crm"})


def ops_for(side: Side) -> frozenset[str]:
    return CRM_OPS if side == "crm" else ESP_OPS


def after_ops(record: Record | None, email: str, ops: Iterable[Op], side: Side) -> Record | None:
    """`record` with every op of `side` in `ops` applied, in order."""
    kinds = ops_for(side)
    # No two ops of one contact touch the same thing, except that a contact may be created by
    # any of them (an opt-out runs before the upsert): so the order they are given in is fine.
    for op in ops:
        if op.kind not in kinds or op.email != email:
            continue
        if record is None:
            if op.kind not in CREATING:
                continue
            record = Record(email, kind=op.record_kind or "person")
        record = _apply(record, op, side)
    return record


def _apply(record: Record, op: Op, side: Side) -> Record:
    if op.kind in ("upsert_contact", "update_crm"):
        fields: dict[str, Value] = dict(record.fields)
        opted_out = record.opted_out
        for name, change in op.changes.items():
            if name == "opted_out":
                opted_out = bool(change.new)
            else:
                fields[name] = change.new
        reason = record.opt_out_reason if opted_out else None
        return msgspec.structs.replace(record, fields=fields, opted_out=opted_out, opt_out_reason=reason)
    if op.kind == "add_member" and op.list is not None:
        return msgspec.structs.replace(record, lists=record.lists | {op.list})
    if op.kind == "remove_member" and op.list is not None:
        return msgspec.structs.replace(record, lists=record.lists - {op.list})
    if op.kind in ("opt_out_esp", "opt_out_crm"):
        reason = record.opt_out_reason or ("crm" if side == "esp" else None)
        return msgspec.structs.replace(record, opted_out=True, opt_out_reason=reason)
    if op.kind == "mark_undeliverable_crm":
        return msgspec.structs.replace(record, undeliverable=True)
    return record
