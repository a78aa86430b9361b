"""An in-memory Dotdigital v2 API as an ASGI app, for tests (through ``httpx.ASGITransport``) and the sandbox.

Built from the published OpenAPI document (``shared/vendor-specs/dotdigital/dotdigital-v2-api-swagger.json``)
and ``shared/reference/esp-apis.md``. This module is the HTTP skin: it checks HTTP Basic credentials, counts
calls against the account's rate-limit scheme (flat: N per hour, over it 400 ``ERROR_APIUSAGE_EXCEEDED``;
tiered: N per minute, over it 429 with ``X-RateLimit-*`` headers), injects the scripted faults of ``Knobs``
(latency, 500/503/429 shares, malformed JSON), parses requests, renders camelCase JSON and maps
``ApiError`` to v2's ``{"message": "<text> ERROR_CODE"}``. Behaviour lives in ``DotdigitalState``.

Campaign activity: the spec has no single per-contact "events since" feed, so the emulator serves the ones an
activity sync needs, per sent campaign: ``GET /v2/campaigns/with-activity-since/{date}`` to find campaigns,
``GET /v2/campaigns/{id}/activities[/since-date/{date}]`` (``ApiCampaignContactSummary``: counts plus the
``hardBounced``/``softBounced``/``unsubscribed`` flags, v2's only per-campaign bounce and opt-out source),
``GET /v2/campaigns/{id}/opens[/since-date/{date}]`` and ``/clicks[/since-date/{date}]`` for single events,
``GET /v2/campaigns/{id}/hard-bouncing-contacts`` and ``GET /v2/campaigns/{id}/summary`` for totals.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import csv
import io
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.applications import Starlette
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from adapters.dotdigital.emulator_data import (
    SUPPRESSED,
    Activity,
    Campaign,
    Contact,
    Suppression,
    iso,
    parse_date,
)
from adapters.dotdigital.emulator_state import ApiError, DotdigitalState, Knobs

Handler = Callable[[DotdigitalState, Request], Awaitable[Response]]
DENIED = "Authorization has been denied for this request."
CAPPED = (
    "Your account has generated excess API activity and is being temporarily capped. "
    "Please contact support. ERROR_APIUSAGE_EXCEEDED"
)


def create_app(state: DotdigitalState | None = None, *, knobs: Knobs | None = None) -> Starlette:
    """The emulator app over ``state`` (a fresh account when omitted); ``app.state.dotdigital`` holds it."""
    if state is None:
        state = DotdigitalState(knobs)
    elif knobs is not None:
        state.knobs = knobs
    routes = [Route(path, _guarded(state, handler), methods=[method]) for method, path, handler in ROUTES]
    app = Starlette(routes=routes, exception_handlers={HTTPException: _http_error})
    app.state.dotdigital = state
    return app


# -- the guard every call passes: auth, budget, scripted faults, error mapping -------------------------
def _guarded(state: DotdigitalState, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    async def endpoint(request: Request) -> Response:
        if not _authorised(state.knobs, request.headers.get("authorization", "")):
            return _error(401, DENIED)
        response = await _run(state, handler, request)
        state.calls.append((request.method, request.url.path, response.status_code))
        return response

    return endpoint


async def _run(state: DotdigitalState, handler: Handler, request: Request) -> Response:
    knobs = state.knobs
    allowed, headers = _admit(state)
    if not allowed:
        return (
            _error(400, CAPPED) if knobs.rate_scheme == "flat" else _error(429, "Too Many Requests", headers)
        )
    if knobs.latency > 0:
        await asyncio.sleep(knobs.latency)
    shares = (knobs.error_500_share, knobs.error_503_share, knobs.error_429_share)
    roll = state.rng.random() if any(shares) else 1.0
    retry = {"Retry-After": str(knobs.retry_after)}
    if roll < shares[0]:
        response = _error(500, "An error has occurred.")
    elif roll < shares[0] + shares[1]:
        response = _error(503, "The service is temporarily unavailable.", retry)
    elif roll < sum(shares):
        response = _error(429, "Too Many Requests", retry)
    else:
        try:
            response = await handler(state, request)
        except ApiError as refused:
            response = _error(refused.status, refused.message)
        malformed = knobs.malformed_json_share > 0 and state.rng.random() < knobs.malformed_json_share
        if malformed and response.media_type == "application/json":
            body = bytes(response.body)
            response = Response(body[: len(body) // 2], response.status_code, media_type="application/json")
    response.headers.update(headers)
    return response


def _admit(state: DotdigitalState) -> tuple[bool, dict[str, str]]:
    """Count one call in the scheme's fixed window; say whether it may run and which headers to send."""
    knobs = state.knobs
    if knobs.rate_scheme == "none":
        return True, {}
    flat = knobs.rate_scheme == "flat"
    period, limit = (3600.0, knobs.flat_calls_per_hour) if flat else (60.0, knobs.tiered_calls_per_minute)
    start, used = state.rate_window
    now = state.clock()
    if now - start >= period:
        start, used = now, 0
    allowed = used < limit
    state.rate_window = (start, used + allowed)
    if flat:
        return allowed, {}
    return allowed, {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(max(0, limit - state.rate_window[1])),
        "X-RateLimit-Reset": str(
            max(1, round(start + period - now + 0.5))
        ),  # seconds until the window resets
        "X-RateLimit-Scope": knobs.tiered_scope,
    }


def _authorised(knobs: Knobs, header: str) -> bool:
    scheme, _, encoded = header.partition(" ")
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return False
    return scheme.lower() == "basic" and (user, password) == (knobs.api_user, knobs.api_password)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"message": message}, status, headers=headers)


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    text = f"No HTTP resource was found that matches the request URI '{request.url}'."
    return _error(status, text if status == 404 else "The requested resource does not support this method.")


# -- request parsing ---------------------------------------------------------------------------------
def _ok(body: Any, status: int = 200) -> Response:
    return JSONResponse(body, status)


async def _json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise ApiError(400, "The request body is not valid JSON. ERROR_INVALID_REQUEST") from None


def _key(body: Any, name: str) -> Any:
    """v2 also accepts PascalCase keys (the Magento client sends ``Name``)."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object. ERROR_INVALID_REQUEST")
    return body.get(name, body.get(name[:1].upper() + name[1:]))


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, f"The value '{text}' is not valid. ERROR_PARAMETER_INVALID") from None


def _page(request: Request, items: list[Any]) -> list[Any]:
    select = _int(request.query_params.get("select", "1000"))
    skip = _int(request.query_params.get("skip", "0"))
    if not 1 <= select <= 1000 or skip < 0:
        raise ApiError(
            400, "Select must be between 1 and 1000 and skip not negative. ERROR_PARAMETER_INVALID"
        )
    return items[skip : skip + select]


def _full(request: Request) -> bool:
    return request.query_params.get("withFullData", "false").lower() == "true"


def _date(request: Request) -> Any:
    try:
        return parse_date(request.path_params["date"])
    except ValueError:
        raise ApiError(
            400, f"The date '{request.path_params['date']}' is not valid. ERROR_INVALID_DATE"
        ) from None


def _data_pairs(body: Any) -> dict[str, Any]:
    pairs = _key(body, "dataFields") or []
    return {str(_key(p, "key")): _key(p, "value") for p in pairs}


async def _import_file(request: Request) -> bytes | None:
    """An import's upload: multipart field ``file`` (real clients) or JSON ``ApiFileMedia`` (the spec)."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        async with request.form() as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ApiError(400, "No file was uploaded in the 'file' field. ERROR_FILE_NOT_FOUND")
            return await upload.read()
    data = _key(await _json(request), "data")
    if not isinstance(data, str):
        raise ApiError(400, "The file data is missing. ERROR_FILE_NOT_FOUND")
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error:
        return None  # the job ends InvalidFileFormat, as an unreadable upload does


# -- rendering ---------------------------------------------------------------------------------------
def _contact(state: DotdigitalState, contact: Contact, full: bool = True) -> dict[str, Any]:
    fields = [{"key": f.name, "value": contact.data.get(f.name)} for f in state.data_fields.values()]
    return {
        "id": contact.id,
        "email": contact.email,
        "optInType": contact.opt_in_type,
        "emailType": contact.email_type,
        "dataFields": fields if full else None,
        "status": contact.status,
    }


def _suppression(state: DotdigitalState, entry: Suppression) -> dict[str, Any]:
    contact = _contact(state, state.contacts[entry.contact_id], full=False)
    return {"suppressedContact": contact, "dateRemoved": iso(entry.date_removed), "reason": entry.reason}


def _campaign(campaign: Campaign) -> dict[str, Any]:
    return {
        "id": campaign.id,
        "name": campaign.name,
        "subject": campaign.subject,
        "fromName": campaign.from_name,
        "fromAddress": {"id": 1, "email": "news@r1.dotdigital-email.com"},
        "htmlContent": f"<html><body><h1>{campaign.subject}</h1></body></html>",
        "plainTextContent": campaign.subject,
        "replyAction": "Unset",
        "replyToAddress": "",
        "isSplitTest": False,
        "status": "Sent",
    }


def _summary(state: DotdigitalState, campaign: Campaign) -> dict[str, Any]:
    acts = list(campaign.activity.values())
    sent, hard = len(acts), sum(a.hard_bounced for a in acts)
    soft = sum(a.soft_bounced for a in acts)
    uniq, clickers = sum(bool(a.opens) for a in acts), sum(bool(a.clicks) for a in acts)
    unsubs = sum(a.unsubscribed for a in acts)
    complaints = sum(a.unsubscribed and state.contacts[a.contact_id].status == "IspComplained" for a in acts)

    def pct(n: int, of: int = sent) -> float:
        return round(100.0 * n / of, 2) if of else 0.0

    opens, clicks = sum(len(a.opens) for a in acts), sum(len(a.clicks) for a in acts)
    counts = {"UniqueOpens": uniq, "Opens": opens, "Clicks": clicks, "HardBounces": hard, "SoftBounces": soft,
              "Unsubscribes": unsubs, "IspComplaints": complaints, "Sent": sent,
              "Delivered": sent - hard - soft}  # fmt: skip
    body: dict[str, Any] = {"dateSent": iso(campaign.date_sent), "numRecipientsClicked": clickers}
    for name, n in counts.items():
        body[f"num{name}"], body[f"numTotal{name}"] = n, n
    body |= {
        "percentageDelivered": pct(sent - hard - soft),
        "percentageUniqueOpens": pct(uniq),
        "percentageUnsubscribes": pct(unsubs),
        "percentageHardBounces": pct(hard),
        "percentageSoftBounces": pct(soft),
        "percentageUsersClicked": pct(clickers),
        "percentageClicksToOpens": pct(clickers, uniq),
    }
    return body


def _activity(campaign: Campaign, act: Activity) -> dict[str, Any]:
    body: dict[str, Any] = {
        "contactId": act.contact_id, "email": act.email, "numOpens": len(act.opens), "numPageViews": 0,
        "numClicks": len(act.clicks), "numForwards": 0, "numEstimatedForwards": 0, "numReplies": 0,
        "dateSent": iso(campaign.date_sent), "firstOpenIp": _ip(act.contact_id) if act.opens else "",
        "unsubscribed": act.unsubscribed, "softBounced": act.soft_bounced, "hardBounced": act.hard_bounced,
    }  # fmt: skip
    if act.opens:
        body |= {"dateFirstOpened": iso(act.opens[0]), "dateLastOpened": iso(act.opens[-1])}
    return body


def _ip(contact_id: int) -> str:
    return f"203.0.113.{contact_id % 250 + 1}"


_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0"


# -- handlers ----------------------------------------------------------------------------------------
def _path_int(request: Request, name: str) -> int:
    return _int(request.path_params[name])


async def account_info(state: DotdigitalState, request: Request) -> Response:
    k = state.knobs
    used = state.rate_window[1]
    props = [("Name", "String", "Listsync Emulator"), ("MainEmail", "String", "owner@example.com"),
             ("APILocale", "String", "en-GB"), ("ApiCallsInLastHour", "Int", str(used)),
             ("ApiCallsRemaining", "Int", str(max(0, k.flat_calls_per_hour - used))),
             ("ApiEndpoint", "String", k.api_endpoint), ("CurrencyCode", "String", "GBP"),
             ("TimeZoneIana", "String", "Europe/London")]  # fmt: skip
    return _ok({"id": k.account_id, "properties": [{"name": n, "type": t, "value": v} for n, t, v in props]})


async def list_books(state: DotdigitalState, request: Request) -> Response:
    return _ok([b.wire() for b in _page(request, list(state.address_books.values()))])


async def create_book(state: DotdigitalState, request: Request) -> Response:
    body = await _json(request)
    book = state.create_address_book(str(_key(body, "name") or ""), _key(body, "visibility") or "Private")
    return _ok(book.wire(), 201)


async def get_book(state: DotdigitalState, request: Request) -> Response:
    return _ok(state.book(_path_int(request, "id")).wire())


async def update_book(state: DotdigitalState, request: Request) -> Response:
    body = await _json(request)
    book = state.update_address_book(
        _path_int(request, "id"), str(_key(body, "name") or ""), _key(body, "visibility")
    )
    return _ok(book.wire())


async def delete_book(state: DotdigitalState, request: Request) -> Response:
    state.book(_path_int(request, "id"))
    del state.address_books[_path_int(request, "id")]
    return Response(status_code=200)


async def book_members(state: DotdigitalState, request: Request) -> Response:
    members = _page(request, state.members(_path_int(request, "id")))
    return _ok([_contact(state, c, _full(request)) for c in members])


async def add_book_member(state: DotdigitalState, request: Request) -> Response:
    body = await _json(request)
    contact, _ = state.upsert_contact(str(_key(body, "email") or ""), _data_pairs(body))
    state.add_member(_path_int(request, "id"), contact)
    return _ok(_contact(state, contact))


async def remove_book_member(state: DotdigitalState, request: Request) -> Response:
    state.remove_member(_path_int(request, "id"), _path_int(request, "contact_id"))
    return Response(status_code=204)


async def delete_book_members(state: DotdigitalState, request: Request) -> Response:
    ids = await _json(request)
    if not isinstance(ids, list) or not all(isinstance(i, int) for i in ids):
        raise ApiError(400, "The body must be an array of contact ids. ERROR_INVALID_REQUEST")
    job = state.start_deletion(_path_int(request, "id"), ids)
    return _ok({"id": job.id, "status": job.status}, 202)


async def deletion_status(state: DotdigitalState, request: Request) -> Response:
    job = state.poll_deletion(request.path_params["id"])
    return _ok({"id": job.id, "status": job.status})


async def upsert_contact(state: DotdigitalState, request: Request) -> Response:
    body = await _json(request)
    contact, created = state.upsert_contact(
        str(_key(body, "email") or ""), _data_pairs(body), opt_in=_key(body, "optInType"),
        email_type=_key(body, "emailType"),
    )  # fmt: skip
    return _ok(_contact(state, contact), 201 if created else 200)


async def get_contact(state: DotdigitalState, request: Request) -> Response:
    return _ok(_contact(state, state.find_contact(request.path_params["key"])))


async def delete_contact(state: DotdigitalState, request: Request) -> Response:
    state.delete_contact(_path_int(request, "key"))
    return Response(status_code=204)


async def contact_books(state: DotdigitalState, request: Request) -> Response:
    contact = state.find_contact(request.path_params["key"])
    return _ok([b.wire() for b in _page(request, state.books_of(contact.id))])


async def modified_since(state: DotdigitalState, request: Request) -> Response:
    found = _page(request, state.modified_since(_date(request)))
    return _ok([_contact(state, c, _full(request)) for c in found])


async def suppressed_since(state: DotdigitalState, request: Request) -> Response:
    return _ok([_suppression(state, s) for s in _page(request, state.suppressed_since(_date(request)))])


async def unsubscribed_since(state: DotdigitalState, request: Request) -> Response:
    found = state.suppressed_since(_date(request), frozenset({"Unsubscribed"}))
    return _ok([_suppression(state, s) for s in _page(request, found)])


async def unsubscribe(state: DotdigitalState, request: Request) -> Response:
    return _ok(_suppression(state, state.unsubscribe(str(_key(await _json(request), "email") or ""))))


async def suppress_contacts(state: DotdigitalState, request: Request) -> Response:
    items = await _json(request)
    if not isinstance(items, list):
        raise ApiError(400, "The body must be an array of contacts. ERROR_INVALID_REQUEST")
    suppressed, missing = [], []
    for item in items:
        ident, email = _key(item, "id"), _key(item, "email")
        contact = state.contacts.get(ident) if isinstance(ident, int) and ident else None
        contact = contact or (state.contact_by_email(email) if isinstance(email, str) else None)
        if contact is None:
            missing.append({"id": ident or 0, "email": email})
        else:
            state.suppress(contact, "Suppressed")
            suppressed.append({"id": contact.id, "email": contact.email})
    return _ok({"suppressed": suppressed, "notFound": missing})


async def resubscribe(state: DotdigitalState, request: Request) -> Response:
    wanted = _key(await _json(request), "unsubscribedContact")
    status, contact = state.resubscribe(str(_key(wanted, "email") or ""), _data_pairs(wanted))
    return _ok({"contact": None if contact is None else _contact(state, contact), "status": status})


async def submit_import(state: DotdigitalState, request: Request) -> Response:
    book_id = _path_int(request, "id") if "id" in request.path_params else None
    job = state.submit_import(book_id, await _import_file(request))
    return _ok({"id": job.id, "status": job.status}, 202)


async def import_status(state: DotdigitalState, request: Request) -> Response:
    job = state.poll_import(request.path_params["id"])
    return _ok({"id": job.id, "status": job.status})


async def import_report(state: DotdigitalState, request: Request) -> Response:
    job = state.import_job(request.path_params["id"])
    if job.report is None:
        raise ApiError(
            400, "Import is not processed yet or completed with error. ERROR_IMPORT_REPORT_NOT_FOUND"
        )
    return _ok(job.report)


async def import_faults(state: DotdigitalState, request: Request) -> Response:
    job = state.import_job(request.path_params["id"])
    if job.report is None:
        raise ApiError(
            400, "Import is not processed yet or completed with error. ERROR_IMPORT_REPORT_NOT_FOUND"
        )
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(job.faults)
    return Response(out.getvalue().encode("utf-8"), media_type="text/csv; charset=utf-8")


async def list_fields(state: DotdigitalState, request: Request) -> Response:
    return _ok([f.wire() for f in state.data_fields.values()])


async def create_field(state: DotdigitalState, request: Request) -> Response:
    body = await _json(request)
    created = state.create_data_field(
        str(_key(body, "name") or ""), str(_key(body, "type") or ""), _key(body, "visibility") or "Private",
        _key(body, "defaultValue"),
    )  # fmt: skip
    return _ok(created.wire(), 201)


async def delete_field(state: DotdigitalState, request: Request) -> Response:
    state.delete_data_field(request.path_params["name"])
    return _ok({"dependencies": [], "result": True})


async def list_campaigns(state: DotdigitalState, request: Request) -> Response:
    return _ok([_campaign(c) for c in _page(request, list(state.campaigns.values()))])


async def campaigns_with_activity(state: DotdigitalState, request: Request) -> Response:
    return _ok([_campaign(c) for c in _page(request, state.campaigns_with_activity_since(_date(request)))])


def _campaign_of(state: DotdigitalState, request: Request) -> Campaign:
    return state.campaign(_path_int(request, "id"))


async def campaign_summary(state: DotdigitalState, request: Request) -> Response:
    return _ok(_summary(state, _campaign_of(state, request)))


async def campaign_activities(state: DotdigitalState, request: Request) -> Response:
    campaign = _campaign_of(state, request)
    since = _date(request) if "date" in request.path_params else None
    acts = [
        a for a in campaign.activity.values() if since is None or (a.last_event and a.last_event >= since)
    ]
    return _ok([_activity(campaign, a) for a in _page(request, acts)])


async def campaign_opens(state: DotdigitalState, request: Request) -> Response:
    campaign = _campaign_of(state, request)
    since = _date(request) if "date" in request.path_params else None
    opens = [(a, when) for a in campaign.activity.values() for when in a.opens if not since or when >= since]
    opens.sort(key=lambda pair: pair[1])
    return _ok([{"contactId": a.contact_id, "email": a.email, "mailClient": "Gmail", "mailClientVersion": "",
                 "ipAddress": _ip(a.contact_id), "userAgent": _AGENT, "isHtml": True, "isForward": False,
                 "dateOpened": iso(when)} for a, when in _page(request, opens)])  # fmt: skip


async def campaign_clicks(state: DotdigitalState, request: Request) -> Response:
    campaign = _campaign_of(state, request)
    since = _date(request) if "date" in request.path_params else None
    clicks = sorted(((a, url, when) for a in campaign.activity.values() for url, when in a.clicks
                     if not since or when >= since), key=lambda row: row[2])  # fmt: skip
    return _ok([{"contactId": a.contact_id, "email": a.email, "url": url, "ipAddress": _ip(a.contact_id),
                 "userAgent": _AGENT, "dateClicked": iso(when), "keyword": ""}
                for a, url, when in _page(request, clicks)])  # fmt: skip


async def hard_bouncers(state: DotdigitalState, request: Request) -> Response:
    campaign = _campaign_of(state, request)
    bounced = [state.contacts[a.contact_id] for a in campaign.activity.values() if a.hard_bounced]
    return _ok(
        [_contact(state, c, _full(request)) for c in _page(request, bounced) if c.status in SUPPRESSED]
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
    ("GET", _C + "/activities", campaign_activities),
    ("GET", _C + "/activities/since-date/{date}", campaign_activities),
    ("GET", _C + "/opens", campaign_opens),
    ("GET", _C + "/opens/since-date/{date}", campaign_opens),
    ("GET", _C + "/clicks", campaign_clicks),
    ("GET", _C + "/clicks/since-date/{date}", campaign_clicks),
    ("GET", _C + "/hard-bouncing-contacts", hard_bouncers),
]
