"""From two side views and the base to a plan: the pure middle of planning.

Gathers the contacts that may need work (changed or deleted on either side), runs the three-way
diff on each, and adds the account-level ops (lists and fields to create, within the account's
limits). No I/O: `engine.planning` feeds it, applies the safety thresholds and saves nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from engine.changes import SideView, gc_paused
from engine.diffing import diff_record
from engine.errors import SafetyStop
from engine.plans import Op
from engine.records import Record, Rejection
from engine.ruleset import FieldType, RuleSet, Side
from engine.simulating import after_ops, ops_for

Fingerprints = tuple[int | None, int | None]
BaseRow = tuple[Record | None, int | None, int | None]
_NO_BASE: BaseRow = (None, None, None)

# In `Plan.fingerprints`: the side will be written and will then hold the target, so the apply
# stores the fingerprint the adapter reports for the written row. Fingerprints are signed 64-bit,
# so this value, just past their range, can never be one.
WRITTEN = 1 << 63


@dataclass
class Account:
    """What the ESP account already has, and what the rules allow it to have."""

    lists: Mapping[str, str]
    fields: Mapping[str, FieldType]
    max_lists: int | None = None
    field_limits: Mapping[str, int] = field(default_factory=dict)
    frozen_when_suppressed: bool = False


@dataclass
class Reconciled:
    ops: list[Op]
    targets: dict[str, Record | None]
    fingerprints: dict[str, Fingerprints]
    rejections: list[Rejection]
    left_alone: list[Rejection] = field(default_factory=list)


@gc_paused()
def reconcile(
    rules: RuleSet,
    crm: SideView,
    esp: SideView,
    base: Mapping[str, BaseRow],
    managed: frozenset[str],
    account: Account,
    left_alone: Mapping[str, Rejection] | None = None,
) -> Reconciled:
    """Diff every candidate contact and collect the plan's parts. A contact in `left_alone` (a side's
    rules keep listsync away from it) gets no op and keeps its base; the plan says why."""
    crm.look_up(row[1] for row in base.values())
    esp.look_up(row[2] for row in base.values())
    _drop_duplicates(crm, esp, base)
    ops = account_ops(rules, managed, account)
    targets: dict[str, Record | None] = {}
    fingerprints: dict[str, Fingerprints] = {}
    skipped: list[Rejection] = []
    for email in sorted(candidates(crm, esp)):
        if left_alone and email in left_alone:
            skipped.append(left_alone[email])
            continue
        stored, stored_crm, stored_esp = base.get(email, _NO_BASE)
        crm_record = _side_record(email, crm, stored, stored_crm)
        esp_record = _side_record(email, esp, stored, stored_esp)
        result = diff_record(
            email, crm_record, esp_record, stored, rules, managed, account.frozen_when_suppressed
        )
        ops.extend(result.ops)
        target = result.target
        observed = (
            _observed(email, crm, crm_record, result.ops, target, stored_crm, "crm"),
            _observed(email, esp, esp_record, result.ops, target, stored_esp, "esp"),
        )
        if result.changed or observed != (stored_crm, stored_esp):
            targets[email] = target
            if target is not None:
                fingerprints[email] = observed
    return Reconciled(ops, targets, fingerprints, crm.rejections + esp.rejections, skipped)


def candidates(crm: SideView, esp: SideView) -> set[str]:
    """Contacts that changed, appeared or disappeared on either side."""
    found = crm.changed.keys() | esp.changed.keys() | crm.deleted | esp.deleted
    # A contact with a rejected row on either side is left exactly as it is until the row is fixed.
    return found - crm.rejected - esp.rejected


def _drop_duplicates(crm: SideView, esp: SideView, base: Mapping[str, BaseRow]) -> None:
    """A changed row for an email whose confirmed row is also still there: two rows, one email."""
    for side, view in (("crm", crm), ("esp", esp)):
        for email in list(view.changed):
            stored = base.get(email)
            if stored is not None and view.unchanged(stored[1] if side == "crm" else stored[2]):
                view.reject(side, email, "duplicate email: another record has it too")


def _side_record(email: str, view: SideView, stored: Record | None, fingerprint: int | None) -> Record | None:
    record = view.changed.get(email)
    if record is not None:
        return record
    if email in view.deleted:
        return None
    if not view.complete or view.unchanged(fingerprint):
        # Byte-identical to the row confirmed with the base (or, in a delta, not mentioned).
        return stored
    return None


def _observed(
    email: str,
    view: SideView,
    record: Record | None,
    ops: Sequence[Op],
    target: Record | None,
    stored: int | None,
    side: Side,
) -> int | None:
    """The fingerprint to store for the side's row with the target; None when the row will not hold it."""
    if target is None:
        return None
    if record is target:  # the side's row is the confirmed one and the base stays as it is
        return view.fingerprints.get(email, stored)
    writes = not ops_for(side).isdisjoint([op.kind for op in ops])
    after = after_ops(record, email, ops, side) if writes else record
    if after is None or not agrees(after, target, side):
        return None
    return WRITTEN if writes else view.fingerprints.get(email, stored)


def agrees(record: Record, target: Record, side: str) -> bool:
    """Whether a side's record holds exactly what the base will say, as far as that side is read."""
    if record.opted_out != target.opted_out or record.lists != target.lists:
        return False
    if record.undeliverable != target.undeliverable:
        return False
    fields = record.fields
    return fields == target.fields or all(fields.get(name) == value for name, value in target.fields.items())


def account_ops(rules: RuleSet, managed: frozenset[str], account: Account) -> list[Op]:
    """Lists and fields the ESP account lacks; refused before any write if over its limits."""
    missing_lists = sorted(managed - account.lists.keys())
    if account.max_lists is not None and len(account.lists) + len(missing_lists) > account.max_lists:
        raise SafetyStop(
            [
                f"creating {len(missing_lists)} list(s) would give the account "
                f"{len(account.lists) + len(missing_lists)}, above its limit of {account.max_lists} "
                "(limits.max_lists)"
            ]
        )
    ops = [Op("create_list", list=name) for name in missing_lists]
    existing = {name.lower() for name in account.fields}
    new_fields = [m for m in rules.fields if m.esp.lower() not in existing]
    for field_type in ("text", "numeric", "date", "boolean"):
        limit = account.field_limits.get(field_type)
        have = sum(1 for kind in account.fields.values() if kind == field_type)
        adding = sum(1 for m in new_fields if m.type == field_type)
        if limit is not None and adding and have + adding > limit:
            raise SafetyStop(
                [
                    f"creating {adding} {field_type} field(s) would give the account {have + adding}, "
                    f"above its limit of {limit}"
                ]
            )
    total = account.field_limits.get("total")
    if total is not None and new_fields and len(account.fields) + len(new_fields) > total:
        raise SafetyStop(
            [
                f"creating {len(new_fields)} custom field(s) would give the account "
                f"{len(account.fields) + len(new_fields)}, above its limit of {total}"
            ]
        )
    ops.extend(Op("create_field", field=m.esp, field_type=m.type) for m in new_fields)
    return ops
