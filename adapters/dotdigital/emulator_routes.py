"""The Dotdigital emulator's route table and handlers: one small function per v2 endpoint.

Split from ``emulator.py`` so that module stays the HTTP skin (auth, rate limits, faults, error mapping).
Each handler parses with ``emulator_wire``, asks ``DotdigitalState`` and renders with ``emulator_wire``;
``ROUTES`` lists (method, path, handler) for ``create_app``.

Campaign activity: the spec has no single per-contact "events since" feed, so the emulator serves the ones an
activity sync needs, per sent campaign: ``GET /v2/campaigns/with-activity-since/{date}`` to find campaigns,
``GET /v2/campaigns/{id}/activities[/since-date/{date}]`` (``ApiCampaignContactSummary``: counts plus the
``hardBounced``/``softBounced``/``unsubscribed`` flags, v2's only per-campaign bounce and opt-out source),
``GET /v2/campaigns/{id}/opens[/since-date/{date}]`` and ``/clicks[/since-date/{date}]`` for single events,
``GET /v2/campaigns/{id}/hard-bouncing-contacts`` and ``GET /v2/campaigns/{id}/summary`` for totals, and
``GET /v2/campaigns/{id}/address-books`` for the books it was sent to (those that still exist).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from adapters.dotdigital import emulator_book_unsubscribes as book_unsubscribes
from adapters.dotdigital.emulator_data import SUPPRESSED, Campaign, iso
from adapters.dotdigital.emulator_state import ApiError, DotdigitalState
from adapters.dotdigital.emulator_wire import (
    USER_AGENT,
    body_key,
    data_pairs,
    date_param,
    fake_ip,
    full_data,
    import_file,
    ok,
    page,
    path_int,
    read_json,
    render_activity,
    render_campaign,
    render_contact,
    render_summary,
    render_suppression,
)

Handler = Callable[[DotdigitalState, Request], Awaitable[Response]]


async def account_info(state: DotdigitalState, request: Request) -> Response:
    k = state.knobs
    used = state.rate_window[1]
    props = [("Name", "String", "Listsync Emulator"), ("MainEmail", "String", "owner@example.com"),
             ("APILocale", "String", "en-GB"), ("ApiCallsInLastHour", "Int", str(used)),
             ("ApiCallsRemaining", "Int", str(max(0, k.flat_calls_per_hour - used))),
             ("ApiEndpoint", "String", k.api_endpoint), ("CurrencyCode", "String", "GBP"),
             ("TimeZoneIana", "String", "Europe/London")]  # fmt: skip
    return ok({"id": k.account_id, "properties": [{"name": n, "type": t, "value": v} for n, t, v in props]})


async def list_books(state: DotdigitalState, request: Request) -> Response:
    return ok([b.wire() for b in page(request, list(state.address_books.values()))])


async def create_book(state: DotdigitalState, request: Request) -> Response:
    body = await read_json(request)
    book = state.create_address_book(
        str(body_key(body, "name") or ""), body_key(body, "visibility") or "Private"
    )
    return ok(book.wire(), 201)


async def get_book(state: DotdigitalState, request: Request) -> Response:
    return ok(state.book(path_int(request, "id")).wire())


async def update_book(state: DotdigitalState, request: Request) -> Response:
    body = await read_json(request)
    book = state.update_address_book(
        path_int(request, "id"), str(body_key(body, "name") or ""), body_key(body, "visibility")
    )
    return ok(book.wire())


async def delete_book(state: DotdigitalState, request: Request) -> Response:
    state.book(path_int(request, "id"))
    del state.address_books[path_int(request, "id")]
    return Response(status_code=200)


async def book_members(state: DotdigitalState, request: Request) -> Response:
    members = page(request, state.members(path_int(request, "id")))
    return ok([render_contact(state, c, full_data(request)) for c in members])


async def add_book_member(state: DotdigitalState, request: Request) -> Response:
    body = await read_json(request)
    contact, _ = state.upsert_contact(str(body_key(body, "email") or ""), data_pairs(body))
    state.add_member(path_int(request, "id"), contact)
    return ok(render_contact(state, contact))


async def remove_book_member(state: DotdigitalState, request: Request) -> Response:
    state.remove_member(path_int(request, "id"), path_int(request, "contact_id"))
    return Response(status_code=204)


async def delete_book_members(state: DotdigitalState, request: Request) -> Response:
    ids = await read_json(request)
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        raise ApiError(400, "The body must be an array of contact ids. ERROR_INVALID_REQUEST")
    job = state.start_deletion(path_int(request, "id"), ids)
    return ok({"id": job.id, "status": job.status}, 202)


async def unsubscribe_from_book(state: DotdigitalState, request: Request) -> Response:
    email = str(body_key(await read_json(request), "email") or "")
    return ok(render_suppression(state, state.unsubscribe_from_book(path_int(request, "id"), email)))


async def book_unsubscribed_since(state: DotdigitalState, request: Request) -> Response:
    found = book_unsubscribes.unsubscribed_since(state, path_int(request, "id"), date_param(request))
    return ok([render_suppression(state, entry) for entry in page(request, found)])


async def resubscribe_to_book(state: DotdigitalState, request: Request) -> Response:
    wanted = body_key(await read_json(request), "unsubscribedContact")
    email, data = str(body_key(wanted, "email") or ""), data_pairs(wanted)
    status, contact = book_unsubscribes.resubscribe_to_book(state, path_int(request, "id"), email, data)
    return ok({"contact": None if contact is None else render_contact(state, contact), "status": status})


async def deletion_status(state: DotdigitalState, request: Request) -> Response:
    job = state.poll_deletion(request.path_params["id"])
    return ok({"id": job.id, "status": job.status})


async def upsert_contact(state: DotdigitalState, request: Request) -> Response:
    body = await read_json(request)
    contact, created = state.upsert_contact(
        str(body_key(body, "email") or ""), data_pairs(body), opt_in=body_key(body, "optInType"),
        email_type=body_key(body, "emailType"),
    )  # fmt: skip
    return ok(render_contact(state, contact), 201 if created else 200)


async def get_contact(state: DotdigitalState, request: Request) -> Response:
    return ok(render_contact(state, state.find_contact(request.path_params["key"])))


async def delete_contact(state: DotdigitalState, request: Request) -> Response:
    state.delete_contact(path_int(request, "key"))
    return Response(status_code=204)


async def contact_books(state: DotdigitalState, request: Request) -> Response:
    contact = state.find_contact(request.path_params["key"])
    return ok([b.wire() for b in page(request, state.books_of(contact.id))])


async def modified_since(state: DotdigitalState, request: Request) -> Response:
    found = page(request, state.modified_since(date_param(request)))
    return ok([render_contact(state, c, full_data(request)) for c in found])


async def suppressed_since(state: DotdigitalState, request: Request) -> Response:
    return ok(
        [render_suppression(state, s) for s in page(request, state.suppressed_since(date_param(request)))]
    )


async def unsubscribed_since(state: DotdigitalState, request: Request) -> Response:
    found = state.suppressed_since(date_param(request), frozenset({"Unsubscribed"}))
    return ok([render_suppression(state, s) for s in page(request, found)])


async def unsubscribe(state: DotdigitalState, request: Request) -> Response:
    return ok(
        render_suppression(state, state.unsubscribe(str(body_key(await read_json(request), "email") or "")))
    )


async def suppress_contacts(state: DotdigitalState, request: Request) -> Response:
    items = await read_json(request)
    if not isinstance(items, list):
        raise ApiError(400, "The body must be an array of contacts. ERROR_INVALID_REQUEST")
    suppressed, missing = [], []
    for item in items:
        ident, email = body_key(item, "id"), body_key(item, "email")
        contact = state.contacts.get(ident) if isinstance(ident, int) and ident else None
        contact = contact or (state.contact_by_email(email) if isinstance(email, str) else None)
        if contact is None:
            missing.append({"id": ident or 0, "email": email})
        else:
            state.suppress(contact, "Suppressed")
            suppressed.append({"id": contact.id, "email": contact.email})
    return ok({"suppressed": suppressed, "notFound": missing})


async def resubscribe(state: DotdigitalState, request: Request) -> Response:
    wanted = body_key(await read_json(request), "unsubscribedContact")
    status, contact = state.resubscribe(str(body_key(wanted, "email") or ""), data_pairs(wanted))
    return ok({"contact": None if contact is None else render_contact(state, contact), "status": status})


async def submit_import(state: DotdigitalState, request: Request) -> Response:
    book_id = path_int(request, "id") if "id" in request.path_params else None
    job = state.submit_import(book_id, await import_file(request))
    return ok({"id": job.id, "status": job.status}, 202)


async def import_status(state: DotdigitalState, request: Request) -> Response:
    job = state.poll_import(request.path_params["id"])
    return ok({"id": job.id, "status": job.status})


async def import_report(state: DotdigitalState, request: Request) -> Response:
    job = state.import_job(request.path_params["id"])
    if job.report is None:
        raise ApiError(
            400, "Import is not processed yet or completed with error. ERROR_IMPORT_REPORT_NOT_FOUND"
        )
    return ok(job.report)


async def import_faults(state: DotdigitalState, request: Request) -> Response:
    job = state.import_job(request.path_params["id"])
    if job.report is None:
        raise ApiError(
            400, "Import is not processed yet or completed with error. ERROR_IMPORT_REPORT_NOT_FOUND"
        )
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(job.faults)
    # The v2 document's media type, with the CSV body the ReadMe shows (see emulator.py).
    return Response(out.getvalue().encode("utf-8"), media_type="application/octet-stream")


async def list_fields(state: DotdigitalState, request: Request) -> Response:
    return ok([f.wire() for f in state.data_fields.values()])


async def create_field(state: DotdigitalState, request: Request) -> Response:
    body = await read_json(request)
    created = state.create_data_field(
        str(body_key(body, "name") or ""), str(body_key(body, "type") or ""),
        body_key(body, "visibility") or "Private", body_key(body, "defaultValue"),
    )  # fmt: skip
    return ok(created.wire(), 201)


async def delete_field(state: DotdigitalState, request: Request) -> Response:
    state.delete_data_field(request.path_params["name"])
    return ok({"dependencies": [], "result": True})


async def list_campaigns(state: DotdigitalState, request: Request) -> Response:
    return ok([render_campaign(c) for c in page(request, list(state.campaigns.values()))])


async def campaigns_with_activity(state: DotdigitalState, request: Request) -> Response:
    return ok(
        [render_campaign(c) for c in page(request, state.campaigns_with_activity_since(date_param(request)))]
    )


def _campaign_of(state: DotdigitalState, request: Request) -> Campaign:
    return state.campaign(path_int(request, "id"))


async def campaign_summary(state: DotdigitalState, request: Request) -> Response:
    return ok(render_summary(state, _campaign_of(state, request)))


async def campaign_books(state: DotdigitalState, request: Request) -> Response:
    campaign = _campaign_of(state, request)
    books = [state.address_books[i] for i in campaign.book_ids if i in state.address_books]
    return ok([b.wire() for b in page(request, books)])


async def campaign_activities(state: DotdigitalState, request: Request) -> Response:
    campaign = _campaign_of(state, request)
    since = date_param(request) if "date" in request.path_params else None
    acts = [
        a for a in campaign.activity.values() if since is None or (a.last_event and a.last_event >= since)
    ]
    return ok([render_activity(campaign, a) for a in page(request, acts)])


async def campaign_opens(state: DotdigitalState, request: Request) -> Response:
    campaign = _campaign_of(state, request)
    since = date_param(request) if "date" in request.path_params else None
    opens = [(a, when) for a in campaign.activity.values() for when in a.opens if not since or when >= since]
    opens.sort(key=lambda pair: pair[1])
    return ok([{"contactId": a.contact_id, "email": a.email, "mailClient": "Gmail", "mailClientVersion": "",
                "ipAddress": fake_ip(a.contact_id), "userAgent": USER_AGENT, "isHtml": True,
                "isForward": False, "dateOpened": iso(when)}
               for a, when in page(request, opens)])  # fmt: skip


async def campaign_clicks(state: DotdigitalState, request: Request) -> Response:
    campaign = _campaign_of(state, request)
    since = date_param(request) if "date" in request.path_params else None
    clicks = sorted(((a, url, when) for a in campaign.activity.values() for url, when in a.clicks
                     if not since or when >= since), key=lambda row: row[2])  # fmt: skip
    return ok([{"contactId": a.contact_id, "email": a.email, "url": url, "ipAddress": fake_ip(a.contact_id),
                 "userAgent": USER_AGENT, "dateClicked": iso(when), "keyword": ""}
                for a, url, when in page(request, clicks)])  # fmt: skip


async def hard_bouncers(state: DotdigitalState, request: Request) -> Response:
    campaign = _campaign_of(state, request)
    bounced = [state.contacts[a.contact_id] for a in campaign.activity.values() if a.hard_bounced]
    return ok(
        [
            render_contact(state, c, full_data(request))
            for c in page(request, bounced)
            if c.status in SUPPRESSED
        ]
    )


_C = "/v2/campaigns/{id}"
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/v2/account-info", account_info),
    ("GET", "/v2/address-books", list_books),
    ("POST", "/v2/address-books", create_book),
    ("GET", "/v2/address-books/{id}", get_book),
    ("PUT", "/v2/address-books/{id}", update_book),
    ("DELETE", "/v2/address-books/{id}", delete_book),
    ("GET", "/v2/address-books/{id}/contacts", book_members),
    ("POST", "/v2/address-books/{id}/contacts", add_book_member),
    ("POST", "/v2/address-books/{id}/contacts/delete", delete_book_members),
    ("POST", "/v2/address-books/{id}/contacts/import", submit_import),
    ("POST", "/v2/address-books/{id}/contacts/unsubscribe", unsubscribe_from_book),
    ("GET", "/v2/address-books/{id}/contacts/unsubscribed-since/{date}", book_unsubscribed_since),
    ("POST", "/v2/address-books/{id}/contacts/resubscribe", resubscribe_to_book),
    ("POST", "/v2/address-books/{id}/contacts/resubscribe-with-no-challenge", resubscribe_to_book),
    ("DELETE", "/v2/address-books/{id}/contacts/{contact_id}", remove_book_member),
    ("GET", "/v2/contacts/deletion/{id}", deletion_status),
    ("POST", "/v2/contacts", upsert_contact),
    ("POST", "/v2/contacts/import", submit_import),
    ("GET", "/v2/contacts/import/{id}", import_status),
    ("GET", "/v2/contacts/import/{id}/report", import_report),
    ("GET", "/v2/contacts/import/{id}/report-faults", import_faults),
    ("GET", "/v2/contacts/modified-since/{date}", modified_since),
    ("GET", "/v2/contacts/suppressed-since/{date}", suppressed_since),
    ("GET", "/v2/contacts/unsubscribed-since/{date}", unsubscribed_since),
    ("POST", "/v2/contacts/unsubscribe", unsubscribe),
    ("PUT", "/v2/contacts/suppress-contacts", suppress_contacts),
    ("POST", "/v2/contacts/resubscribe", resubscribe),
    ("POST", "/v2/contacts/resubscribe-with-no-challenge", resubscribe),
    ("GET", "/v2/contacts/{key}", get_contact),
    ("DELETE", "/v2/contacts/{key}", delete_contact),
    ("GET", "/v2/contacts/{key}/address-books", contact_books),
    ("GET", "/v2/data-fields", list_fields),
    ("POST", "/v2/data-fields", create_field),
    ("DELETE", "/v2/data-fields/{name}", delete_field),
    ("GET", "/v2/campaigns", list_campaigns),
    ("GET", "/v2/campaigns/with-activity-since/{date}", campaigns_with_activity),
    ("GET", _C + "/summary", campaign_summary),
    ("GET", _C + "/address-books", campaign_books),
    ("GET", _C + "/activities", campaign_activities),
    ("GET", _C + "/activities/since-date/{date}", campaign_activities),
    ("GET", _C + "/opens", campaign_opens),
    ("GET", _C + "/opens/since-date/{date}", campaign_opens),
    ("GET", _C + "/clicks", campaign_clicks),
    ("GET", _C + "/clicks/since-date/{date}", campaign_clicks),
    ("GET", _C + "/hard-bouncing-contacts", hard_bouncers),
]
