"""The Constant Contact emulator's API routes: one small handler per v3 endpoint listsync uses.

Split from ``emulator.py`` so that module stays the HTTP skin (bearer tokens, the call budget, faults,
error mapping). Each handler parses with ``emulator_wire``, asks ``ConstantContactState`` and renders
the Swagger document's shapes. Reporting: ``GET /emails`` lists campaigns, ``GET /emails/{id}`` names
its campaign activities, ``GET /emails/activities/{id}`` the lists it was sent to, and
``/reports/email_reports/{activity}/tracking/{sends|opens|clicks|bounces|optouts}`` list events newest
first; ``/reports/stats/email_campaigns/{ids}`` gives the totals.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from adapters.constantcontact.emulator_data import TRACKING_KINDS, iso
from adapters.constantcontact.emulator_state import ApiError, ConstantContactState
from adapters.constantcontact.emulator_wire import (
    INVALID,
    by_time,
    csv_set,
    moment,
    ok,
    page,
    query,
    read_json,
    uuids,
)

Handler = Callable[[ConstantContactState, Request], Awaitable[Response]]


# -- contacts ---------------------------------------------------------------------------------------
async def list_contacts(state: ConstantContactState, request: Request) -> Response:
    params = query(request)
    statuses = csv_set(params, "status")
    include = csv_set(params, "include")
    email = params.get("email", "").strip().lower()
    lists = csv_set(params, "lists")
    updated, opted = moment(params, "updated_after"), moment(params, "optout_after")
    found = [
        c
        for c in state.contacts.values()
        if state.visible(c, statuses)
        and (not email or c.email.lower() == email)
        and (not lists or not lists.isdisjoint(c.lists))
        and (updated is None or c.updated_at > updated)
        and (opted is None or (c.opt_out_date is not None and c.opt_out_date > opted))
    ]
    chunk, links = page(request, found, key=lambda c: by_time(c.updated_at, c.id), default=50, maximum=500)
    body: dict[str, Any] = {"contacts": [c.wire(include) for c in chunk], "_links": links}
    if params.get("include_count") == "true":
        body["contacts_count"] = len(found)
    return ok(body)


async def create_contact(state: ConstantContactState, request: Request) -> Response:
    contact = state.create_contact(_object(await read_json(request)))
    return ok(contact.wire(frozenset({"custom_fields", "list_memberships"})), 201)


async def get_contact(state: ConstantContactState, request: Request) -> Response:
    contact = state.contact(request.path_params["contact_id"])
    return ok(contact.wire(csv_set(dict(request.query_params), "include")))


async def put_contact(state: ConstantContactState, request: Request) -> Response:
    body = _object(await read_json(request))
    contact = state.put_contact(request.path_params["contact_id"], body)
    return ok(contact.wire(frozenset({"custom_fields", "list_memberships"})))


async def delete_contact(state: ConstantContactState, request: Request) -> Response:
    state.delete_contact(request.path_params["contact_id"])
    return Response(status_code=204)


async def sign_up_form(state: ConstantContactState, request: Request) -> Response:
    contact, created = state.sign_up(_object(await read_json(request)))
    return ok(
        {"contact_id": contact.id, "action": "created" if created else "updated"}, 201 if created else 200
    )


# -- lists and custom fields ------------------------------------------------------------------------
async def list_lists(state: ConstantContactState, request: Request) -> Response:
    params = query(request)
    counts = params.get("include_membership_count") in ("all", "active")
    chunk, links = page(
        request, state.lists.values(), key=lambda x: by_time(x.created_at, x.id), default=50, maximum=1000
    )
    body: dict[str, Any] = {
        "lists": [lst.wire(state.members(lst.id) if counts else None) for lst in chunk],
        "_links": links,
    }
    if params.get("include_count") == "true":
        body["lists_count"] = len(state.lists)
    return ok(body)


async def create_list(state: ConstantContactState, request: Request) -> Response:
    body = _object(await read_json(request))
    made = state.create_list(
        str(body.get("name") or ""), bool(body.get("favorite")), str(body.get("description") or "")
    )
    return ok(made.wire(), 201)


async def get_list(state: ConstantContactState, request: Request) -> Response:
    found = state.contact_list(request.path_params["list_id"])
    counts = request.query_params.get("include_membership_count") in ("all", "active")
    return ok(found.wire(state.members(found.id) if counts else None))


async def list_fields(state: ConstantContactState, request: Request) -> Response:
    fields = state.custom_fields.values()
    chunk, links = page(request, fields, key=lambda f: by_time(f.created_at, f.id), default=50, maximum=100)
    return ok({"custom_fields": [f.wire() for f in chunk], "_links": links})


async def create_field(state: ConstantContactState, request: Request) -> Response:
    body = _object(await read_json(request))
    made = state.create_custom_field(str(body.get("label") or ""), str(body.get("type") or ""))
    return ok(made.wire(), 201)


# -- bulk activities --------------------------------------------------------------------------------
async def json_import(state: ConstantContactState, request: Request) -> Response:
    raw = await request.body()
    body = _object(await read_json(request))
    rows = body.get("import_data")
    if not isinstance(rows, list) or not rows:
        raise ApiError(400, INVALID, "import_data must be a non-empty array of contacts.")
    list_ids = uuids(body.get("list_ids"), "list_ids", 50)
    if not list_ids:
        raise ApiError(400, INVALID, "list_ids needs 1 to 50 list ids.")
    state.known_lists(list_ids)
    if len(raw) > state.knobs.max_import_bytes:
        rows = _first_bytes(rows, state.knobs.max_import_bytes)  # the vendor silently drops the rest
    job = state.submit("contacts_json_import", {"import_data": rows, "list_ids": list_ids})
    return ok(job.wire(), 201)


def _first_bytes(rows: list[Any], limit: int) -> list[Any]:
    """The rows whose JSON lies wholly within the first ``limit`` bytes of the body."""
    size, kept = len(b'{"import_data":['), []
    for row in rows:
        size += len(msgspec.json.encode(row)) + 1
        if size > limit:
            break
        kept.append(row)
    return kept


async def add_memberships(state: ConstantContactState, request: Request) -> Response:
    return await _membership(state, request, "add_list_memberships")


async def remove_memberships(state: ConstantContactState, request: Request) -> Response:
    return await _membership(state, request, "remove_list_memberships")


async def _membership(state: ConstantContactState, request: Request, kind: str) -> Response:
    body = _object(await read_json(request))
    source = body.get("source")
    if not isinstance(source, dict) or "contact_ids" not in source:
        raise ApiError(
            400, INVALID, "source.contact_ids is required (the emulator supports no other source)."
        )
    ids = uuids(source["contact_ids"], "source.contact_ids", 500)
    list_ids = state.known_lists(uuids(body.get("list_ids"), "list_ids", 50))
    if not list_ids:
        raise ApiError(400, INVALID, "list_ids needs 1 to 50 list ids.")
    job = state.submit(kind, {"source": {"contact_ids": ids}, "list_ids": list_ids})
    return ok(job.wire(), 201)


async def contact_delete(state: ConstantContactState, request: Request) -> Response:
    body = _object(await read_json(request))
    job = state.submit("contact_delete", {"contact_ids": uuids(body.get("contact_ids"), "contact_ids", 500)})
    return ok(job.wire(), 201)


async def get_activity(state: ConstantContactState, request: Request) -> Response:
    return ok(state.poll_activity(request.path_params["activity_id"]).wire())


async def list_activities(state: ConstantContactState, request: Request) -> Response:
    wanted = query(request).get("state")
    found = [a for a in state.activities.values() if wanted is None or a.state == wanted]
    chunk, links = page(request, found, key=lambda a: by_time(a.created_at, a.id), default=50, maximum=500)
    return ok({"activities": [a.wire() for a in chunk], "_links": links})


# -- email campaigns and reporting ------------------------------------------------------------------
async def list_emails(state: ConstantContactState, request: Request) -> Response:
    params = query(request)
    after, before = moment(params, "after_date"), moment(params, "before_date")
    found = [
        c
        for c in state.campaigns.values()
        if (after is None or c.sent_at > after) and (before is None or c.sent_at < before)
    ]
    chunk, links = page(
        request, found, key=lambda c: by_time(c.sent_at, c.id), default=50, maximum=500, newest_first=True
    )
    return ok({"campaigns": [c.wire() for c in chunk], "_links": links})


async def get_email(state: ConstantContactState, request: Request) -> Response:
    campaign = state.campaigns.get(request.path_params["campaign_id"])
    if campaign is None:
        raise ApiError(404, "emails.api.not.found", "Campaign not found.")
    activity = {"campaign_activity_id": campaign.activity_id, "role": "primary_email"}
    return ok({**campaign.wire(), "campaign_activities": [activity]})


async def get_email_activity(state: ConstantContactState, request: Request) -> Response:
    campaign = state.campaign_by_activity(request.path_params["activity_id"])
    return ok({
        "campaign_activity_id": campaign.activity_id, "campaign_id": campaign.id, "role": "primary_email",
        "contact_list_ids": list(campaign.list_ids), "current_status": campaign.status, "format_type": 5,
        "from_email": "news@example.com", "from_name": "Listsync Demo", "reply_to_email": "news@example.com",
        "subject": campaign.subject,
    })  # fmt: skip


async def tracking(state: ConstantContactState, request: Request) -> Response:
    campaign = state.campaign_by_activity(request.path_params["activity_id"])
    kind = TRACKING_KINDS.get(request.path_params["report"])
    if kind is None:
        raise ApiError(404, "reports.api.not.found", "No such report.")
    codes = set(request.query_params.getlist("bounce_code"))
    events = [  # numbered in the order recorded, to tell events of one moment apart
        (number, e)
        for number, e in enumerate(campaign.tracking)
        if e.kind == kind and (not codes or e.bounce_code in codes)
    ]
    chunk, links = page(
        request,
        events,
        key=lambda pair: by_time(pair[1].at, pair[0]),
        default=500,
        maximum=500,
        newest_first=True,
    )
    return ok(
        {
            "tracking_activities": [
                e.wire(campaign.activity_id, state.contacts.get(e.contact_id)) for _, e in chunk
            ],
            "_links": links,
        }
    )


async def campaign_stats(state: ConstantContactState, request: Request) -> Response:
    ids = [i for i in request.path_params["campaign_ids"].split(",") if i]
    if not ids or len(ids) > 10:
        raise ApiError(400, "reports.api.validation.error", "Give 1 to 10 campaign ids.")
    results, errors = [], []
    for campaign_id in ids:
        campaign = state.campaigns.get(campaign_id)
        if campaign is None:
            errors.append({"error_key": "reports.api.not.found", "error_message": f"{campaign_id} not found"})
            continue
        stats = campaign.counts()
        base = stats["em_sends"] or 1
        percents = {
            "open": round(100 * stats["em_opens"] / base, 1),
            "click": round(100 * stats["em_clicks"] / base, 1),
        }
        results.append({"campaign_id": campaign_id, "stats": stats, "percents": percents,
                        "last_refresh_time": iso(state.now())})  # fmt: skip
    return ok({"results": results, "errors": errors})


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(400, INVALID, "The request body must be a JSON object.")
    return body


_R = "/v3/reports/email_reports/{activity_id}/tracking/{report}"
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/v3/contacts", list_contacts),
    ("POST", "/v3/contacts", create_contact),
    ("POST", "/v3/contacts/sign_up_form", sign_up_form),
    ("GET", "/v3/contacts/{contact_id}", get_contact),
    ("PUT", "/v3/contacts/{contact_id}", put_contact),
    ("DELETE", "/v3/contacts/{contact_id}", delete_contact),
    ("GET", "/v3/contact_lists", list_lists),
    ("POST", "/v3/contact_lists", create_list),
    ("GET", "/v3/contact_lists/{list_id}", get_list),
    ("GET", "/v3/contact_custom_fields", list_fields),
    ("POST", "/v3/contact_custom_fields", create_field),
    ("POST", "/v3/activities/contacts_json_import", json_import),
    ("POST", "/v3/activities/add_list_memberships", add_memberships),
    ("POST", "/v3/activities/remove_list_memberships", remove_memberships),
    ("POST", "/v3/activities/contact_delete", contact_delete),
    ("GET", "/v3/activities", list_activities),
    ("GET", "/v3/activities/{activity_id}", get_activity),
    ("GET", "/v3/emails", list_emails),
    ("GET", "/v3/emails/{campaign_id}", get_email),
    ("GET", "/v3/emails/activities/{activity_id}", get_email_activity),
    ("GET", _R, tracking),
    ("GET", "/v3/reports/stats/email_campaigns/{campaign_ids}", campaign_stats),
]
