"""Finishing a Constant Contact bulk activity in the emulator: applying its rows, counting, erring.

Split from ``emulator_state.py`` because applying a bulk activity is a job of its own. A JSON import
creates or updates contacts by email (new ones ``implicit`` with ``opt_in_source`` Account; only the
properties given are changed; ``cf:<name>`` keys set custom fields that must exist) and adds them to
its ``list_ids``; an unsubscribed contact is neither re-subscribed nor added to a list (counted in
``cannot_add_to_list_count``). Membership activities add or remove the ``source.contact_ids`` to or
from ``list_ids`` (an unsubscribed one is not added, and an error says so); a contact delete
soft-deletes. Each refused row becomes an ``activity_errors``
string naming its line (1-based, in ``import_data`` order) and its email, which is as much as the
vendor's strings say. ``ConstantContactState.poll_activity`` calls ``apply_activity``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from adapters.constantcontact.emulator_data import SCALARS, BulkActivity, custom_value, valid_email

if TYPE_CHECKING:
    from adapters.constantcontact.emulator_state import ConstantContactState

UNSUBSCRIBED = "the contact is unsubscribed and cannot be added to a list by an import"
UNSUBSCRIBED_MEMBER = "the contact is unsubscribed and was not added to the lists"


def apply_activity(state: ConstantContactState, job: BulkActivity) -> None:
    """Bring ``job`` to its terminal state; a completed one has its rows applied."""
    job.state = job.outcome
    if job.outcome != "completed":
        if job.outcome == "failed":
            job.errors = ["The activity failed: an internal error stopped it before any row was applied."]
        return
    if job.kind == "contacts_json_import":
        _import(state, job)
    elif job.kind in ("add_list_memberships", "remove_list_memberships"):
        _memberships(state, job, adding=job.kind == "add_list_memberships")
    elif job.kind == "contact_delete":
        ids = [str(i) for i in job.payload.get("contact_ids", [])]
        for contact_id in ids:
            if contact_id in state.contacts:
                state.delete_contact(contact_id)
        job.counts = {"items_total_count": len(ids), "items_completed_count": len(ids)}


def _import(state: ConstantContactState, job: BulkActivity) -> None:
    rows: list[Any] = list(job.payload.get("import_data", []))
    list_ids = [str(i) for i in job.payload.get("list_ids", []) if str(i) in state.lists]
    errors, unlisted, seen = 0, 0, set[str]()
    for line, row in enumerate(rows, start=1):
        email = str(row.get("email") or "").strip() if isinstance(row, dict) else ""
        refusal = _import_row(state, row, email, list_ids, seen) if email else "the email address is missing"
        if refusal is None:
            continue
        if refusal == UNSUBSCRIBED:
            unlisted += 1
        else:
            errors += 1
        job.errors.append(f"Line {line} ({email}): {refusal}")
    job.counts = {
        "items_total_count": len(rows),
        "items_completed_count": len(rows),
        "person_count": len(rows) - errors,
        "error_count": errors,
        "correctable_count": 0,
        "cannot_add_to_list_count": unlisted,
    }


def _import_row(
    state: ConstantContactState, row: dict[str, Any], email: str, list_ids: list[str], seen: set[str]
) -> str | None:
    """Apply one import row; the reason it was refused (in part or whole), or None."""
    if not valid_email(email):
        return "the email address is not valid"
    if email.lower() in seen:
        return "the email address appears twice in the import"
    seen.add(email.lower())
    if state.rng.random() < state.knobs.row_fault_share:
        return "the contact could not be imported (internal error)"
    values: dict[str, str | None] = {}
    for key, value in row.items():
        if not key.startswith("cf:"):
            continue
        known = state.field_by_name(key[3:])
        if known is None:
            return f"custom field {key[3:]!r} does not exist"
        try:
            values[known.id] = custom_value(known.type, value)
        except ValueError as wrong:
            return f"custom field {known.name}: {wrong}"
    if sum(1 for key in row if key.startswith("cf:")) > 25:
        return "more than 25 custom fields"
    contact = state.contact_by_email(email)
    if contact is None or contact.deleted_at is not None:
        contact = contact or state.add_contact(email)
        contact.deleted_at = None
    contact.scalars.update({k: str(row[k]) for k in SCALARS if row.get(k)})
    contact.custom.update({k: v for k, v in values.items() if v is not None})
    state.touch(contact)
    if contact.permission == "unsubscribed":
        return UNSUBSCRIBED
    contact.lists.update(dict.fromkeys(list_ids))
    return None


def _memberships(state: ConstantContactState, job: BulkActivity, *, adding: bool) -> None:
    source = job.payload.get("source") or {}
    ids = [str(i) for i in source.get("contact_ids", [])]
    list_ids = [str(i) for i in job.payload.get("list_ids", []) if str(i) in state.lists]
    for contact_id in ids:
        contact = state.contacts.get(contact_id)
        if contact is None or contact.deleted_at is not None:
            continue
        if adding and contact.permission == "unsubscribed":
            job.errors.append(f"Contact {contact_id} ({contact.email}): {UNSUBSCRIBED_MEMBER}")
            continue
        changed = False
        for list_id in list_ids:
            if adding and list_id not in contact.lists:
                contact.lists[list_id], changed = None, True
            elif not adding and list_id in contact.lists:
                del contact.lists[list_id]
                changed = True
        if changed:
            state.touch(contact)
    job.counts = {
        "items_total_count": len(ids),
        "items_completed_count": len(ids),
        "list_count": len(list_ids),
    }
