"""What the shared fault layer needs from the Dotdigital emulator: its error body, its account as
data, and its own faults (imports that fail or stall), reachable by the spec names ``job_fail`` and
``job_stall``.

The dump is what ``GET /_emulator/state`` answers and what a test compares after a sync: contacts with
their status and data fields, address books with their members' emails and those unsubscribed from
the book alone, suppressions with their reasons, and every import with its status. Contacts are
named by email, not id, so two accounts that reached the same state by different paths dump alike
once ids and dates are left out (``adapters.emulation.dumps.comparable``).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from starlette.responses import JSONResponse, Response

from adapters.dotdigital.emulator_data import iso
from adapters.dotdigital.emulator_state import DotdigitalState
from adapters.emulation.accounts import account_vendor
from adapters.emulation.layer import Vendor

MESSAGES = {
    500: "An error has occurred.",
    503: "The service is temporarily unavailable.",
    429: "Too Many Requests",
}


def vendor(state: DotdigitalState) -> Vendor:
    return account_vendor(state, error, lambda: dump(state))


def error(status: int, headers: Mapping[str, str]) -> Response:
    """v2's error body, ``{"message": ...}``."""
    return JSONResponse({"message": MESSAGES.get(status, "An error has occurred.")}, status, dict(headers))


def dump(state: DotdigitalState) -> dict[str, Any]:
    emails = {c.id: c.email for c in state.contacts.values()}
    contacts = [
        {
            "id": c.id,
            "email": c.email,
            "status": c.status,
            "opt_in_type": c.opt_in_type,
            "email_type": c.email_type,
            "data": {name: _plain(value) for name, value in sorted(c.data.items())},
            "created": iso(c.created),
            "modified": iso(c.modified),
        }
        for c in state.contacts.values()
    ]
    books = [
        {
            "id": b.id,
            "name": b.name,
            "visibility": b.visibility,
            "members": sorted(emails[i] for i in b.members),
            "unsubscribed": sorted(emails[i] for i in b.unsubscribed),
        }
        for b in state.address_books.values()
    ]
    suppressions = [
        {"email": emails[s.contact_id], "reason": s.reason, "self_service": s.self_service}
        | {"date_removed": iso(s.date_removed)}
        for s in state.suppressions.values()
    ]
    imports = [{"id": j.id, "api": "v2", "status": j.status} for j in state.imports.values()]
    imports += [{"id": j.id, "api": "v3", "status": j.status} for j in state.v3_imports.values()]
    return {
        "contacts": sorted(contacts, key=lambda c: str(c["email"]).lower()),
        "address_books": sorted(books, key=lambda b: str(b["name"])),
        "data_fields": sorted(
            (
                {"name": f.name, "type": f.type, "default": _plain(f.default)}
                for f in state.data_fields.values()
            ),
            key=lambda f: str(f["name"]),
        ),
        "suppressions": sorted(suppressions, key=lambda s: str(s["email"]).lower()),
        "imports": imports,
        "deletions": [{"id": d.id, "status": d.status} for d in state.deletions.values()],
    }


def _plain(value: Any) -> Any:
    return iso(value) if isinstance(value, datetime) else value
