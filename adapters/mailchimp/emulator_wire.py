"""Request parsing and JSON rendering for the Mailchimp emulator: the 3.0 wire format, in one place.

It exists so the route handlers (``emulator_routes.py``) read as "parse, ask ``MailchimpState``, render"
and the guard (``emulator.py``) stays about HTTP. Parsing turns bodies and query parameters into Python
values (``count``/``offset`` paging, ISO 8601 times, booleans) and refuses bad ones with ``ApiError``;
rendering builds the bodies the OpenAPI document describes (``ListMembers``, ``MergeField``, segments,
``SubscriberList``, ``Campaign``, ``CampaignReport``, ``EmailActivity``, ``Unsubscribes``, ``Batch``).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from adapters.mailchimp.emulator_data import (
    Audience,
    Batch,
    Campaign,
    Member,
    MergeField,
    Segment,
    iso,
    parse_time,
)
from adapters.mailchimp.emulator_state import ApiError, MailchimpState, invalid

PAGE_MAX = 1000


# -- request parsing ---------------------------------------------------------------------------------
async def read_json(request: Request) -> Any:
    try:
        body = json.loads(await request.body())
    except ValueError:
        raise ApiError(
            400, "JSON Parse Exception", "We encountered an unspecified JSON parsing error."
        ) from None
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object.")
    return body


def page(request: Request, items: list[Any]) -> list[Any]:
    """One page of ``items`` by ``count`` (default 10, at most 1000) and ``offset``."""
    try:
        count = int(request.query_params.get("count", "10"))
        offset = int(request.query_params.get("offset", "0"))
    except ValueError:
        raise invalid("count and offset must be whole numbers.") from None
    if not 1 <= count <= PAGE_MAX or offset < 0:
        raise invalid(f"count must be 1 to {PAGE_MAX} and offset not negative.")
    return items[offset : offset + count]


def time_param(request: Request, name: str) -> datetime | None:
    text = request.query_params.get(name)
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise invalid(f"{name} must be an ISO 8601 time such as 2015-10-21T15:41:36+00:00.") from None


def flag(request: Request, name: str) -> bool:
    return request.query_params.get(name, "false").lower() == "true"


PROBLEM_TYPE = "https://mailchimp.com/developer/marketing/docs/errors/"


def problem_body(status: int, title: str, detail: str, instance: str, errors: Any = None) -> dict[str, Any]:
    """An RFC 9457 problem document as Mailchimp sends it (``errors`` only on validation failures)."""
    body: dict[str, Any] = {"type": PROBLEM_TYPE, "title": title, "status": status, "detail": detail}
    body["instance"] = instance
    if errors:
        body["errors"] = errors
    return body


def problem(state: MailchimpState, error: ApiError, headers: dict[str, str] | None = None) -> Response:
    instance = state.new_uuid()
    body = problem_body(error.status, error.title, error.detail, instance, error.errors)
    return Response(
        json.dumps(body).encode(),
        error.status,
        headers={"X-Request-Id": instance, **(headers or {})},
        media_type="application/problem+json; charset=utf-8",
    )


def partial(body: Any, fields: str | None, exclude: str | None) -> Any:
    """``body`` cut down by the ``fields`` and ``exclude_fields`` parameters (comma-separated dotted
    paths, such as ``members.email_address``; a path into a list applies to each of its items)."""

    def paths(text: str | None) -> list[list[str]]:
        return [p.strip().split(".") for p in (text or "").split(",") if p.strip()]

    def cut(value: Any, wanted: list[list[str]], keep: bool) -> Any:
        if isinstance(value, list):
            return [cut(item, wanted, keep) for item in value]
        if not isinstance(value, dict):
            return value
        out = {}
        for key, item in value.items():
            deeper = [p[1:] for p in wanted if p[0] == key]
            whole = any(not p for p in deeper)
            if keep and deeper:
                out[key] = item if whole else cut(item, [p for p in deeper if p], keep)
            elif not keep and not whole:
                out[key] = cut(item, deeper, keep) if deeper else item
        return out

    if fields:
        body = cut(body, paths(fields), True)
    return cut(body, paths(exclude), False) if exclude else body


def ok(body: Any, status: int = 200) -> Response:
    return JSONResponse(body, status)


def listing(name: str, items: list[Any], total: int, **extra: Any) -> Response:
    return ok({name: items, "total_items": total, **extra, "_links": []})


def bulk_answer(
    audience: Audience, groups: dict[str, tuple[str, list[Member]]], errors: list[dict[str, Any]]
) -> Response:
    """A bulk call's answer: each group of members under its name, with its count under ``total``."""
    body: dict[str, Any] = {}
    for name, (total, members) in groups.items():
        body[name], body[total] = [render_member(audience, m) for m in members], len(members)
    return ok({**body, "errors": errors, "error_count": len(errors), "_links": []})


# -- rendering ---------------------------------------------------------------------------------------
def render_member(audience: Audience, member: Member) -> dict[str, Any]:
    tags = [{"id": s.id, "name": s.name} for s in audience.tags_of(member.id)]
    body: dict[str, Any] = {
        "id": member.id, "email_address": member.email, "unique_email_id": member.unique_email_id,
        "contact_id": member.contact_id, "web_id": member.web_id, "email_type": "html",
        "status": member.status, "consents_to_one_to_one_messaging": True,
        "merge_fields": {tag: member.merge.get(tag, "") for tag in audience.merge_fields},
        "interests": {}, "stats": {"avg_open_rate": 0, "avg_click_rate": 0},
        "ip_signup": "", "timestamp_signup": iso(member.signed_up), "ip_opt": "198.51.100.7",
        "timestamp_opt": iso(member.signed_up), "member_rating": 2, "last_changed": iso(member.last_changed),
        "language": "", "vip": False, "email_client": "", "source": member.source,
        "location": {"latitude": 0, "longitude": 0, "gmtoff": 0, "dstoff": 0, "country_code": "",
                     "timezone": "", "region": ""},
        "tags_count": len(tags), "tags": tags, "list_id": audience.id, "_links": [],
    }  # fmt: skip
    if member.status == "unsubscribed":
        body["unsubscribe_reason"] = member.unsubscribe_reason
    return body


def render_merge_field(audience: Audience, field: MergeField) -> dict[str, Any]:
    options: dict[str, Any] = {"choices": list(field.choices)} if field.choices else {}
    if field.type == "date":
        options["date_format"] = "YYYY-MM-DD"
    return {
        "merge_id": field.merge_id, "tag": field.tag, "name": field.name, "type": field.type,
        "required": field.required, "default_value": field.default_value, "public": field.public,
        "display_order": field.merge_id, "options": options, "help_text": "", "list_id": audience.id,
        "_links": [],
    }  # fmt: skip


def render_segment(audience: Audience, segment: Segment, counted: frozenset[str]) -> dict[str, Any]:
    """A tag; ``member_count`` counts members whose status is in ``counted``."""
    members = sum(
        1 for h in segment.members if h in audience.members and audience.members[h].status in counted
    )
    return {
        "id": segment.id, "name": segment.name, "member_count": members, "type": "static",
        "created_at": iso(segment.created_at), "updated_at": iso(segment.updated_at),
        "options": {"match": "any", "conditions": []}, "list_id": audience.id, "_links": [],
    }  # fmt: skip


def render_audience(state: MailchimpState, audience: Audience) -> dict[str, Any]:
    statuses = [m.status for m in audience.members.values()]
    sent = [c for c in state.campaigns.values() if c.list_id == audience.id]
    stats: dict[str, Any] = {
        "member_count": statuses.count("subscribed"), "unsubscribe_count": statuses.count("unsubscribed"),
        "cleaned_count": statuses.count("cleaned"), "member_count_since_send": 0,
        "unsubscribe_count_since_send": 0, "cleaned_count_since_send": 0, "campaign_count": len(sent),
        "merge_field_count": len(audience.merge_fields), "avg_sub_rate": 0, "avg_unsub_rate": 0,
        "target_sub_rate": 0, "open_rate": 0, "click_rate": 0,
    }  # fmt: skip
    for key, moment in (
        ("last_sub_date", audience.last_sub),
        ("last_unsub_date", audience.last_unsub),
        ("campaign_last_sent", max((c.send_time for c in sent), default=None)),
    ):
        if moment is not None:
            stats[key] = iso(moment)
    return {
        "id": audience.id, "web_id": audience.web_id, "name": audience.name,
        "contact": {"company": "Listsync Emulator Ltd", "address1": "1 High Street", "address2": "",
                    "city": "Leeds", "state": "West Yorkshire", "zip": "LS1 1AA", "country": "GB",
                    "phone": ""},
        "permission_reminder": "You signed up on our website.", "use_archive_bar": False,
        "campaign_defaults": {"from_name": "Listsync Demo", "from_email": "news@example.com",
                              "subject": "", "language": "en"},
        "notify_on_subscribe": "", "notify_on_unsubscribe": "", "date_created": iso(audience.created),
        "list_rating": 3, "email_type_option": False, "subscribe_url_short": "https://eepurl.com/emulated",
        "subscribe_url_long": f"https://example.us21.list-manage.com/subscribe?id={audience.id}",
        "beamer_address": f"us21-{audience.id}@inbound.mailchimp.com", "visibility": "prv",
        "double_optin": False, "has_welcome": False, "marketing_permissions": False, "modules": [],
        "stats": stats, "_links": [],
    }  # fmt: skip


def render_campaign(state: MailchimpState, campaign: Campaign) -> dict[str, Any]:
    audience = state.audience(campaign.list_id)
    segment = audience.segments.get(campaign.segment_id) if campaign.segment_id is not None else None
    recipients = campaign.recipients.values()
    opened = [r for r in recipients if r.opens]
    clicked = [r for r in recipients if r.clicks]
    sent = len(campaign.recipients)
    options: dict[str, Any] = {"match": "all", "conditions": []}
    if campaign.segment_id is not None:
        options["saved_segment_id"] = campaign.segment_id
    return {
        "id": campaign.id, "web_id": campaign.web_id, "type": "regular", "create_time": iso(campaign.created),
        "archive_url": f"https://eepurl.com/{campaign.id}",
        "long_archive_url": f"https://us21.campaign-archive.com/?id={campaign.id}",
        "status": "sent", "emails_sent": sent, "send_time": iso(campaign.send_time),
        "content_type": "template",
        "needs_block_refresh": False, "resendable": False,
        "recipients": {"list_id": audience.id, "list_is_active": True, "list_name": audience.name,
                       "segment_text": f"Tagged {segment.name}" if segment else "", "recipient_count": sent,
                       "segment_opts": options},
        "settings": {"subject_line": campaign.subject, "title": campaign.title, "from_name": "Listsync Demo",
                     "reply_to": "news@example.com"},
        "tracking": {"opens": True, "html_clicks": True, "text_clicks": False},
        "report_summary": {"opens": sum(len(r.opens) for r in opened), "unique_opens": len(opened),
                           "open_rate": round(len(opened) / sent, 4) if sent else 0,
                           "clicks": sum(len(r.clicks) for r in clicked), "subscriber_clicks": len(clicked),
                           "click_rate": round(len(clicked) / sent, 4) if sent else 0},
        "delivery_status": {"enabled": False}, "_links": [],
    }  # fmt: skip


def render_report(state: MailchimpState, campaign: Campaign) -> dict[str, Any]:
    summary = render_campaign(state, campaign)
    recipients = list(campaign.recipients.values())
    opens = [when for r in recipients for when in r.opens]
    clicks = [when for r in recipients for _, when in r.clicks]
    bounces = [r.bounce[0] for r in recipients if r.bounce]
    sent, numbers = len(recipients), summary["report_summary"]
    body: dict[str, Any] = {
        "id": campaign.id, "campaign_title": campaign.title, "type": "regular", "list_id": campaign.list_id,
        "list_is_active": True, "list_name": summary["recipients"]["list_name"],
        "subject_line": campaign.subject,
        "preview_text": "", "emails_sent": sent, "abuse_reports": sum(r.complained for r in recipients),
        "unsubscribed": sum(1 for r in recipients if r.unsubscribed), "send_time": iso(campaign.send_time),
        "bounces": {"hard_bounces": bounces.count("hard"), "soft_bounces": bounces.count("soft"),
                    "syntax_errors": 0},
        "forwards": {"forwards_count": 0, "forwards_opens": 0},
        "opens": {"opens_total": len(opens), "unique_opens": numbers["unique_opens"],
                  "open_rate": numbers["open_rate"]},
        "clicks": {"clicks_total": len(clicks), "unique_clicks": numbers["subscriber_clicks"],
                   "unique_subscriber_clicks": numbers["subscriber_clicks"],
                   "click_rate": numbers["click_rate"]},
        "_links": [],
    }  # fmt: skip
    if opens:
        body["opens"]["last_open"] = iso(max(opens))
    if clicks:
        body["clicks"]["last_click"] = iso(max(clicks))
    return body


def render_batch(batch: Batch, results_url: str) -> dict[str, Any]:
    return {
        "id": batch.id, "status": batch.status, "total_operations": len(batch.operations),
        "finished_operations": batch.finished_operations, "errored_operations": batch.errored_operations,
        "submitted_at": iso(batch.submitted_at),
        "completed_at": iso(batch.completed_at) if batch.completed_at else "",
        "response_body_url": results_url if batch.archive is not None else "", "_links": [],
    }  # fmt: skip
