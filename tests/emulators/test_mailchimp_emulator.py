"""The Mailchimp emulator behaves as the published API does, and its JSON matches the OpenAPI document.

The document (``openapi0.json``, OpenAPI 3.1, 1.5 MB) is loaded once per test session (``spec()``), from a
dict and with openapi-core's check of the document itself turned off: that check takes about 13 s and
fails on the vendor's own document (a ``default: false`` on a string property), while validating
responses against it works and takes milliseconds. Problem documents are ``application/problem+json``,
which openapi-core does not decode by itself, so the spec is given a JSON decoder for it.
"""

from __future__ import annotations

import asyncio
import functools
import io
import json
import tarfile
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from jsonschema_path import SchemaPath
from openapi_core import Config, OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from adapters.mailchimp.emulator import create_app
from adapters.mailchimp.emulator_data import subscriber_hash
from adapters.mailchimp.emulator_seeding import ActivityShares
from adapters.mailchimp.emulator_state import Knobs, MailchimpState
from adapters.mailchimp.sandbox import sandbox
from tests.support import Clock

BASE = "https://us21.api.mailchimp.com"
SPEC = Path(__file__).resolve().parents[3] / "shared/vendor-specs/mailchimp/openapi0.json"
KEY = Knobs().api_key
AUTH = ("anystring", KEY)
L = "/3.0/lists/{list_id}"
M = L + "/members/{subscriber_hash}"


@functools.cache
def spec() -> OpenAPI:
    document = json.loads(SPEC.read_text())
    problem = {"application/problem+json": json.loads}
    return OpenAPI(
        SchemaPath.from_dict(document),
        config=Config(spec_validator_cls=None, extra_media_type_deserializers=problem),
    )


def conforms(response: httpx.Response, pattern: str) -> Any:
    """Validate ``response`` against the spec's operation at ``pattern``; return its JSON (None for 204)."""
    request = response.request
    mock_request = MockRequest(BASE, request.method.lower(), request.url.path, path_pattern=pattern)
    if response.status_code == 204:
        assert response.content == b""
        assert "204" in spec().spec / "paths" / pattern / request.method.lower() / "responses"
        return None
    content_type = response.headers["content-type"].split(";")[0]
    mock_response = MockResponse(
        response.content, status_code=response.status_code, content_type=content_type
    )
    spec().validate_response(mock_request, mock_response)
    return response.json()


def fresh(clock: Clock | None = None, **knobs: Any) -> tuple[MailchimpState, str]:
    state = MailchimpState(Knobs(**knobs), clock=clock or Clock())
    audience = state.create_audience("Customers")
    return state, audience.id


@asynccontextmanager
async def client(state: MailchimpState, **kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(state))
    options: dict[str, Any] = {"auth": AUTH, **kwargs}
    async with httpx.AsyncClient(transport=transport, base_url=BASE, **options) as http:
        yield http


def member_path(list_id: str, email: str) -> str:
    return f"/3.0/lists/{list_id}/members/{subscriber_hash(email)}"


@pytest.mark.asyncio
async def test_api_keys_are_checked_in_every_accepted_form_and_name_the_data_centre() -> None:
    state, _ = fresh()
    async with client(state) as http:
        basic = conforms(await http.get("/3.0/ping"), "/3.0/ping")
        bearer = await http.get("/3.0/ping", auth=None, headers={"Authorization": f"Bearer {KEY}"})
        apikey = await http.get("/3.0/ping", auth=None, headers={"Authorization": f"apikey {KEY}"})
        missing = await http.get("/3.0/ping", auth=None)
        wrong = await http.get("/3.0/ping", auth=("x", "0000-us21"))
        other_dc = await http.get("https://us3.api.mailchimp.com/3.0/ping")
        loopback = await http.get("http://127.0.0.1:9/3.0/ping")
    assert basic == {"health_status": "Everything's Chimpy!"}
    assert bearer.status_code == apikey.status_code == loopback.status_code == 200
    assert conforms(missing, "/3.0/ping")["title"] == "API Key Missing"
    for refused in (wrong, other_dc):
        problem = conforms(refused, "/3.0/ping")
        assert refused.status_code == 401 and problem["title"] == "API Key Invalid"
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.headers["x-request-id"] == problem["instance"]


@pytest.mark.asyncio
async def test_put_upserts_with_status_if_new_and_never_changes_an_existing_status() -> None:
    state, list_id = fresh()
    path = member_path(list_id, "Ann@Example.com")
    async with client(state) as http:
        body = {
            "email_address": "Ann@Example.com",
            "status_if_new": "pending",
            "merge_fields": {"FNAME": "Ann"},
        }
        created = conforms(await http.put(path, json=body), M)
        again = {
            "email_address": "ann@example.com",
            "status_if_new": "subscribed",
            "merge_fields": {"LNAME": "Lee"},
        }
        updated = conforms(await http.put(path, json=again), M)
        by_email = conforms(await http.get(f"/3.0/lists/{list_id}/members/ann@example.com"), M)
        mismatch = await http.put(path, json={"email_address": "bob@example.com", "status": "subscribed"})
        no_status = await http.put(
            member_path(list_id, "c@example.com"), json={"email_address": "c@example.com"}
        )
        fake = await http.put(
            member_path(list_id, "x"), json={"email_address": "not-an-email", "status": "subscribed"}
        )
    assert created["id"] == subscriber_hash("ann@example.com") and created["status"] == "pending"
    assert updated["status"] == "pending"
    assert updated["merge_fields"]["FNAME"] == "Ann" and updated["merge_fields"]["LNAME"] == "Lee"
    assert by_email["email_address"] == "Ann@Example.com"
    assert mismatch.status_code == 400 and conforms(mismatch, M)["title"] == "Invalid Resource"
    assert conforms(no_status, M)["errors"][0]["field"] == "status"
    assert "looks fake or invalid" in fake.json()["detail"]


@pytest.mark.asyncio
async def test_unsubscribed_cleaned_and_forgotten_members_are_not_resubscribed() -> None:
    state, list_id = fresh()
    audience = state.audiences[list_id]
    gone = state.add_member(audience, "gone@example.com", "unsubscribed")
    state.add_member(audience, "bounced@example.com", "cleaned")
    state.add_member(audience, "forget@example.com", "subscribed")
    async with client(state) as http:
        refused = await http.put(
            member_path(list_id, gone.email), json={"email_address": gone.email, "status": "subscribed"}
        )
        field_update = await http.put(
            member_path(list_id, gone.email),
            json={"email_address": gone.email, "merge_fields": {"FNAME": "G"}},
        )
        cleaned = [
            await http.put(
                member_path(list_id, "bounced@example.com"),
                json={"email_address": "bounced@example.com", "status": status},
            )
            for status in ("subscribed", "pending", "unsubscribed")
        ]
        pending = await http.patch(member_path(list_id, gone.email), json={"status": "pending"})
        deleted = await http.post(member_path(list_id, "forget@example.com") + "/actions/delete-permanent")
        forgotten = await http.put(
            member_path(list_id, "forget@example.com"),
            json={"email_address": "forget@example.com", "status_if_new": "subscribed"},
        )
    assert refused.status_code == 400 and conforms(refused, M)["title"] == "Member In Compliance State"
    assert conforms(field_update, M)["status"] == "unsubscribed"
    assert [r.status_code for r in cleaned] == [400, 400, 200]
    assert cleaned[2].json()["status"] == "cleaned"
    assert conforms(pending, M)["status"] == "pending"
    assert conforms(deleted, M + "/actions/delete-permanent") is None
    assert conforms(forgotten, M)["title"] == "Forgotten Email Not Subscribed"


@pytest.mark.asyncio
async def test_members_page_filter_and_archive() -> None:
    clock = Clock()
    state, list_id = fresh(clock)
    audience = state.audiences[list_id]
    for n in range(25):
        state.add_member(audience, f"m{n}@example.com", "unsubscribed" if n % 5 == 0 else "subscribed")
    clock.now += 3600  # later changes are an hour after the seeding
    url = f"/3.0/lists/{list_id}/members"
    async with client(state) as http:
        first = conforms(await http.get(url, params={"count": 10, "offset": 20}), L + "/members")
        unsubscribed = conforms(
            await http.get(url, params={"status": "unsubscribed", "count": 100}), L + "/members"
        )
        archived = await http.delete(member_path(list_id, "m3@example.com"))
        moved = await http.put(
            member_path(list_id, "m7@example.com"),
            json={"email_address": "m7@example.com", "merge_fields": {"FNAME": "S"}},
        )
        since = moved.json()["last_changed"]
        changed = conforms(
            await http.get(url, params={"since_last_changed": since, "count": 100}), L + "/members"
        )
        listed = conforms(await http.get(url, params={"count": 1000}), L + "/members")
        only_archived = conforms(await http.get(url, params={"status": "archived"}), L + "/members")
        restored = conforms(
            await http.put(member_path(list_id, "m3@example.com"), json={"email_address": "m3@example.com"}),
            M,
        )
        too_many = await http.get(url, params={"count": 1001})
        slim = await http.get(url, params={"fields": "members.email_address,total_items", "count": 2})
        lean = await http.get(url, params={"exclude_fields": "members.merge_fields,members._links,_links"})
    assert [m["email_address"] for m in first["members"]] == [f"m{n}@example.com" for n in range(20, 25)]
    assert first["total_items"] == 25
    assert unsubscribed["total_items"] == 5
    assert conforms(archived, M) is None
    assert [m["email_address"] for m in changed["members"]] == ["m7@example.com"]  # m3 is archived
    assert listed["total_items"] == 24 and [m["status"] for m in only_archived["members"]] == ["archived"]
    assert restored["status"] == "subscribed"
    assert too_many.status_code == 400
    two = [{"email_address": "m0@example.com"}, {"email_address": "m1@example.com"}]
    assert slim.json() == {"members": two, "total_items": 25}
    assert "merge_fields" not in lean.json()["members"][0] and "status" in lean.json()["members"][0]


@pytest.mark.asyncio
async def test_batch_subscribe_takes_500_and_reports_each_member() -> None:
    state, list_id = fresh()
    audience = state.audiences[list_id]
    state.add_member(audience, "old@example.com", "subscribed")
    state.add_member(audience, "gone@example.com", "unsubscribed")
    members = [
        {"email_address": "new@example.com", "status_if_new": "subscribed", "merge_fields": {"FNAME": "N"}},
        {"email_address": "old@example.com", "status_if_new": "subscribed", "merge_fields": {"FNAME": "O"}},
        {"email_address": "gone@example.com", "status": "subscribed"},
        {"email_address": "bad@example.com", "status_if_new": "subscribed", "merge_fields": {"NOPE": "x"}},
    ]
    async with client(state) as http:
        answer = conforms(
            await http.post(f"/3.0/lists/{list_id}", json={"members": members, "update_existing": True}), L
        )
        exists = conforms(
            await http.post(
                f"/3.0/lists/{list_id}", json={"members": members[1:2], "update_existing": False}
            ),
            L,
        )
        big = [{"email_address": f"p{n}@example.com", "status_if_new": "subscribed"} for n in range(501)]
        too_many = await http.post(f"/3.0/lists/{list_id}", json={"members": big, "update_existing": True})
        just_right = await http.post(
            f"/3.0/lists/{list_id}", json={"members": big[:500], "update_existing": True}
        )
    assert [m["email_address"] for m in answer["new_members"]] == ["new@example.com"]
    assert [m["merge_fields"]["FNAME"] for m in answer["updated_members"]] == ["O"]
    errors = {e["email_address"]: e for e in answer["errors"]}
    assert "compliance state" in errors["gone@example.com"]["error"]
    assert "NOPE" in errors["bad@example.com"]["error"] and answer["error_count"] == 2
    assert exists["errors"][0]["error_code"] == "ERROR_CONTACT_EXISTS"
    assert too_many.status_code == 400 and just_right.json()["total_created"] == 500


@pytest.mark.asyncio
async def test_tags_and_static_segments() -> None:
    state, list_id = fresh()
    audience = state.audiences[list_id]
    for email, status in (("a@example.com", "subscribed"), ("b@example.com", "unsubscribed")):
        state.add_member(audience, email, status)
    segments = f"/3.0/lists/{list_id}/segments"
    async with client(state) as http:
        for email in ("a@example.com", "b@example.com"):
            tagged = await http.post(
                member_path(list_id, email) + "/tags", json={"tags": [{"name": "Spring", "status": "active"}]}
            )
            assert conforms(tagged, M + "/tags") is None
        missing = await http.post(
            member_path(list_id, "x@example.com") + "/tags",
            json={"tags": [{"name": "Spring", "status": "active"}]},
        )
        member = conforms(await http.get(member_path(list_id, "a@example.com")), M)
        counted = conforms(await http.get(segments, params={"type": "static"}), L + "/segments")
        everyone = await http.get(segments, params={"include_unsubscribed": "true"})
        made = conforms(
            await http.post(
                segments, json={"name": "Autumn", "static_segment": ["a@example.com", "z@example.com"]}
            ),
            L + "/segments",
        )
        duplicate = await http.post(segments, json={"name": "autumn", "static_segment": []})
        changed = conforms(
            await http.post(
                f"{segments}/{made['id']}",
                json={
                    "members_to_add": ["b@example.com", "ghost@example.com"],
                    "members_to_remove": ["a@example.com"],
                },
            ),
            L + "/segments/{segment_id}",
        )
        await http.post(
            member_path(list_id, "a@example.com") + "/tags",
            json={"tags": [{"name": "Spring", "status": "inactive"}]},
        )
        after = conforms(
            await http.get(f"{segments}/{made['id']}", params={"include_unsubscribed": "true"}),
            L + "/segments/{segment_id}",
        )
    assert missing.status_code == 404
    assert [t["name"] for t in member["tags"]] == ["Spring"] and member["tags_count"] == 1
    assert [(s["name"], s["member_count"]) for s in counted["segments"]] == [("Spring", 1)]
    assert everyone.json()["segments"][0]["member_count"] == 2
    assert made["member_count"] == 1 and duplicate.status_code == 400
    assert [m["email_address"] for m in changed["members_added"]] == ["b@example.com"]
    assert [m["email_address"] for m in changed["members_removed"]] == ["a@example.com"]
    assert after["member_count"] == 1
    assert [s.name for s in audience.tags_of(subscriber_hash("a@example.com"))] == []


@pytest.mark.asyncio
async def test_merge_fields_types_tags_and_the_audience_limit() -> None:
    state, list_id = fresh(merge_field_limit=7)
    url = f"/3.0/lists/{list_id}/merge-fields"
    async with client(state) as http:
        defaults = conforms(await http.get(url, params={"count": 100}), L + "/merge-fields")
        score = conforms(
            await http.post(url, json={"name": "Score", "tag": "score", "type": "number"}),
            L + "/merge-fields",
        )
        duplicate = await http.post(url, json={"name": "Again", "tag": "SCORE", "type": "text"})
        long_tag = await http.post(url, json={"name": "Long", "tag": "ELEVENCHARS", "type": "text"})
        radio = await http.post(
            url,
            json={
                "name": "Customer",
                "tag": "CUSTOMER",
                "type": "radio",
                "options": {"choices": ["Yes", "No"]},
            },
        )
        full = await http.post(url, json={"name": "One too many", "tag": "EXTRA", "type": "text"})
        path = member_path(list_id, "v@example.com")
        person = {"email_address": "v@example.com", "status": "subscribed"}
        bad = await http.put(path, json={**person, "merge_fields": {"SCORE": "lots", "CUSTOMER": "Maybe"}})
        good = await http.put(path, json={**person, "merge_fields": {"SCORE": "42", "CUSTOMER": "Yes"}})
    assert [f["tag"] for f in defaults["merge_fields"]] == ["FNAME", "LNAME", "ADDRESS", "PHONE", "BIRTHDAY"]
    assert defaults["merge_field_limit"] == 7
    assert score["tag"] == "SCORE" and score["type"] == "number"
    assert "already exists" in duplicate.json()["detail"] and long_tag.status_code == 400
    assert (
        radio.status_code == 200 and full.status_code == 400 and "most merge fields" in full.json()["detail"]
    )
    assert {e["field"] for e in conforms(bad, M)["errors"]} == {"SCORE", "CUSTOMER"}
    assert good.json()["merge_fields"]["SCORE"] == 42


async def _poll(http: httpx.AsyncClient, batch_id: str, polls: int = 10) -> list[dict[str, Any]]:
    seen = []
    for _ in range(polls):
        seen.append(conforms(await http.get(f"/3.0/batches/{batch_id}"), "/3.0/batches/{batch_id}"))
        if seen[-1]["status"] == "finished":
            break
    return seen


def _results(archive: bytes) -> dict[str, dict[str, Any]]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(archive), mode="r:gz") as tar:
        for item in tar.getmembers():
            handle = tar.extractfile(item)
            if item.isfile() and handle is not None:
                out.update({r["operation_id"]: r for r in json.loads(handle.read())})
    return out


@pytest.mark.asyncio
async def test_a_batch_moves_through_its_stages_and_publishes_per_operation_results() -> None:
    state, list_id = fresh(batch_polls=4)
    state.add_member(state.audiences[list_id], "a@example.com", "subscribed")
    ops = [
        {"method": "POST", "path": f"/lists/{list_id}/members/{subscriber_hash('a@example.com')}/tags",
         "body": json.dumps({"tags": [{"name": "Spring", "status": "active"}]}), "operation_id": "0"},
        {"method": "POST", "path": f"/3.0/lists/{list_id}/members/{subscriber_hash('b@example.com')}/tags",
         "body": json.dumps({"tags": [{"name": "Spring", "status": "active"}]}), "operation_id": "1"},
        {"method": "GET", "path": "/3.0/nowhere", "operation_id": "2"},
    ]  # fmt: skip
    async with client(state) as http:
        started = conforms(await http.post("/3.0/batches", json={"operations": ops}), "/3.0/batches")
        assert state.audiences[list_id].segment_named("Spring") is None  # nothing runs before it finishes
        stages = await _poll(http, started["id"])
        url = stages[-1]["response_body_url"]
        with_key = await http.get(url)
        forged = await http.get(url.replace("Signature=", "Signature=x"), auth=None)
        archive = await http.get(url, auth=None)
        listed = conforms(await http.get("/3.0/batches"), "/3.0/batches")
    assert started["status"] == "pending" and started["total_operations"] == 3
    assert [s["status"] for s in stages] == ["preprocessing", "started", "finalizing", "finished"]
    assert stages[-1]["errored_operations"] == 2 and stages[-1]["finished_operations"] == 3
    assert url.startswith("https://mailchimp-api-batch.s3.amazonaws.com/")
    assert with_key.status_code == 400 and forged.status_code == 403
    results = _results(archive.content)
    assert [results[k]["status_code"] for k in ("0", "1", "2")] == [204, 404, 404]
    assert json.loads(results["1"]["response"])["title"] == "Resource Not Found"
    assert listed["total_items"] == 1


@pytest.mark.asyncio
async def test_batch_knobs_force_every_operation_or_stall() -> None:
    state, list_id = fresh(batch_polls=1, batch_forced_status=500)
    op = {"method": "GET", "path": f"/3.0/lists/{list_id}", "operation_id": "only"}
    async with client(state) as http:
        forced = (await http.post("/3.0/batches", json={"operations": [op]})).json()
        done = await _poll(http, forced["id"])
        archive = await http.get(done[-1]["response_body_url"], auth=None)
        state.tune(batch_forced_status=None, batch_stalls=True)
        stalled = (await http.post("/3.0/batches", json={"operations": [op]})).json()
        stuck = await _poll(http, stalled["id"], polls=6)
        refused = await http.post("/3.0/batches", json={"operations": [{"path": "/3.0/ping"}]})
    assert _results(archive.content)["only"]["status_code"] == 500
    assert {s["status"] for s in stuck} == {"started"} and stuck[-1]["response_body_url"] == ""
    assert refused.status_code == 400


@pytest.mark.asyncio
async def test_campaigns_reports_and_email_activity() -> None:
    clock = Clock()
    state, list_id = fresh(clock)
    audience = state.audiences[list_id]
    segment = state.create_segment(audience, "Spring")
    for n in range(80):
        segment.members[state.add_member(audience, f"r{n}@example.com", "subscribed").id] = None
    campaign = state.add_campaign(list_id, "Spring sale", segment_id=segment.id)
    clock.now += 3 * 86400  # three days after the send
    shares = ActivityShares(hard_bounce=0.1, soft_bounce=0.1, open=0.7, click=0.5, unsubscribe=0.2)
    assert state.generate_activity(campaign.id, shares) == 80
    report_path = "/3.0/reports/{campaign_id}"
    async with client(state) as http:
        campaigns = conforms(
            await http.get("/3.0/campaigns", params={"status": "sent", "list_id": list_id}), "/3.0/campaigns"
        )
        report = conforms(await http.get(f"/3.0/reports/{campaign.id}"), report_path)
        activity = conforms(
            await http.get(f"/3.0/reports/{campaign.id}/email-activity", params={"count": 1000}),
            report_path + "/email-activity",
        )
        unsubs = conforms(
            await http.get(f"/3.0/reports/{campaign.id}/unsubscribed", params={"count": 1000}),
            report_path + "/unsubscribed",
        )
        late = await http.get(
            f"/3.0/reports/{campaign.id}/email-activity", params={"since": "2030-01-01T00:00:00+00:00"}
        )
    listed = campaigns["campaigns"][0]
    assert listed["recipients"]["segment_opts"]["saved_segment_id"] == segment.id
    assert listed["send_time"] and listed["emails_sent"] == 80
    actions = [a["action"] for e in activity["emails"] for a in e["activity"]]
    assert report["opens"]["opens_total"] == actions.count("open") > 0
    assert report["clicks"]["clicks_total"] == actions.count("click")
    bounces = report["bounces"]["hard_bounces"] + report["bounces"]["soft_bounces"]
    assert bounces == actions.count("bounce") > 0
    assert report["unsubscribed"] == unsubs["total_items"] > 0
    cleaned = {m.email for m in audience.members.values() if m.status == "cleaned"}
    hard = {e["email_address"] for e in activity["emails"] for a in e["activity"] if a.get("type") == "hard"}
    assert cleaned == hard
    assert late.json()["emails"] == []


@pytest.mark.asyncio
async def test_the_eleventh_simultaneous_connection_gets_429() -> None:
    state, _ = fresh(hold=0.2)
    async with client(state) as http:
        answers = await asyncio.gather(*(http.get("/3.0/ping") for _ in range(11)))
    codes = sorted(a.status_code for a in answers)
    assert codes == [200] * 10 + [429]
    refused = next(a for a in answers if a.status_code == 429)
    assert conforms(refused, "/3.0/ping")["title"] == "Too Many Requests"
    assert state.most_in_flight == 10 and state.in_flight == 0


@pytest.mark.asyncio
async def test_injected_faults_answer_as_problems_and_batches_fail_or_stall_by_share() -> None:
    state, list_id = fresh(batch_polls=1, max_pending_batches=100)
    op = {"method": "GET", "path": f"/3.0/lists/{list_id}", "operation_id": "only"}
    answers = {}
    async with client(state) as http:
        for kind in ("500", "503", "429"):
            await http.put("/_emulator/faults", json={kind: 1.0, "retry_after": 7})
            answers[kind] = await http.get("/3.0/ping")
            await http.put("/_emulator/faults", json={kind: 0.0})
        await http.put("/_emulator/faults", json={"job_fail": 0.3, "job_stall": 0.2})
        sent = [(await http.post("/3.0/batches", json={"operations": [op]})).json() for _ in range(60)]
        ends = [(await _poll(http, batch["id"], polls=3))[-1] for batch in sent]
        report = (await http.get("/_emulator/faults")).json()
        failed = next(end for end in ends if end["errored_operations"])
        archive = await http.get(failed["response_body_url"], auth=None)
        unknown = await http.get("/3.0/nowhere")
    for kind, answer in answers.items():
        assert conforms(answer, "/3.0/ping")["status"] == int(kind)
    assert "retry-after" not in answers["500"].headers and answers["429"].headers["retry-after"] == "7"
    outcomes = Counter(
        "stalled" if end["status"] != "finished" else "failed" if end["errored_operations"] else "ran"
        for end in ends
    )
    assert report["injected"] == {
        "500": 1, "503": 1, "429": 1, "job_fail": outcomes["failed"], "job_stall": outcomes["stalled"],
    }  # fmt: skip
    assert 8 <= outcomes["failed"] <= 30 and 4 <= outcomes["stalled"] <= 22
    assert {end["status"] for end in ends if end["status"] != "finished"} == {"started"}
    assert _results(archive.content)["only"]["status_code"] == 500
    assert unknown.status_code == 404 and unknown.json()["title"] == "Resource Not Found"


def test_the_sandbox_holds_a_realistic_audience() -> None:
    app, lines = sandbox(base_url="http://127.0.0.1:8000", seed=5)
    state: MailchimpState = app.state.mailchimp
    (audience,) = state.audiences.values()
    statuses = [m.status for m in audience.members.values()]
    assert len(statuses) == 3000 and len(audience.segments) == 4 and len(state.campaigns) == 3
    assert all(statuses.count(s) > 10 for s in ("subscribed", "unsubscribed", "cleaned", "archived"))
    assert any(c.recipients for c in state.campaigns.values())
    assert KEY in lines[0]
