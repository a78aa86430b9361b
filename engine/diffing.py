"""The three-way diff: for one contact, CRM and ESP against the base, to ops and a new base.

Pure and synchronous. For each mapped field: a change on one side propagates if the mapping lets it
flow that way, otherwise the owning side's value is written back over the drift; the same change on
both sides converges silently; different changes on both sides go to the field's owner, or are
parked as a `conflict` op and the base keeps its old value. List membership of managed lists follows
the CRM. Opt-outs are settled by `engine.consent`. Record-level appearance and disappearance:

- only in the CRM (new, or deleted from the ESP): created on the ESP from the CRM and the base;
- only in the ESP and never synced: not ours, left alone;
- gone from the CRM after a sync: removed from managed lists (or kept, by rule), then forgotten,
  except that an opted-out contact stays in the base as a tombstone so the opt-out is never lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from msgspec import Struct

from engine.consent import OPTED_OUT, decide, kept_reason
from engine.plans import NEW_CONTACT, Change, Op
from engine.records import Record
from engine.ruleset import FieldMapping, RuleSet
from engine.values import Value

_EMPTY: dict[str, Value] = {}


class RecordDiff(Struct, frozen=True):
    """Ops for one contact; `target` is the base once they are all confirmed (None: forget it)."""

    ops: tuple[Op, ...]
    target: Record | None
    changed: bool


def diff_record(
    email: str,
    crm: Record | None,
    esp: Record | None,
    base: Record | None,
    rules: RuleSet,
    managed: frozenset[str],
    frozen_when_suppressed: bool = False,
) -> RecordDiff:
    """The ops that bring one contact into agreement, and the base that follows.

    `frozen_when_suppressed`: the ESP refuses field and list changes for a suppressed contact, so
    a contact that ends opted out gets no upsert and no new membership there (removals still go).
    """
    if crm is None:
        return _crm_absent(email, esp, base, rules, managed)
    if base is not None and esp is not None and in_step(crm, esp, base, rules):
        return RecordDiff((), base, False)
    created = esp is None
    esp_seen = esp if esp is not None else (base or Record(email, kind=crm.kind))
    ops: list[Op] = []
    fields, esp_changes, crm_changes = _fields(email, crm, esp_seen, base, rules.fields, ops)
    if created:
        # A new contact (or one deleted from the ESP) is written with every value it should hold.
        esp_changes = {name: Change(None, value) for name, value in fields.items() if value is not None}
    consent = decide(email, crm, esp_seen, base, rules.consent)
    ops.extend(consent.ops)
    if consent.resubscribe == "esp":
        esp_changes.update(consent.resubscribe_change())
    elif consent.resubscribe == "crm":
        crm_changes.update(consent.resubscribe_change())
    if created and consent.opted_out and not any(op.kind == "opt_out_esp" for op in ops):
        ops.append(Op("opt_out_esp", email, reason="re-asserting an opt-out on a recreated contact"))
    esp_lists = frozenset() if created else esp_seen.lists & managed
    crm_lists = crm.lists & managed
    lists = crm_lists
    frozen = frozen_when_suppressed and consent.opted_out
    if frozen:
        # The ESP will refuse field and list writes, so none is planned, and the base records the
        # fields the ESP keeps (none, for a contact it is only now told about). The CRM follows the
        # ESP where the rules say the ESP's value wins; its own values stay pending, never read back
        # as an ESP-side change, and are written once the contact may be opted in again. The base's
        # lists stay the CRM's (membership follows the CRM; the memberships the ESP refused are added
        # once it takes them again): an incremental read takes the base for a CRM row it does not
        # mention, and a base holding fewer lists than the CRM would read as the CRM's removals.
        kept = {name: None if created else esp_seen.fields.get(name) for name in fields}
        # Diffed again against what the ESP actually holds: the rules then say where the CRM follows.
        _, _, followed = _fields(email, crm, Record(email, fields=kept), base, rules.fields, [])
        if OPTED_OUT in crm_changes:
            followed[OPTED_OUT] = crm_changes[OPTED_OUT]
        crm_changes = followed
        ops = [op for op in ops if op.kind != "conflict"]  # nothing can be written to settle one
        fields, esp_changes = kept, {}
    elif esp_changes or created:
        upsert_reason = NEW_CONTACT if created else None
        ops.append(
            Op("upsert_contact", email, record_kind=crm.kind, changes=esp_changes, reason=upsert_reason)
        )
    if crm_changes:
        ops.append(Op("update_crm", email, record_kind=crm.kind, changes=crm_changes))
    added = frozenset() if frozen else lists - esp_lists
    removed = esp_lists - crm_lists
    if added:
        ops.extend(Op("add_member", email, list=name) for name in sorted(added))
    if removed:
        ops.extend(Op("remove_member", email, list=name) for name in sorted(removed))
    bounced = rules.consent.undeliverable_to_crm and esp is not None and esp.undeliverable
    undeliverable = crm.undeliverable or bounced
    if bounced and not crm.undeliverable:
        ops.append(Op("mark_undeliverable_crm", email, reason="hard bounce in the ESP"))
    target = Record(
        email=email,
        kind=crm.kind,
        opted_out=consent.opted_out,
        opt_out_reason=consent.reason,
        undeliverable=undeliverable,
        fields=fields,
        lists=lists,
    )
    return RecordDiff(tuple(ops), target, target != base)


def partly_confirmed(
    target: Record, base: Record | None, unconfirmed: Sequence[Op], *, esp_written: bool
) -> Record | None:
    """The base for a contact of whose ops only some were confirmed: `target`, except that what an
    `unconfirmed` op (rejected, or pending in a vendor job) was to change keeps its `base` value.

    Both sides are known to hold the rest: the values they already agreed on and those the
    confirmed ops wrote. What an unconfirmed op was to change, one side holds and the other may
    not, so the base goes on saying what it said, and the next diff plans that change again. For
    an opt-out this keeps consent safe: the base is only ever opted out where it was before or
    where the opt-out reached both sides, so no side's opt-in reads as a resubscribe it was not.

    None (no base) for a contact the base does not hold and the ESP may not hold either: no ESP
    write for it was confirmed (`esp_written`) and one that failed was to create it. A contact
    made on the ESP by one op (an opt-out) while the upsert that was to fill it failed holds none
    of that upsert's values there, so the base holds none either: their base values would read as
    the ESP clearing them, and the CRM would follow.
    """
    if base is None and not esp_written and any(_creates(op) for op in unconfirmed):
        return None
    before = base if base is not None else Record(target.email, kind=target.kind)
    fields = dict(target.fields)
    lists = set(target.lists)
    opted_out, reason = target.opted_out, target.opt_out_reason
    undeliverable = target.undeliverable
    for op in unconfirmed:
        if op.kind in ("opt_out_esp", "opt_out_crm"):
            opted_out, reason = before.opted_out, before.opt_out_reason
        elif op.kind == "mark_undeliverable_crm":
            undeliverable = before.undeliverable
        elif op.kind in ("add_member", "remove_member") and op.list is not None:
            if op.list in before.lists:
                lists.add(op.list)
            else:
                lists.discard(op.list)
        elif op.kind in ("upsert_contact", "update_crm"):
            bare = esp_written and op.reason == NEW_CONTACT
            for name in op.changes:
                if name == OPTED_OUT:
                    opted_out, reason = before.opted_out, before.opt_out_reason
                else:
                    fields[name] = None if bare else before.fields.get(name)
    return Record(
        email=target.email,
        kind=target.kind,
        opted_out=opted_out,
        opt_out_reason=reason if opted_out else None,
        undeliverable=undeliverable,
        fields=fields,
        lists=frozenset(lists),
    )


def _creates(op: Op) -> bool:
    """Whether an ESP op may be the one that creates the contact there."""
    return op.kind == "opt_out_esp" or (op.kind == "upsert_contact" and op.reason == NEW_CONTACT)


def in_step(crm: Record, esp: Record, base: Record, rules: RuleSet) -> bool:
    """Whether both sides still hold exactly the base, so that the full diff would change nothing.

    The common case by far when every row must be compared (a first plan, or after the rules
    changed); answering it with a few C-level comparisons keeps such a plan quick.
    """
    if crm.fields != base.fields or crm.kind != base.kind or crm.lists != base.lists:
        return False
    if not (crm.opted_out == esp.opted_out == base.opted_out):
        return False
    bounced = rules.consent.undeliverable_to_crm and esp.undeliverable
    if (crm.undeliverable or bounced) != base.undeliverable or crm.undeliverable != base.undeliverable:
        return False
    if esp.lists != base.lists:
        return False
    reason = (esp.opt_out_reason or base.opt_out_reason) if base.opted_out else None
    if reason != base.opt_out_reason:
        return False
    esp_fields = esp.fields
    return esp_fields == base.fields or all(
        esp_fields.get(name) == value for name, value in base.fields.items()
    )


def _crm_absent(
    email: str, esp: Record | None, base: Record | None, rules: RuleSet, managed: frozenset[str]
) -> RecordDiff:
    if base is None:
        return RecordDiff((), None, False)
    ops: tuple[Op, ...] = ()
    if esp is not None and rules.entities.on_crm_delete == "remove_from_lists":
        ops = tuple(
            Op("remove_member", email, list=name, reason="deleted in the CRM")
            for name in sorted(esp.lists & managed)
        )
    # An opted-out contact is never forgotten: the opt-out stays in the base as a tombstone, so if
    # the contact comes back on either side it is still opted out.
    opted_out = base.opted_out or (esp is not None and esp.opted_out)
    if not opted_out:
        return RecordDiff(ops, None, True)
    read = esp.opt_out_reason if esp is not None and esp.opted_out else None
    reason = kept_reason(base.opt_out_reason if base.opted_out else None, read, rules.consent)
    tombstone = Record(email, kind=base.kind, opted_out=True, opt_out_reason=reason)
    return RecordDiff(ops, tombstone, tombstone != base)


def _fields(
    email: str,
    crm: Record,
    esp: Record,
    base: Record | None,
    mappings: Iterable[FieldMapping],
    ops: list[Op],
) -> tuple[dict[str, Value], dict[str, Change], dict[str, Change]]:
    """Agreed value per field, plus the field changes to write to each side."""
    base_fields = base.fields if base is not None else _EMPTY
    crm_fields, esp_fields = crm.fields, esp.fields
    agreed: dict[str, Value] = {}
    to_esp: dict[str, Change] = {}
    to_crm: dict[str, Change] = {}
    kind = crm.kind
    for mapping in mappings:
        if not mapping.applies(kind):
            continue
        name = mapping.esp
        c, e = crm_fields.get(name), esp_fields.get(name)
        if c == e:
            agreed[name] = c
            continue
        b = base_fields.get(name)
        winner = _winner(mapping, c, e, b)
        if winner is None:
            agreed[name] = b
            ops.append(
                Op(
                    "conflict",
                    email,
                    field=name,
                    changes={name: Change(c, e)},
                    reason=f"changed on both sides since the last sync (base {b!r}); no owner in the rules",
                )
            )
        elif winner == "crm":
            agreed[name] = c
            to_esp[name] = Change(e, c)
        else:
            agreed[name] = e
            to_crm[name] = Change(c, e)
    return agreed, to_esp, to_crm


def _winner(mapping: FieldMapping, c: Value, e: Value, b: Value) -> str | None:
    """Which side's value stands for a field whose sides differ; None parks it as a conflict."""
    if mapping.direction == "crm_to_esp":
        return "crm"
    if mapping.direction == "esp_to_crm":
        return "esp"
    if c == b:
        return "esp"
    if e == b:
        return "crm"
    return mapping.owner
