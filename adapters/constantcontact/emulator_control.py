"""What the shared fault layer needs from the Constant Contact emulator: its error body, its account as
data, and its own faults (bulk activities that fail or stall), reachable by the spec names ``job_fail``
and ``job_stall``.

v3 answers a failure with an array of ``{"error_key", "error_message"}``; ``v3_error`` renders it for
the emulator's own refusals and for the faults the layer injects. A failed activity ends ``failed``
with none of its rows applied; a stalled one stays ``processing`` for ever, as a stuck activity does
until the vendor times it out.

The dump is what ``GET /_emulator/state`` answers and what a test compares after a sync: contacts by
email with their consent, properties, custom fields (by name) and lists (by name); the lists and
custom fields; every bulk activity with its state. Records are named by email and name, not id, so two
accounts that reached the same state by different paths dump alike once ids and dates are left out
(``adapters.emulation.dumps.comparable``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from starlette.responses import JSONResponse, Response

from adapters.constantcontact.emulator_data import iso
from adapters.constantcontact.emulator_state import ConstantContactState
from adapters.emulation.accounts import account_vendor
from adapters.emulation.layer import Vendor

ERRORS = {
    500: ("server_error", "There was a problem with our internal service."),
    503: ("service_unavailable", "Our internal service is temporarily unavailable."),
    429: ("too_many_requests", "Too many requests."),
}


def vendor(state: ConstantContactState) -> Vendor:
    return account_vendor(state, error, lambda: dump(state))


def v3_error(status: int, key: str, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return JSONResponse([{"error_key": key, "error_message": message}], status, headers=dict(headers or {}))


def error(status: int, headers: Mapping[str, str]) -> Response:
    """The vendor's answer for a 500, 503 or 429, with the headers given (Retry-After)."""
    key, message = ERRORS.get(status, ERRORS[500])
    return v3_error(status, key, message, headers)


def dump(state: ConstantContactState) -> dict[str, Any]:
    list_names = {x.id: x.name for x in state.lists.values()}
    field_names = {f.id: f.name for f in state.custom_fields.values()}
    contacts = [
        {
            "id": c.id,
            "email": c.email,
            "permission": c.permission,
            "opt_out_source": c.opt_out_source,
            "opt_out_reason": c.opt_out_reason,
            "opt_out_date": _when(c.opt_out_date),
            "opt_in_date": _when(c.opt_in_date),
            "create_source": c.create_source,
            "properties": dict(sorted(c.scalars.items())),
            "custom_fields": {field_names.get(k, k): v for k, v in sorted(c.custom.items())},
            "lists": sorted(list_names.get(i, i) for i in c.lists),
            "deleted": c.deleted_at is not None,
            "created_at": iso(c.created_at),
            "updated_at": iso(c.updated_at),
        }
        for c in state.contacts.values()
    ]
    lists = [
        {"id": x.id, "name": x.name, "favorite": x.favorite, "description": x.description}
        for x in state.lists.values()
    ]
    fields = [
        {"id": f.id, "name": f.name, "label": f.label, "type": f.type} for f in state.custom_fields.values()
    ]
    return {
        "contacts": sorted(contacts, key=lambda c: str(c["email"]).lower()),
        "lists": sorted(lists, key=lambda x: str(x["name"])),
        "custom_fields": sorted(fields, key=lambda f: str(f["name"])),
        "activities": [{"id": a.id, "kind": a.kind, "state": a.state} for a in state.activities.values()],
    }


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else iso(moment)
