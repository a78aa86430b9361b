"""The Mailchimp emulator's route table and handlers: one small function per 3.0 endpoint listsync uses.

Split from ``emulator.py`` so that module stays the HTTP skin (auth, the connection cap, faults, problem
documents). Each handler parses with ``emulator_wire``, asks ``MailchimpState`` and renders with
``emulator_wire``; ``ROUTES`` lists (method, path, handler) for ``create_app``. A batch is run when a
poll finds it finished, through ``emulator_batches``, against these same handlers.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response

from adapters.mailchimp import emulator_batches, emulator_members
from adapters.mailchimp.emulator_data import STATUSES, Audience, Campaign, Recipient, iso
from adapters.mailchimp.emulator_state import MailchimpState, invalid
from adapters.mailchimp.emulator_wire import (
    bulk_answer,
    flag,
    listing,
    ok,
    page,
    read_json,
    render_audience,
    render_batch,
    render_campaign,
    render_member,
    render_merge_field,
    render_report,
    render_segment,
    time_param,
)

Handler = Callable[[MailchimpState, Request], Awaitable[Response]]


def _audience(state: MailchimpState, request: Request) -> Audience:
    return state.audience(request.path_params["list_id"])


def _campaign(state: MailchimpState, request: Request) -> Campaign:
    return state.campaign(request.path_params["campaign_id"])


async def ping(state: MailchimpState, request: Request) -> Response:
    return ok({"health_status": "Everything's Chimpy!"})


async def list_audiences(state: MailchimpState, request: Request) -> Response:
    audiences = list(state.audiences.values())
    constraints = {"may_create": True, "max_instances": 1, "current_total_instances": len(audiences)}
    items = [render_audience(state, a) for a in page(request, audiences)]
    return listing("lists", items, len(audiences), constraints=constraints)


async def get_audience(state: MailchimpState, request: Request) -> Response:
    return ok(render_audience(state, _audience(state, request)))


async def batch_subscribe(state: MailchimpState, request: Request) -> Response:
    audience, body = _audience(state, request), await read_json(request)
    members = body.get("members")
    if not isinstance(members, list):
        raise invalid("members must be an array.")
    new, updated, errors = emulator_members.batch_subscribe(
        state, audience, members, update_existing=bool(body.get("update_existing"))
    )
    return bulk_answer(
        audience,
        {"new_members": ("total_created", new), "updated_members": ("total_updated", updated)},
        errors,
    )


async def list_members(state: MailchimpState, request: Request) -> Response:
    audience = _audience(state, request)
    status = request.query_params.get("status")
    if status is not None and status not in (*STATUSES, "archived"):
        raise invalid(f"status must be one of {', '.join((*STATUSES, 'archived'))}.")
    since, before = time_param(request, "since_last_changed"), time_param(request, "before_last_changed")
    found = [
        m
        for m in audience.members.values()
        if (m.status == status if status else m.status != "archived")
        and (since is None or m.last_changed >= since)
        and (before is None or m.last_changed < before)
    ]
    items = [render_member(audience, m) for m in page(request, found)]
    return listing("members", items, len(found), list_id=audience.id)


async def add_member(state: MailchimpState, request: Request) -> Response:
    audience = _audience(state, request)
    member, _ = emulator_members.upsert(state, audience, await read_json(request), create_only=True)
    return ok(render_member(audience, member))


async def get_member(state: MailchimpState, request: Request) -> Response:
    audience = _audience(state, request)
    return ok(render_member(audience, state.member(audience, request.path_params["subscriber_hash"])))


async def put_member(state: MailchimpState, request: Request) -> Response:
    audience = _audience(state, request)
    key = request.path_params["subscriber_hash"]
    member, _ = emulator_members.upsert(state, audience, await read_json(request), key=key)
    return ok(render_member(audience, member))


async def patch_member(state: MailchimpState, request: Request) -> Response:
    audience = _audience(state, request)
    member = state.member(audience, request.path_params["subscriber_hash"], archived=False)
    body = {**await read_json(request), "email_address": member.email}
    updated, _ = emulator_members.upsert(state, audience, body, key=member.id)
    return ok(render_member(audience, updated))


async def archive_member(state: MailchimpState, request: Request) -> Response:
    state.archive(_audience(state, request), request.path_params["subscriber_hash"])
    return Response(status_code=204)


async def delete_permanent(state: MailchimpState, request: Request) -> Response:
    state.delete_permanently(_audience(state, request), request.path_params["subscriber_hash"])
    return Response(status_code=204)


async def member_tags(state: MailchimpState, request: Request) -> Response:
    audience = _audience(state, request)
    member = state.member(audience, request.path_params["subscriber_hash"])
    tags = (await read_json(request)).get("tags")
    if not isinstance(tags, list) or not all(
        isinstance(t, dict) and t.get("name") and t.get("status") in ("active", "inactive") for t in tags
    ):
        raise invalid("tags must be an array of {name, status} with status active or inactive.")
    state.set_tags(audience, member, [(str(t["name"]), t["status"] == "active") for t in tags])
    return Response(status_code=204)


async def list_merge_fields(state: MailchimpState, request: Request) -> Response:
    audience = _audience(state, request)
    fields = list(audience.merge_fields.values())
    items = [render_merge_field(audience, f) for f in page(request, fields)]
    return listing(
        "merge_fields",
        items,
        len(fields),
        list_id=audience.id,
        merge_field_limit=state.knobs.merge_field_limit,
    )


async def add_merge_field(state: MailchimpState, request: Request) -> Response:
    audience = _audience(state, request)
    return ok(render_merge_field(audience, state.create_merge_field(audience, await read_json(request))))


def _counted(request: Request) -> frozenset[str]:
    extra = {"unsubscribed", "cleaned", "transactional"}
    return frozenset({"subscribed", "pending", *(s for s in extra if flag(request, f"include_{s}"))})


async def list_segments(state: MailchimpState, request: Request) -> Response:
    audience = _audience(state, request)
    wanted = request.query_params.get("type")
    segments = [] if wanted not in (None, "static") else list(audience.segments.values())
    items = [render_segment(audience, s, _counted(request)) for s in page(request, segments)]
    return listing("segments", items, len(segments), list_id=audience.id)


async def add_segment(state: MailchimpState, request: Request) -> Response:
    audience, body = _audience(state, request), await read_json(request)
    emails = body.get("static_segment")
    if not isinstance(emails, list):
        raise invalid("Only static segments (with static_segment) can be made here.")
    segment = state.create_segment(audience, str(body.get("name") or ""), [str(e) for e in emails])
    return ok(render_segment(audience, segment, _counted(request)))


async def get_segment(state: MailchimpState, request: Request) -> Response:
    audience = _audience(state, request)
    segment = state.segment(audience, request.path_params["segment_id"])
    return ok(render_segment(audience, segment, _counted(request)))


async def segment_members(state: MailchimpState, request: Request) -> Response:
    audience, body = _audience(state, request), await read_json(request)
    segment = state.segment(audience, request.path_params["segment_id"])
    add, remove = body.get("members_to_add") or [], body.get("members_to_remove") or []
    added, removed, errors = state.segment_members(
        audience, segment, [str(e) for e in add], [str(e) for e in remove]
    )
    return bulk_answer(
        audience,
        {"members_added": ("total_added", added), "members_removed": ("total_removed", removed)},
        errors,
    )


async def list_campaigns(state: MailchimpState, request: Request) -> Response:
    since, before = time_param(request, "since_send_time"), time_param(request, "before_send_time")
    list_id, status = request.query_params.get("list_id"), request.query_params.get("status")
    found = [
        c
        for c in sorted(state.campaigns.values(), key=lambda c: c.send_time)
        if (list_id is None or c.list_id == list_id)
        and status in (None, "sent")
        and (since is None or c.send_time >= since)
        and (before is None or c.send_time < before)
    ]
    return listing("campaigns", [render_campaign(state, c) for c in page(request, found)], len(found))


async def get_campaign(state: MailchimpState, request: Request) -> Response:
    return ok(render_campaign(state, _campaign(state, request)))


async def get_report(state: MailchimpState, request: Request) -> Response:
    return ok(render_report(state, _campaign(state, request)))


def _actions(recipient: Recipient) -> list[tuple[str, dict[str, str]]]:
    """(timestamp, activity) of every open, click and bounce, in time order."""
    ip = "203.0.113." + str(int(recipient.member_id[:2], 16) % 250 + 1)
    acts = [(iso(w), {"action": "open", "ip": ip}) for w in recipient.opens]
    acts += [(iso(w), {"action": "click", "url": url, "ip": ip}) for url, w in recipient.clicks]
    if recipient.bounce:
        acts.append((iso(recipient.bounce[1]), {"action": "bounce", "type": recipient.bounce[0]}))
    return [(at, {**act, "timestamp": at}) for at, act in sorted(acts, key=lambda pair: pair[0])]


async def email_activity(state: MailchimpState, request: Request) -> Response:
    campaign = _campaign(state, request)
    since = time_param(request, "since")
    rows = []
    for recipient in campaign.recipients.values():
        acts = [a for at, a in _actions(recipient) if since is None or at >= iso(since)]
        if acts or since is None:
            rows.append({
                "campaign_id": campaign.id, "list_id": campaign.list_id, "list_is_active": True,
                "email_id": recipient.member_id, "email_address": recipient.email, "activity": acts,
                "_links": [],
            })  # fmt: skip
    return listing("emails", page(request, rows), len(rows), campaign_id=campaign.id)


async def unsubscribed(state: MailchimpState, request: Request) -> Response:
    campaign = _campaign(state, request)
    audience = state.audience(campaign.list_id)
    rows = [
        {"email_id": r.member_id, "email_address": r.email, "timestamp": iso(r.unsubscribed[1]),
         "reason": r.unsubscribed[0], "campaign_id": campaign.id, "list_id": campaign.list_id,
         "list_is_active": True, "vip": False,
         "merge_fields": audience.members[r.member_id].merge if r.member_id in audience.members else {},
         "_links": []}
        for r in campaign.recipients.values() if r.unsubscribed
    ]  # fmt: skip
    return listing("unsubscribes", page(request, rows), len(rows), campaign_id=campaign.id)


async def start_batch(state: MailchimpState, request: Request) -> Response:
    batch = state.submit_batch((await read_json(request)).get("operations"))
    return ok(render_batch(batch, ""))


async def list_batches(state: MailchimpState, request: Request) -> Response:
    batches = list(state.batches.values())
    items = [render_batch(b, emulator_batches.results_url(request, b)) for b in page(request, batches)]
    return listing("batches", items, len(batches))


async def get_batch(state: MailchimpState, request: Request) -> Response:
    batch = state.poll_batch(request.path_params["batch_id"])
    if batch.status == "finished" and batch.archive is None:
        await emulator_batches.run(state, batch, request.app.state.dispatch)
    return ok(render_batch(batch, emulator_batches.results_url(request, batch)))


_L, _M = "/3.0/lists/{list_id}", "/3.0/lists/{list_id}/members/{subscriber_hash}"
ROUTES: list[tuple[str, str, Handler]] = [
    ("GET", "/3.0/ping", ping),
    ("GET", "/3.0/lists", list_audiences),
    ("GET", _L, get_audience),
    ("POST", _L, batch_subscribe),
    ("GET", _L + "/members", list_members),
    ("POST", _L + "/members", add_member),
    ("GET", _M, get_member),
    ("PUT", _M, put_member),
    ("PATCH", _M, patch_member),
    ("DELETE", _M, archive_member),
    ("POST", _M + "/actions/delete-permanent", delete_permanent),
    ("POST", _M + "/tags", member_tags),
    ("GET", _L + "/merge-fields", list_merge_fields),
    ("POST", _L + "/merge-fields", add_merge_field),
    ("GET", _L + "/segments", list_segments),
    ("POST", _L + "/segments", add_segment),
    ("GET", _L + "/segments/{segment_id}", get_segment),
    ("POST", _L + "/segments/{segment_id}", segment_members),
    ("GET", "/3.0/campaigns", list_campaigns),
    ("GET", "/3.0/campaigns/{campaign_id}", get_campaign),
    ("GET", "/3.0/reports/{campaign_id}", get_report),
    ("GET", "/3.0/reports/{campaign_id}/email-activity", email_activity),
    ("GET", "/3.0/reports/{campaign_id}/unsubscribed", unsubscribed),
    ("POST", "/3.0/batches", start_batch),
    ("GET", "/3.0/batches", list_batches),
    ("GET", "/3.0/batches/{batch_id}", get_batch),
]
