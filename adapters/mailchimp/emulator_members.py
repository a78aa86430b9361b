"""Writing members in the Mailchimp emulator: upserts, batch subscribe, merge values and status rules.

Split from ``emulator_state.py`` because how a member may be created and changed is the heart of what
the emulator checks a client against: ``status_if_new`` applies only to new members; "Member In
Compliance State" refuses turning an unsubscribed member subscribed, or a cleaned one subscribed or
pending; "Forgotten Email Not Subscribed" refuses re-adding a permanently deleted address; an archived
member is restored by an upsert; merge values are checked against their fields' types; and batch
subscribe applies the same rules to each of at most 500 members, reporting refusals per member.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from adapters.mailchimp.emulator_data import (
    ADMIN_REASON,
    COMPLIANCE,
    STATUSES,
    Audience,
    Member,
    subscriber_hash,
    valid_email,
)
from adapters.mailchimp.emulator_state import (
    MAX_BATCH_MEMBERS,
    UNVALIDATED,
    ApiError,
    MailchimpState,
    invalid,
)


def upsert(
    state: MailchimpState,
    audience: Audience,
    body: Mapping[str, Any],
    *,
    key: str | None = None,
    create_only: bool = False,
) -> tuple[Member, bool]:
    """PUT (``key`` is the path's hash), POST (``create_only``) and each batch-subscribe member."""
    email = str(body.get("email_address") or "").strip()
    if not valid_email(email):
        raise invalid(f"{email or 'The address'} looks fake or invalid, please enter a real email address.")
    member_id = subscriber_hash(email)
    if key is not None and key.lower() not in (member_id, email.lower()):
        raise invalid("The email address in the body does not match the subscriber hash in the path.")
    status, if_new = (_status(body, name) for name in ("status", "status_if_new"))
    values = merge_values(audience, body.get("merge_fields") or {})
    member = audience.members.get(member_id)
    created = member is None
    if member is None:
        wanted = status or if_new
        if wanted is None:
            raise invalid(
                UNVALIDATED,
                [{"field": "status", "message": "Schema describes enum, NULL found instead"}],
            )
        if member_id in audience.forgotten and wanted != "unsubscribed":
            raise ApiError(400, "Forgotten Email Not Subscribed", (
                f"{email} was permanently deleted and cannot be re-imported. The contact must "
                "re-subscribe to get back on the list."
            ))  # fmt: skip
        member = state.add_member(audience, email, wanted)
        _status_changed(state, audience, member, wanted)
    else:
        if create_only:
            raise ApiError(400, "Member Exists", (
                f"{email} is already a list member. Use PUT to insert or update list members."
            ))  # fmt: skip
        current = member.status_before_archive if member.status == "archived" else member.status
        if status is not None and status != current and status in COMPLIANCE.get(current or "", ()):
            raise ApiError(400, "Member In Compliance State", (
                f"{email} is in a compliance state due to unsubscribe, bounce, or compliance review "
                "and cannot be subscribed."
            ))  # fmt: skip
        member.status, member.status_before_archive = current or "subscribed", None
        if status is not None and status != member.status and member.status != "cleaned":
            member.status = status
            _status_changed(state, audience, member, status)
    member.merge.update(values)
    member.last_changed = state.now()
    tags = body.get("tags")
    if isinstance(tags, list):
        state.set_tags(audience, member, [(str(name), True) for name in tags])
    return member, created


def batch_subscribe(
    state: MailchimpState, audience: Audience, members: list[Any], *, update_existing: bool
) -> tuple[list[Member], list[Member], list[dict[str, str]]]:
    """``POST /lists/{id}``: (new members, updated members, per-member errors)."""
    if len(members) > MAX_BATCH_MEMBERS:
        raise invalid(f"You may add or update at most {MAX_BATCH_MEMBERS} members in one call.")
    new: list[Member] = []
    updated: list[Member] = []
    errors: list[dict[str, str]] = []
    seen: set[str] = set()
    for body in members:
        email = str(body.get("email_address") or "") if isinstance(body, dict) else ""
        try:
            if subscriber_hash(email) in seen:
                raise invalid(f"{email} appears more than once in this batch.")
            seen.add(subscriber_hash(email))
            existed = subscriber_hash(email) in audience.members
            member, _ = upsert(state, audience, body, create_only=not update_existing)
        except ApiError as refused:
            code = "ERROR_CONTACT_EXISTS" if refused.title == "Member Exists" else "ERROR_GENERIC"
            detail = refused.detail
            if refused.errors:
                detail += " " + "; ".join(f"{e['field']}: {e['message']}" for e in refused.errors)
            errors.append({"email_address": email, "error": detail, "error_code": code})
            continue
        (updated if existed else new).append(member)
    return new, updated, errors


def merge_values(audience: Audience, values: Any) -> dict[str, Any]:
    if not isinstance(values, dict):
        raise invalid(
            "Your merge fields were invalid.", [{"field": "merge_fields", "message": "not an object"}]
        )
    out: dict[str, Any] = {}
    problems: list[dict[str, str]] = []
    for tag, raw in values.items():
        known = audience.merge_fields.get(str(tag).upper())
        if known is None:
            problems.append({"field": str(tag), "message": "This merge field does not exist"})
            continue
        try:
            out[known.tag] = known.coerce(raw)
        except ValueError as wrong:
            problems.append({"field": known.tag, "message": str(wrong)})
    if problems:
        raise invalid("Your merge fields were invalid.", problems)
    return out


def _status_changed(state: MailchimpState, audience: Audience, member: Member, status: str) -> None:
    if status == "unsubscribed":
        member.unsubscribe_reason = member.unsubscribe_reason or ADMIN_REASON
        audience.last_unsub = state.now()
    elif status in ("subscribed", "pending"):
        member.unsubscribe_reason = ""
        audience.last_sub = state.now()


def _status(body: Mapping[str, Any], name: str) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if value not in STATUSES:
        raise invalid(
            UNVALIDATED,
            [
                {
                    "field": name,
                    "message": f"Data did not match any of the schemas described in anyOf ({value})",
                }
            ],
        )
    return str(value)
