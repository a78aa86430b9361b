"""Request parsing and JSON rendering for the Dotdigital emulator: the v2 wire format, in one place.

It exists so the route handlers (``emulator_routes.py``) read as "parse, ask ``DotdigitalState``, render"
and the guard (``emulator.py``) stays about HTTP. Parsing turns bodies, path and query parameters into
Python values (accepting v2's PascalCase keys, paging with ``select``/``skip``, imports as multipart or
``ApiFileMedia``) and refuses bad ones with ``ApiError``; rendering builds the camelCase bodies of
``ApiContact``, ``ApiContactSuppression``, ``ApiCampaign``, ``ApiCampaignSummary`` and
``ApiCampaignContactSummary``.
"""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.dotdigital.emulator_data import Activity, Campaign, Contact, Suppression, iso, parse_date
from adapters.dotdigital.emulator_state import ApiError, DotdigitalState

USER_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0"


# -- request parsing ---------------------------------------------------------------------------------
async def read_json(request: Request) -> Any:
    try:
        return json.loads(await request.body())
    except ValueError:
        raise ApiError(400, "The request body is not valid JSON. ERROR_INVALID_REQUEST") from None


def body_key(body: Any, name: str) -> Any:
    """v2 also accepts PascalCase keys (the Magento client sends ``Name``)."""
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object. ERROR_INVALID_REQUEST")
    return body.get(name, body.get(name[:1].upper() + name[1:]))


def int_param(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ApiError(400, f"The value '{text}' is not valid. ERROR_PARAMETER_INVALID") from None


def path_int(request: Request, name: str) -> int:
    return int_param(request.path_params[name])


def page(request: Request, items: list[Any]) -> list[Any]:
    select = int_param(request.query_params.get("select", "1000"))
    skip = int_param(request.query_params.get("skip", "0"))
    if not 1 <= select <= 1000 or skip < 0:
        raise ApiError(
            400, "Select must be between 1 and 1000 and skip not negative. ERROR_PARAMETER_INVALID"
        )
    return items[skip : skip + select]


def full_data(request: Request) -> bool:
    return request.query_params.get("withFullData", "false").lower() == "true"


def date_param(request: Request) -> Any:
    try:
        return parse_date(request.path_params["date"])
    except ValueError:
        raise ApiError(
            400, f"The date '{request.path_params['date']}' is not valid. ERROR_INVALID_DATE"
        ) from None


def data_pairs(body: Any) -> dict[str, Any]:
    pairs = body_key(body, "dataFields") or []
    return {str(body_key(p, "key")): body_key(p, "value") for p in pairs}


async def import_file(request: Request) -> bytes | None:
    """An import's upload: multipart field ``file`` (real clients) or JSON ``ApiFileMedia`` (the spec)."""
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        async with request.form() as form:
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                raise ApiError(400, "No file was uploaded in the 'file' field. ERROR_FILE_NOT_FOUND")
            return await upload.read()
    data = body_key(await read_json(request), "data")
    if not isinstance(data, str):
        raise ApiError(400, "The file data is missing. ERROR_FILE_NOT_FOUND")
    try:
        return base64.b64decode(data, validate=True)
    except binascii.Error:
        return None  # the job ends InvalidFileFormat, as an unreadable upload does


# -- rendering ---------------------------------------------------------------------------------------
def ok(body: Any, status: int = 200) -> Response:
    return JSONResponse(body, status)


def render_contact(state: DotdigitalState, contact: Contact, full: bool = True) -> dict[str, Any]:
    fields = [{"key": f.name, "value": contact.data.get(f.name)} for f in state.data_fields.values()]
    return {
        "id": contact.id,
        "email": contact.email,
        "optInType": contact.opt_in_type,
        "emailType": contact.email_type,
        "dataFields": fields if full else None,
        "status": contact.status,
    }


def render_suppression(state: DotdigitalState, entry: Suppression) -> dict[str, Any]:
    contact = render_contact(state, state.contacts[entry.contact_id], full=False)
    return {"suppressedContact": contact, "dateRemoved": iso(entry.date_removed), "reason": entry.reason}


def render_campaign(campaign: Campaign) -> dict[str, Any]:
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


def render_summary(state: DotdigitalState, campaign: Campaign) -> dict[str, Any]:
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


def render_activity(campaign: Campaign, act: Activity) -> dict[str, Any]:
    body: dict[str, Any] = {
        "contactId": act.contact_id, "email": act.email, "numOpens": len(act.opens), "numPageViews": 0,
        "numClicks": len(act.clicks), "numForwards": 0, "numEstimatedForwards": 0, "numReplies": 0,
        "dateSent": iso(campaign.date_sent), "firstOpenIp": fake_ip(act.contact_id) if act.opens else "",
        "unsubscribed": act.unsubscribed, "softBounced": act.soft_bounced, "hardBounced": act.hard_bounced,
    }  # fmt: skip
    if act.opens:
        body |= {"dateFirstOpened": iso(act.opens[0]), "dateLastOpened": iso(act.opens[-1])}
    return body


def fake_ip(contact_id: int) -> str:
    return f"203.0.113.{contact_id % 250 + 1}"
