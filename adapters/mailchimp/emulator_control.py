"""What the shared fault layer needs from the Mailchimp emulator: its error body, its account as data,
and its own faults (batches that fail or stall), reachable by the spec names ``job_fail`` and
``job_stall``.

Mailchimp answers a failure with an RFC 9457 problem document. A batch never fails as a whole: it
finishes, and each operation's result in its archive says how that operation went; so a failed batch
is one whose every operation answers 500 (``errored_operations`` is all of them), and a stalled one
stays ``started`` for ever, its results never published.

The dump is what ``GET /_emulator/state`` answers and what a test compares after a sync: each
audience by name, with its merge fields, its tags (static segments) with their members' emails, and
its members by email with their status, merge fields and tags; and every batch with its status and
counts. Ids are kept under names ``comparable`` leaves out (``adapters.emulation.dumps``), so two
accounts that reached the same state by different paths dump alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from adapters.emulation.accounts import account_vendor
from adapters.emulation.layer import Vendor
from adapters.mailchimp.emulator_data import Audience, iso
from adapters.mailchimp.emulator_state import ApiError, MailchimpState
from adapters.mailchimp.emulator_wire import problem

ERRORS = {
    500: ("Internal Server Error", "An unexpected internal error has occurred."),
    503: ("Service Unavailable", "The API is temporarily unavailable."),
    429: ("Too Many Requests", "You have made too many requests."),
}


def vendor(state: MailchimpState) -> Vendor:
    def error(status: int, headers: Mapping[str, str]) -> Response:
        title, detail = ERRORS.get(status, ERRORS[500])
        return problem(state, ApiError(status, title, detail), dict(headers))

    return account_vendor(state, error, lambda: dump(state))


def dump(state: MailchimpState) -> dict[str, Any]:
    audiences = sorted((_audience(a) for a in state.audiences.values()), key=lambda a: str(a["name"]))
    batches = [
        {
            "id": b.id,
            "status": b.status,
            "total_operations": len(b.operations),
            "errored_operations": b.errored_operations,
        }
        for b in state.batches.values()
    ]
    return {"audiences": audiences, "batches": batches}


def _audience(audience: Audience) -> dict[str, Any]:
    tags_of: dict[str, list[str]] = {}
    for segment in audience.segments.values():
        for member_id in segment.members:
            tags_of.setdefault(member_id, []).append(segment.name)
    members = [
        {
            "id": m.id,
            "email": m.email,
            "status": m.status,
            "unsubscribe_reason": m.unsubscribe_reason,
            "merge_fields": dict(sorted(m.merge.items())),
            "tags": sorted(tags_of.get(m.id, [])),
            "last_changed": iso(m.last_changed),
        }
        for m in audience.members.values()
    ]
    emails = {m.id: m.email for m in audience.members.values()}
    return {
        "id": audience.id,
        "name": audience.name,
        "merge_fields": sorted(
            ({"tag": f.tag, "name": f.name, "type": f.type} for f in audience.merge_fields.values()),
            key=lambda f: str(f["tag"]),
        ),
        "tags": sorted(
            (
                {"name": s.name, "members": sorted(emails.get(i, i).lower() for i in s.members)}
                for s in audience.segments.values()
            ),
            key=lambda s: str(s["name"]),
        ),
        "members": sorted(members, key=lambda m: str(m["email"]).lower()),
    }
