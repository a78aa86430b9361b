"""What the shared fault layer needs from the Workbooks emulator: its error answers and its database
as data.

Workbooks answers a failure with ``{"success": false, "failure_reason", "failure_message"}``, except
a 503, which comes from the web tier in front of it as a small HTML page with ``Retry-After``.
The dump is what ``GET /_emulator/state`` answers and what a test compares after a sync: people and
leads (their emails, consent and undeliverable flags and every other field), campaigns, campaign
memberships and online activities, the last two naming their campaign and member by name and email
so that dumps compare without ids (``adapters.emulation.dumps.comparable``), and a membership its
status by name (a dump's own key: the API serves only the status id).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.responses import Response

from adapters.emulation.layer import Vendor
from adapters.workbooks.emulator_state import Record, WorkbooksState
from adapters.workbooks.emulator_types import LEAD, PERSON, WorkbooksError, render

JSON_TYPE = "application/json; charset=utf-8"
EMAIL_COLUMNS = {PERSON: "main_location[email]", LEAD: "org_lead_party[main_location[email]]"}
CONTROLLERS = {PERSON: "crm/people", LEAD: "crm/sales_leads"}


def vendor(state: WorkbooksState) -> Vendor:
    def error(status: int, headers: Mapping[str, str]) -> Response:
        if status == 503:
            return Response("Service Temporarily Unavailable", 503, dict(headers), media_type="text/html")
        reason = "too_many_requests" if status == 429 else "internal_error"
        message = f"An unexpected error occurred (reference {state.random.getrandbits(32):08x})"
        answer = failure(WorkbooksError(status, reason, message))
        answer.headers.update(headers)
        return answer

    return Vendor(error=error, dump=lambda: dump(state))


def failure(error: WorkbooksError) -> Response:
    body = {"success": False, "failure_reason": error.reason, "failure_message": error.message}
    return Response(json.dumps(body), status_code=error.status, media_type=JSON_TYPE)


def dump(state: WorkbooksState) -> dict[str, Any]:
    campaigns = {r["id"]: r["name"] for r in state.live("crm/campaigns")}
    members = {
        (kind, r["id"]): r.get(EMAIL_COLUMNS[kind])
        for kind in CONTROLLERS
        for r in state.live(CONTROLLERS[kind])
    }

    def linked(record: Record) -> dict[str, Any]:
        party = (record["party_or_lead_type"], record["party_or_lead_id"])
        return _plain(record) | {
            "campaign": campaigns.get(record["marketing_campaign_id"]),
            "member": members.get(party),
        }

    def membership(record: Record) -> dict[str, Any]:
        return linked(record) | {"status": state.status_name(record["campaign_membership_status_id"])}

    return {
        "people": _by_email(state, PERSON),
        "leads": _by_email(state, LEAD),
        "campaigns": sorted((_plain(r) for r in state.live("crm/campaigns")), key=lambda r: str(r["name"])),
        "campaign_memberships": [membership(r) for r in state.live("crm/campaign_membership")],
        "online_activities": [linked(r) for r in state.live("crm/online_activities")],
    }


def _by_email(state: WorkbooksState, kind: str) -> list[dict[str, Any]]:
    records = [_plain(r) for r in state.live(CONTROLLERS[kind])]
    return sorted(records, key=lambda r: (str(r.get(EMAIL_COLUMNS[kind]) or "").lower(), str(r["name"])))


def _plain(record: Record) -> dict[str, Any]:
    return {name: render(value) for name, value in record.items()}
