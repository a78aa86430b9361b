"""The Constant Contact v3 emulator behaves as the published API does, and its JSON matches the Swagger.

The vendor publishes Swagger 2.0, which openapi-core cannot read, so ``conforms`` validates a response
against the operation's response schema with jsonschema, the document's ``definitions`` as the schema
store. It is stricter than the document on one point: an object that declares its properties may hold
no others, so the emulator cannot invent fields the real API does not send.
"""

from __future__ import annotations

import base64
import copy
import functools
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import jsonschema
import pytest
import yaml

from adapters.constantcontact.emulator import create_app
from adapters.constantcontact.emulator_generate import SendShares, generate
from adapters.constantcontact.emulator_state import ConstantContactState, Knobs
from tests.emulators.test_loopback import emulator

SPEC = (
    Path(__file__).resolve().parents[3]
    / "shared/vendor-specs/constant-contact/constant-contact-v3-swagger.yaml"
)
BASE = "https://api.cc.email"
SCOPES = "contact_data campaign_data offline_access"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@functools.cache
def spec() -> dict[str, Any]:
    document: dict[str, Any] = yaml.load(
        SPEC.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    )
    return document


@functools.cache
def strict_definitions() -> dict[str, Any]:
    definitions = copy.deepcopy(spec()["definitions"])

    def close(node: Any) -> None:
        if isinstance(node, dict):
            if "properties" in node and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(definitions)
    return definitions


_FORMATS = jsonschema.FormatChecker(formats=())


@_FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    return not isinstance(value, str) or bool(datetime.fromisoformat(value.replace("Z", "+00:00")))


@_FORMATS.checks("date", raises=ValueError)
def _date(value: object) -> bool:
    return not isinstance(value, str) or bool(date.fromisoformat(value))


@_FORMATS.checks("uuid", raises=ValueError)
def _uuid(value: object) -> bool:
    return not isinstance(value, str) or bool(uuid.UUID(value))


def conforms(response: httpx.Response, pattern: str) -> Any:
    """Validate ``response`` against the spec's operation at ``pattern`` (a path under /v3); its JSON."""
    operation = spec()["paths"][pattern][response.request.method.lower()]
    declared = operation["responses"].get(str(response.status_code))
    assert declared is not None, f"{pattern} does not document status {response.status_code}"
    body = response.json()
    if "schema" in declared:
        schema = {**declared["schema"], "definitions": strict_definitions()}
        jsonschema.Draft4Validator(schema, format_checker=_FORMATS).validate(body)
    return body


@asynccontextmanager
async def client(state: ConstantContactState | None = None, **knobs: Any) -> AsyncIterator[httpx.AsyncClient]:
    state = state or ConstantContactState(Knobs(**{"rate_limited": False, **knobs}))
    token = state.grants.issue(SCOPES)["access_token"]
    headers = {"Authorization": f"Bearer {token}"}
    transport = httpx.ASGITransport(app=create_app(state))
    async with httpx.AsyncClient(transport=transport, base_url=BASE, headers=headers) as http:
        yield http


async def finish(http: httpx.AsyncClient, activity_id: str, polls: int = 10) -> list[str]:
    seen = []
    for _ in range(polls):
        seen.append(
            conforms(await http.get(f"/v3/activities/{activity_id}"), "/activities/{activity_id}")["state"]
        )
        if seen[-1] not in ("initialized", "processing"):
            break
    return seen


def _basic(knobs: Knobs) -> dict[str, str]:
    pair = base64.b64encode(f"{knobs.client_id}:{knobs.client_secret}".encode()).decode()
    return {"Authorization": f"Basic {pair}"}


@pytest.mark.asyncio
async def test_api_calls_need_a_live_bearer_token() -> None:
    clock = FakeClock()
    state = ConstantContactState(Knobs(rate_limited=False, access_ttl=60), clock=clock)
    token = state.grants.issue(SCOPES)["access_token"]
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(state)), base_url=BASE) as http:
        none = await http.get("/v3/contact_lists")
        live = await http.get("/v3/contact_lists", headers={"Authorization": f"Bearer {token}"})
        clock.now += 61
        expired = await http.get("/v3/contact_lists", headers={"Authorization": f"Bearer {token}"})
    assert none.status_code == expired.status_code == 401 and live.status_code == 200
    assert expired.json() == {"error_key": "unauthorized", "error_message": "Unauthorized"}
    assert expired.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.asyncio
async def test_authorize_redirects_back_and_tokens_are_exchanged_refreshed_and_rotated() -> None:
    state = ConstantContactState(Knobs(rate_limited=False))
    knobs = state.knobs
    verifier = "a-verifier-of-at-least-forty-three-characters-0123456789"
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    redirect = "http://127.0.0.1:8765/callback"
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app(state)), base_url=BASE) as http:
        params = {
            "client_id": knobs.client_id, "redirect_uri": redirect, "response_type": "code", "scope": SCOPES,
            "state": "xyz", "code_challenge": challenge, "code_challenge_method": "S256",
        }  # fmt: skip
        back = await http.get("/oauth2/default/v1/authorize", params=params)
        elsewhere = await http.get(
            "/oauth2/default/v1/authorize", params={**params, "redirect_uri": "https://evil.example/cb"}
        )
        assert back.status_code == 302 and elsewhere.status_code == 400
        where = urlsplit(back.headers["location"])
        answer = {k: v[0] for k, v in parse_qs(where.query).items()}
        assert f"{where.scheme}://{where.netloc}{where.path}" == redirect and answer["state"] == "xyz"
        form = {"grant_type": "authorization_code", "code": answer["code"], "redirect_uri": redirect}
        token = "/oauth2/default/v1/token"
        unverified = await http.post(token, data=form, headers=_basic(knobs))
        back = await http.get("/oauth2/default/v1/authorize", params=params)
        code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
        form |= {"code": code, "code_verifier": verifier}
        wrong_client = await http.post(token, data=form, headers={"Authorization": "Basic eDp5"})
        granted = await http.post(token, data=form, headers=_basic(knobs))
        reused = await http.post(token, data=form, headers=_basic(knobs))
        first = granted.json()
        refresh = {"grant_type": "refresh_token", "refresh_token": first["refresh_token"]}
        renewed = await http.post(token, data=refresh, headers=_basic(knobs))
        stale = await http.post(token, data=refresh, headers=_basic(knobs))
        calls = await http.get(
            "/v3/contact_lists", headers={"Authorization": f"Bearer {renewed.json()['access_token']}"}
        )
    assert unverified.json()["error"] == "invalid_grant"
    assert wrong_client.status_code == 401 and wrong_client.json()["error"] == "invalid_client"
    assert granted.status_code == 200 and first["token_type"] == "Bearer" and first["expires_in"] == 86400
    assert reused.json()["error"] == "invalid_grant"
    assert renewed.json()["refresh_token"] != first["refresh_token"]
    assert stale.status_code == 400 and stale.json() == {
        "error": "invalid_grant",
        "error_description": "The refresh token is invalid or expired.",
    }
    assert calls.status_code == 200


@pytest.mark.asyncio
async def test_contacts_page_by_cursor_links_with_filters() -> None:
    state = ConstantContactState(Knobs(rate_limited=False), seed=2)
    generate(state, seed=5, contacts=120, campaigns=0, unsubscribed_share=0.2)
    moved = list(state.contacts.values())[7]
    moved.updated_at = state.now()
    async with client(state) as http:
        pages, href = [], "/v3/contacts?limit=50&include=custom_fields,list_memberships&include_count=true"
        while href:
            body = conforms(await http.get(href), "/contacts")
            pages.append(body)
            href = body["_links"].get("next", {}).get("href")
        unsubscribed = conforms(await http.get("/v3/contacts?status=unsubscribed&limit=500"), "/contacts")
        updated = conforms(
            await http.get("/v3/contacts", params={"updated_after": "2025-01-06T08:59:00Z"}), "/contacts"
        )
        one = conforms(await http.get("/v3/contacts", params={"email": moved.email.upper()}), "/contacts")
        too_many = await http.get("/v3/contacts?limit=501")
    assert [len(p["contacts"]) for p in pages] == [50, 50, 20] and pages[0]["contacts_count"] == 120
    every = [c for p in pages for c in p["contacts"]]
    assert len({c["contact_id"] for c in every}) == 120
    assert all("custom_fields" in c and "list_memberships" in c for c in every)
    out = {c.email for c in state.contacts.values() if c.permission == "unsubscribed"}
    assert {c["email_address"]["address"] for c in unsubscribed["contacts"]} == out and out
    assert all(
        c["email_address"]["opt_out_source"] in ("Contact", "Account") for c in unsubscribed["contacts"]
    )
    assert [c["contact_id"] for c in updated["contacts"]] == [moved.id]
    assert [c["contact_id"] for c in one["contacts"]] == [moved.id]
    assert too_many.status_code == 400 and too_many.json()[0]["error_key"] == "contacts.api.validation.error"


@pytest.mark.asyncio
async def test_consent_account_opt_outs_can_be_lifted_a_contacts_own_cannot() -> None:
    async with client() as http:
        made = await http.post(
            "/v3/contacts",
            json={
                "email_address": {"address": "kim@example.com"},
                "create_source": "Account",
                "first_name": "Kim",
            },
        )
        kim = conforms(made, "/contacts")
        again = await http.post(
            "/v3/contacts", json={"email_address": {"address": "KIM@example.com"}, "create_source": "Account"}
        )
        path = f"/v3/contacts/{kim['contact_id']}"
        out = {
            "email_address": {"address": "kim@example.com", "permission_to_send": "unsubscribed"},
            "update_source": "Account",
        }
        unsubscribed = conforms(await http.put(path, json=out), "/contacts/{contact_id}")["email_address"]
        back = {**out, "email_address": {"address": "kim@example.com", "permission_to_send": "explicit"}}
        lifted = conforms(await http.put(path, json=back), "/contacts/{contact_id}")
        by_self = await http.put(path, json={**out, "update_source": "Contact"})
        refused = await http.put(path, json=back)
        lists = conforms(await http.post("/v3/contact_lists", json={"name": "News"}), "/contact_lists")
        signed = await http.post(
            "/v3/contacts/sign_up_form",
            json={"email_address": "kim@example.com", "list_memberships": [lists["list_id"]]},
        )
        fetched = conforms(await http.get(f"{path}?include=list_memberships"), "/contacts/{contact_id}")
    assert made.status_code == 201 and kim["email_address"]["permission_to_send"] == "implicit"
    assert again.status_code == 409
    assert (
        unsubscribed["permission_to_send"] == "unsubscribed" and unsubscribed["opt_out_source"] == "Account"
    )
    assert lifted["email_address"]["permission_to_send"] == "explicit" and "first_name" not in lifted
    assert by_self.status_code == 200 and refused.status_code == 409
    assert conforms(signed, "/contacts/sign_up_form") == {
        "contact_id": kim["contact_id"],
        "action": "updated",
    }
    assert fetched["email_address"]["permission_to_send"] == "explicit"
    assert fetched["list_memberships"] == [lists["list_id"]]


@pytest.mark.asyncio
async def test_list_names_are_unique_and_the_account_has_a_cap() -> None:
    async with client(list_limit=2) as http:
        made = await http.post("/v3/contact_lists", json={"name": "CRM Spring", "favorite": False})
        taken = await http.post("/v3/contact_lists", json={"name": "crm spring"})
        await http.post("/v3/contact_lists", json={"name": "Second"})
        over = await http.post("/v3/contact_lists", json={"name": "Third"})
        long = await http.post("/v3/contact_lists", json={"name": "x" * 256})
        listed = conforms(
            await http.get("/v3/contact_lists?include_membership_count=all&include_count=true"),
            "/contact_lists",
        )
        one = conforms(
            await http.get(f"/v3/contact_lists/{made.json()['list_id']}"), "/contact_lists/{list_id}"
        )
    assert made.status_code == 201 and conforms(made, "/contact_lists")["name"] == "CRM Spring"
    assert taken.status_code == 409 and over.status_code == 400 and long.status_code == 400
    assert [x["name"] for x in listed["lists"]] == ["CRM Spring", "Second"] and listed["lists_count"] == 2
    assert listed["lists"][0]["membership_count"] == 0 and one["name"] == "CRM Spring"


@pytest.mark.asyncio
async def test_custom_fields_limit_counts_existing_ones() -> None:
    state = ConstantContactState(Knobs(rate_limited=False, custom_field_limit=2))
    state.create_custom_field("EXISTING", "string")
    async with client(state) as http:
        made = await http.post("/v3/contact_custom_fields", json={"label": "CRM Id", "type": "string"})
        dup = await http.post("/v3/contact_custom_fields", json={"label": "CRM_Id", "type": "string"})
        full = await http.post("/v3/contact_custom_fields", json={"label": "Third", "type": "date"})
        bad = await http.post("/v3/contact_custom_fields", json={"label": "Kind", "type": "colour"})
        listed = conforms(await http.get("/v3/contact_custom_fields"), "/contact_custom_fields")
    assert conforms(made, "/contact_custom_fields")["name"] == "CRM_Id"
    assert dup.status_code == 409 and full.status_code == 400 and bad.status_code == 400
    assert [f["name"] for f in listed["custom_fields"]] == ["EXISTING", "CRM_Id"]


async def _import_world(state: ConstantContactState) -> str:
    state.create_custom_field("CITY", "string")
    state.create_custom_field("BORN", "date")
    gone = state.add_contact("gone@example.com")
    state.unsubscribe(gone, "Contact")
    return state.create_list("Imported").id


@pytest.mark.asyncio
async def test_json_import_progresses_over_polls_and_reports_row_errors() -> None:
    state = ConstantContactState(Knobs(rate_limited=False, activity_polls=2))
    list_id = await _import_world(state)
    rows = [
        {"email": "Ann@Example.com", "first_name": "Ann", "cf:CITY": "York", "cf:BORN": "05/01/1990"},
        {"email": "bob@example.com", "cf:NICKNAME": "Bobby"},
        {"email": "not-an-email"},
        {"email": "gone@example.com", "first_name": "Gone"},
        {"email": "ann@example.com", "first_name": "Twice"},
    ]
    async with client(state) as http:
        sent = await http.post(
            "/v3/activities/contacts_json_import", json={"import_data": rows, "list_ids": [list_id]}
        )
        job = conforms(sent, "/activities/contacts_json_import")
        assert sent.status_code == 201 and job["state"] == "initialized"
        assert state.contact_by_email("ann@example.com") is None  # nothing applied before it finishes
        states = await finish(http, job["activity_id"])
        done = conforms(await http.get(f"/v3/activities/{job['activity_id']}"), "/activities/{activity_id}")
        members = conforms(await http.get(f"/v3/contacts?lists={list_id}&include=custom_fields"), "/contacts")
    assert states == ["processing", "processing", "completed"]
    assert done["activity_errors"] == [
        "Line 2 (bob@example.com): custom field 'NICKNAME' does not exist",
        "Line 3 (not-an-email): the email address is not valid",
        "Line 4 (gone@example.com): the contact is unsubscribed and cannot be added to a list by an import",
        "Line 5 (ann@example.com): the email address appears twice in the import",
    ]
    assert done["status"]["person_count"] == 2 and done["status"]["cannot_add_to_list_count"] == 1
    assert [m["email_address"]["address"] for m in members["contacts"]] == ["Ann@Example.com"]
    assert {f["value"] for f in members["contacts"][0]["custom_fields"]} == {"York", "1990-05-01"}
    gone = state.contact_by_email("gone@example.com")
    assert gone is not None and gone.permission == "unsubscribed" and gone.scalars["first_name"] == "Gone"


@pytest.mark.asyncio
async def test_an_import_body_past_four_megabytes_loses_the_rows_beyond_them() -> None:
    state = ConstantContactState(Knobs(rate_limited=False, activity_polls=0, max_import_bytes=2000))
    list_id = state.create_list("Big").id
    rows = [{"email": f"p{n:03}@example.com", "first_name": "x" * 40} for n in range(60)]
    async with client(state) as http:
        sent = await http.post(
            "/v3/activities/contacts_json_import", json={"import_data": rows, "list_ids": [list_id]}
        )
        assert await finish(http, sent.json()["activity_id"]) == ["completed"]
    kept = len(state.contacts)
    assert 0 < kept < 60 and all(state.contact_by_email(f"p{n:03}@example.com") for n in range(kept))


@pytest.mark.asyncio
async def test_forced_stalled_outcomes_and_the_queued_activity_cap() -> None:
    state = ConstantContactState(Knobs(rate_limited=False, activity_polls=0, max_queued_activities=2))
    list_id = state.create_list("L").id
    body = {"import_data": [{"email": "a@example.com"}], "list_ids": [list_id]}
    async with client(state) as http:
        outcomes = []
        for outcome in ("failed", "cancelled", "timed_out"):
            state.tune(activity_outcome=outcome)
            sent = await http.post("/v3/activities/contacts_json_import", json=body)
            outcomes += await finish(http, sent.json()["activity_id"])
        state.tune(activity_stalls=True, activity_outcome="completed")
        stalled = [
            (await http.post("/v3/activities/contacts_json_import", json=body)).json() for _ in range(2)
        ]
        refused = await http.post("/v3/activities/contacts_json_import", json=body)
        still = await finish(http, stalled[0]["activity_id"], polls=4)
        listed = conforms(await http.get("/v3/activities?state=failed"), "/activities")
    assert outcomes == ["failed", "cancelled", "timed_out"]
    assert still == ["processing"] * 4
    assert refused.status_code == 429
    assert refused.json()[0]["error_message"] == "You exceeded 1,000 queued activities for this user account."
    assert len(listed["activities"]) == 1 and listed["activities"][0]["activity_errors"]


@pytest.mark.asyncio
async def test_membership_activities_add_and_remove_but_never_add_the_unsubscribed() -> None:
    state = ConstantContactState(Knobs(rate_limited=False, activity_polls=0))
    target = state.create_list("Target").id
    ann, gone = state.add_contact("ann@example.com"), state.add_contact("gone@example.com")
    state.unsubscribe(gone, "Contact")
    async with client(state) as http:
        body = {"source": {"contact_ids": [ann.id, gone.id]}, "list_ids": [target]}
        added = conforms(
            await http.post("/v3/activities/add_list_memberships", json=body),
            "/activities/add_list_memberships",
        )
        errors = (await http.get(f"/v3/activities/{added['activity_id']}")).json()["activity_errors"]
        assert target in ann.lists and target not in gone.lists
        removed = await http.post("/v3/activities/remove_list_memberships", json=body)
        await finish(http, conforms(removed, "/activities/remove_list_memberships")["activity_id"])
        deleted = await http.post("/v3/activities/contact_delete", json={"contact_ids": [ann.id]})
        await finish(http, conforms(deleted, "/activities/contact_delete")["activity_id"])
        hidden = conforms(await http.get("/v3/contacts"), "/contacts")
        shown = conforms(await http.get("/v3/contacts?status=all"), "/contacts")
    assert errors == [
        f"Contact {gone.id} (gone@example.com): the contact is unsubscribed and was not added to the lists"
    ]
    assert target not in ann.lists
    assert [c["email_address"]["address"] for c in hidden["contacts"]] == ["gone@example.com"]
    assert any("deleted_at" in c for c in shown["contacts"])


@pytest.mark.asyncio
async def test_four_calls_a_second_and_ten_thousand_a_day_then_429_without_headers() -> None:
    clock = FakeClock()
    state = ConstantContactState(Knobs(calls_per_day=7), clock=clock)
    async with client(state) as http:
        second = [(await http.get("/v3/contact_lists")).status_code for _ in range(5)]
        clock.now += 1
        next_second = [(await http.get("/v3/contact_lists")).status_code for _ in range(4)]
        capped = await http.get("/v3/contact_lists")
        clock.now += 15 * 3600  # past 00:00 UTC (the account's day began at 09:00)
        tomorrow = await http.get("/v3/contact_lists")
    assert second == [200, 200, 200, 200, 429]
    assert next_second == [200, 200, 200, 429]  # the day's seventh call was the last
    assert capped.status_code == 429 and not {"retry-after", "x-ratelimit-limit"} & set(capped.headers)
    assert tomorrow.status_code == 200


@pytest.mark.asyncio
async def test_fault_knobs_server_errors_retry_after_and_malformed_json() -> None:
    state = ConstantContactState(Knobs(rate_limited=False, error_503_share=0.5), seed=3)
    async with client(state) as http:
        codes = [(await http.get("/v3/contact_lists")).status_code for _ in range(40)]
        assert 10 < codes.count(503) < 30 and set(codes) == {200, 503}
        state.tune(error_503_share=0.0, error_429_share=1.0, retry_after=7)
        limited = await http.get("/v3/contact_lists")
        state.tune(error_429_share=0.0, error_500_share=1.0, retry_after=None)
        broken = await http.get("/v3/contact_lists")
        state.tune(error_500_share=0.0, malformed_json_share=1.0)
        garbled = await http.get("/v3/contact_lists")
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
    assert broken.status_code == 500 and "retry-after" not in broken.headers
    with pytest.raises(ValueError):
        json.loads(garbled.content)


@pytest.mark.asyncio
async def test_campaign_reports_track_sends_opens_clicks_bounces_and_opt_outs() -> None:
    state = ConstantContactState(Knobs(rate_limited=False), seed=4)
    generate(state, seed=9, contacts=300, campaigns=2)
    campaign = next(iter(state.campaigns.values()))
    report = f"/v3/reports/email_reports/{campaign.activity_id}/tracking"
    pattern = "/reports/email_reports/{campaign_activity_id}/tracking/"
    async with client(state) as http:
        listed = conforms(await http.get("/v3/emails"), "/emails")
        detail = conforms(await http.get(f"/v3/emails/{campaign.id}"), "/emails/{campaign_id}")
        sent_to = conforms(
            await http.get(f"/v3/emails/activities/{campaign.activity_id}"),
            "/emails/activities/{campaign_activity_id}",
        )
        feeds = {name: conforms(await http.get(f"{report}/{name}"), pattern + name)["tracking_activities"]
                 for name in ("sends", "opens", "clicks", "bounces", "optouts")}  # fmt: skip
        hard = conforms(await http.get(f"{report}/bounces?bounce_code=B&bounce_code=S"), pattern + "bounces")
        stats = conforms(
            await http.get(f"/v3/reports/stats/email_campaigns/{campaign.id}"),
            "/reports/stats/email_campaigns/{campaign_ids}",
        )
    assert len(listed["campaigns"]) == 2
    assert detail["campaign_activities"] == [
        {"campaign_activity_id": campaign.activity_id, "role": "primary_email"}
    ]
    assert sent_to["contact_list_ids"] == campaign.list_ids
    times = [e["created_time"] for e in feeds["opens"]]
    assert times == sorted(times, reverse=True) and times
    counts = stats["results"][0]["stats"]
    assert counts["em_sends"] == len(feeds["sends"]) and counts["em_opens_all"] == len(feeds["opens"])
    assert counts["em_clicks_all"] == len(feeds["clicks"]) and counts["em_optouts"] == len(feeds["optouts"])
    assert all(e["bounce_code"] in "BDFSVXZ" for e in feeds["bounces"])
    assert {e["bounce_code"] for e in hard["tracking_activities"]} <= {"B", "S"}
    for event in feeds["optouts"]:
        assert state.contacts[event["contact_id"]].permission == "unsubscribed"
    before = len(campaign.tracking)
    member = state.add_contact("late@example.com")
    member.lists[campaign.list_ids[0]] = None
    assert state.generate_activity(campaign.id, SendShares(bounce=1.0)) == 1
    assert [e.kind for e in campaign.tracking[before:]] == ["em_sends", "em_bounces"]


def test_the_sandbox_serves_a_loopback_authorization_flow_and_the_api_over_a_real_socket() -> None:
    knobs = Knobs()
    redirect = "http://127.0.0.1:9/callback"
    with emulator("constant-contact") as url, httpx.Client(base_url=url, timeout=10) as http:
        params = {
            "client_id": knobs.client_id,
            "redirect_uri": redirect,
            "response_type": "code",
            "scope": SCOPES,
            "state": "s",
        }
        back = http.get("/oauth2/default/v1/authorize", params=params)
        code = parse_qs(urlsplit(back.headers["location"]).query)["code"][0]
        form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect}
        granted = http.post("/oauth2/default/v1/token", data=form, headers=_basic(knobs)).json()
        lists = http.get("/v3/contact_lists", headers={"Authorization": f"Bearer {granted['access_token']}"})
        anonymous = http.get("/v3/contact_lists")
    assert lists.status_code == 200 and len(lists.json()["lists"]) == 4
    assert anonymous.status_code == 401
