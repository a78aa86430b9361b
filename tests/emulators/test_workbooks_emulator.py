"""The Workbooks emulator behaves on the wire as `shared/reference/workbooks-api.md` describes."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from adapters.emulation.faults import Faults
from adapters.workbooks.emulator import Knobs, create_app, field_name
from adapters.workbooks.emulator_data import LEAD, PERSON, PUBLIC_NAME_FIELD, generate
from adapters.workbooks.emulator_state import DEFAULT_API_KEY, STALE, WorkbooksState
from tests.support import Clock

BASE = "https://secure.workbooks.com"
KEY: dict[str, Any] = {"api_key": DEFAULT_API_KEY, "_api_version": "1"}
START = 1_750_000_000.0


def small_state(clock: Clock | None = None) -> WorkbooksState:
    state = WorkbooksState(clock=clock or Clock(), seed=7)
    people = [
        ("Ada", "Lovelace", "ada@example.com", True, 10),
        ("Alan", "Turing", "ALAN@Example.com", False, 20),
        ("Grace", "Hopper", "grace@navy.example", False, 30),
        ("Edsger", "Dijkstra", None, False, 40),
    ]
    state.add_custom_field("crm/people", "cf_person_points", "integer", "Points")
    for first, last, email, opted_out, points in people:
        values = {"person_first_name": first, "person_last_name": last, "main_location[email]": email}
        state.insert("crm/people", values | {"no_email_soliciting": opted_out, "cf_person_points": points})
    return state


@asynccontextmanager
async def client(
    state: WorkbooksState | None = None, knobs: Knobs | None = None, **kwargs: Any
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(state or small_state(), knobs=knobs)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE, **kwargs) as c:
        yield c


def square(objects: list[dict[str, Any]], **extra: str) -> dict[str, Any]:
    """Keyword arguments for httpx that send `square_pairs` form-encoded."""
    return form(square_pairs(objects, **extra))


def form(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    return {"content": urlencode(pairs), "headers": {"Content-Type": "application/x-www-form-urlencoded"}}


def square_pairs(objects: list[dict[str, Any]], **extra: str) -> list[tuple[str, str]]:
    """A PUT body as the bindings build it: the working set, then every key[] once per object."""
    body = [*extra.items(), ("_fm", "or")]
    for obj in objects:
        body += [("_ff[]", "id"), ("_ft[]", "eq"), ("_fc[]", str(obj.get("id", 0)))]
    keys = sorted({k for obj in objects for k in obj} | {"__method", "id", "lock_version"})
    for obj in objects:
        defaults = {"__method": "POST" if not obj.get("id") else "PUT", "id": 0, "lock_version": 0}
        body += [(f"{k}[]", str({**defaults, **obj}.get(k, ":no_value:"))) for k in keys]
    return body


def ids(response: httpx.Response) -> list[int]:
    assert response.status_code == 200, response.text
    return [row["id"] for row in response.json()["data"]]


@pytest.mark.asyncio
async def test_api_key_on_every_request() -> None:
    async with client() as c:
        ok = await c.get("/crm/people.api", params=KEY)
        assert ok.status_code == 200 and ok.headers["content-type"] == "application/json; charset=utf-8"
        assert ok.json()["success"] is True and ok.json()["total"] == 4 and len(ok.json()["data"]) == 4
        assert (
            await c.get("/crm/people.api", params={"api_key": DEFAULT_API_KEY, "api_version": "1"})
        ).is_success
        wrong = await c.get("/crm/people.api", params={**KEY, "api_key": "nope"})
        assert wrong.status_code == 401 and wrong.json()["failure_reason"] == "unrecognised_api_key"
        assert "failure_message" in wrong.json()
        assert (await c.get("/crm/people.api", params={"api_key": DEFAULT_API_KEY})).status_code == 406
        nothing = await c.get("/crm/people.api")
        assert nothing.status_code == 401 and nothing.json()["failure_reason"] == "no_session_found"


LOGIN = {"username": "api.user@example.com", "password": "secret", "client": "api", "api_version": "1"}


@pytest.mark.asyncio
async def test_session_login_cookie_and_authenticity_token() -> None:
    state = small_state()
    async with client(state) as c:
        login = await c.post("/login.api", data=LOGIN)
        assert login.status_code == 200, login.text
        body = login.json()
        for key in ("session_id", "authenticity_token", "database_name", "logical_database_id", "databases"):
            assert key in body
        assert "Workbooks-Session=" + body["session_id"] in login.headers["set-cookie"]
        assert "HttpOnly" in login.headers["set-cookie"] and "secure" in login.headers["set-cookie"]
        assert len(ids(await c.get("/crm/people.api"))) == 4
        person = state.live("crm/people")[0]
        change = [{"id": person["id"], "lock_version": 0, "person_job_title": "Countess"}]
        refused = await c.put("/crm/people.api", **square(change))
        assert refused.status_code == 403 and refused.json()["failure_reason"] == "invalid_authenticity_token"
        token = body["authenticity_token"]
        forged = await c.put("/crm/people.api", **square(change, _authenticity_token="0" * 40))
        assert forged.status_code == 403
        done = await c.put("/crm/people.api", **square(change, _authenticity_token=token))
        assert done.status_code == 200 and done.json()["success"] is True, done.text
        assert state.get("crm/people", person["id"])["person_job_title"] == "Countess"
        out = await c.post("/logout.api")
        assert out.status_code == 302
        c.cookies.set("Workbooks-Session", body["session_id"], domain="secure.workbooks.com")
        after = await c.get("/crm/people.api", follow_redirects=True)
        assert after.status_code == 401 and after.json()["failure_reason"] == "no_session_found"
        bad = await c.post("/login.api", data={**LOGIN, "password": "wrong"})
        assert bad.status_code == 401 and bad.json()["failure_reason"] == "unrecognised_name_or_password"
        assert (await c.post("/login.api", data={**LOGIN, "client": "web"})).status_code == 406


@pytest.mark.asyncio
async def test_session_expires_after_inactivity() -> None:
    clock = Clock()
    async with client(small_state(clock), follow_redirects=True) as c:
        assert (await c.post("/login.api", data=LOGIN)).status_code == 200
        clock.now += 9 * 3600
        expired = await c.get("/crm/people.api")
        assert expired.status_code == 401 and expired.json()["failure_reason"] == "session_expired"


@pytest.mark.asyncio
async def test_login_requires_a_user_agent() -> None:
    async with client() as c:
        del c.headers["User-Agent"]
        refused = await c.post("/login.api", data=LOGIN)
        assert refused.status_code == 403 and refused.json()["failure_reason"] == "user_agent_required"
        allowed = await c.post("/login.api", data=LOGIN, headers={"User-Agent": "listsync/0.1"})
        assert allowed.status_code == 200


@pytest.mark.asyncio
async def test_params_in_query_string_body_and_method_override() -> None:
    flt = {"_ff[]": "person_last_name", "_ft[]": "eq", "_fc[]": "Hopper"}
    async with client() as c:
        assert len(ids(await c.get("/crm/people.api", params=KEY | flt))) == 1
        in_body = await c.request("GET", "/crm/people.api", data=KEY | flt)
        assert len(ids(in_body)) == 1
        mixed = await c.request("GET", "/crm/people.api", params=KEY, data=flt)
        assert len(ids(mixed)) == 1
        assert len(ids(await c.post("/crm/people.api", data=KEY | flt | {"_method": "GET"}))) == 1
        assert (await c.post("/crm/people.api", data=KEY | flt)).status_code == 405
        create = square([{"person_first_name": "Katherine", "person_last_name": "Johnson"}], _method="PUT")
        made = await c.post("/crm/people.api", params=KEY, **create)
        assert made.json()["success"] is True, made.text
        assert made.json()["affected_objects"][0]["name"] == "Katherine Johnson"
        json_body = await c.put("/crm/people.api", params=KEY, json={"x": 1})
        assert json_body.status_code == 406


@pytest.mark.asyncio
async def test_paging_sorting_and_select_columns() -> None:
    state = WorkbooksState(clock=Clock(), seed=1)
    generate(state, seed=5, people=250, leads=10, campaigns=2)
    async with client(state) as c:
        page = await c.get("/crm/people.api", params=KEY | {"_start": "0", "_limit": "30"})
        assert page.json()["total"] == 250 and len(page.json()["data"]) == 30
        no_start = await c.get("/crm/people.api", params=KEY | {"_limit": "30"})
        assert len(no_start.json()["data"]) == 100  # _limit is ignored without _start
        seen: list[int] = []
        for start in range(0, 300, 70):
            seen += ids(await c.get("/crm/people.api", params=KEY | {"_start": str(start), "_limit": "70"}))
        assert seen == sorted(seen) and len(set(seen)) == 250
        cols = {
            "_start": "0",
            "_limit": "5",
            "_select_columns[]": ["main_location[email]", "person_last_name"],
        }
        rows = (await c.get("/crm/people.api", params=KEY | cols)).json()["data"]
        assert {frozenset(r) for r in rows} == {
            frozenset({"id", "lock_version", "main_location[email]", "person_last_name"})
        }
        desc = await c.get(
            "/crm/people.api", params=KEY | {"_start": "0", "_limit": "250", "_sort": "id", "_dir": "DESC"}
        )
        assert ids(desc) == sorted(seen, reverse=True)
        skip = await c.get(
            "/crm/people.api", params=KEY | {"_start": "0", "_limit": "7", "_skip_total_rows": "true"}
        )
        assert skip.json()["total"] == 7
        unknown = await c.get("/crm/people.api", params=KEY | {"_select_columns[]": "nope"})
        assert unknown.status_code == 406


@pytest.mark.asyncio
async def test_pages_of_one_read_follow_changes_made_between_them() -> None:
    state = WorkbooksState(clock=Clock(), seed=1)
    generate(state, seed=5, people=250, leads=10, campaigns=2)
    newest = {"_sort": "id", "_dir": "DESC", "_limit": "1"}
    async with client(state) as c:
        first = ids(await c.get("/crm/people.api", params=KEY | newest | {"_start": "0"}))
        added = state.insert("crm/people", {"person_last_name": "Late"})
        again = await c.get("/crm/people.api", params=KEY | newest | {"_start": "0"})
        assert ids(again) == [added["id"]] != first and again.json()["total"] == 251
        state.update("crm/people", added["id"], {"is_deleted": True})
        assert ids(await c.get("/crm/people.api", params=KEY | newest | {"_start": "0"})) == first


CASES = [
    ("person_last_name", "eq", "hopper", ["Hopper"]),
    ("person_last_name", "eq", "Hopper,Turing", ["Turing", "Hopper"]),
    ("person_last_name", "ne", "Hopper", ["Lovelace", "Turing", "Dijkstra"]),
    ("cf_person_points", "lt", "20", ["Lovelace"]),
    ("cf_person_points", "le", "20", ["Lovelace", "Turing"]),
    ("cf_person_points", "gt", "30", ["Dijkstra"]),
    ("cf_person_points", "ge", "30", ["Hopper", "Dijkstra"]),
    ("person_last_name", "bg", "tu", ["Turing"]),
    ("person_last_name", "nbg", "tu", ["Lovelace", "Hopper", "Dijkstra"]),
    ("main_location[email]", "ct", "example.com", ["Lovelace", "Turing"]),
    ("main_location[email]", "nct", "example.com", ["Hopper", "Dijkstra"]),
    ("main_location[email]", "blank", "", ["Dijkstra"]),
    ("main_location[email]", "not_blank", "", ["Lovelace", "Turing", "Hopper"]),
    ("no_email_soliciting", "true", "", ["Lovelace"]),
    ("no_email_soliciting", "false", "", ["Turing", "Hopper", "Dijkstra"]),
    ("no_email_soliciting", "eq", "1", ["Lovelace"]),
    ("no_email_soliciting", "ne", "1", ["Turing", "Hopper", "Dijkstra"]),
    ("cf_person_points", "between", "[20, 30]", ["Turing", "Hopper"]),
    ("cf_person_points", "not_between", "[20, 30]", ["Lovelace", "Dijkstra"]),
    ("created_at", "today", "", ["Lovelace", "Turing", "Hopper", "Dijkstra"]),
    ("created_at", "lt_today", "", []),
    ("created_at", "ge_today", "", ["Lovelace", "Turing", "Hopper", "Dijkstra"]),
    ("created_at", "gt_today", "", []),
    ("created_at", "le_today", "", ["Lovelace", "Turing", "Hopper", "Dijkstra"]),
]


@pytest.mark.asyncio
@pytest.mark.parametrize(("name", "op", "value", "expected"), CASES, ids=[f"{c[1]}-{c[2]}" for c in CASES])
async def test_filter_operator(name: str, op: str, value: str, expected: list[str]) -> None:
    async with client() as c:
        found = await c.get("/crm/people.api", params=KEY | {"_ff[]": name, "_ft[]": op, "_fc[]": value})
        assert found.status_code == 200, found.text
        assert [r["person_last_name"] for r in found.json()["data"]] == expected


@pytest.mark.asyncio
async def test_filter_match_expressions_and_json_filters() -> None:
    three: dict[str, Any] = {
        "_ff[]": ["person_last_name", "person_last_name", "cf_person_points"],
        "_ft[]": ["eq", "eq", "ge"],
    }
    three["_fc[]"] = ["Lovelace", "Hopper", "20"]
    async with client() as c:

        async def names(**extra: Any) -> list[str]:
            found = await c.get("/crm/people.api", params=KEY | three | extra)
            assert found.status_code == 200, found.text
            return [r["person_last_name"] for r in found.json()["data"]]

        assert await names() == []
        assert await names(_fm="or") == ["Lovelace", "Turing", "Hopper", "Dijkstra"]
        assert await names(_fm="(1 OR 2) AND 3") == ["Hopper"]
        assert await names(_fm="NOT 3 XOR 2") == ["Lovelace", "Hopper"]
        assert await names(_fm="!(1 OR 2) AND 3") == ["Turing", "Dijkstra"]
        bad = await c.get("/crm/people.api", params=KEY | three | {"_fm": "1 AND 4"})
        assert bad.status_code == 406
        as_json = json.dumps([["person_last_name", "ct", "o"], ["cf_person_points", "le", "30"]])
        found = await c.get("/crm/people.api", params=KEY | {"_filter_json": as_json})
        assert [r["person_last_name"] for r in found.json()["data"]] == ["Lovelace", "Hopper"]
        wrong_op = await c.get("/crm/people.api", params=KEY | {"_ff": "name", "_ft": "like", "_fc": "x"})
        assert wrong_op.status_code == 406


@pytest.mark.asyncio
async def test_incremental_read_by_updated_at_finds_changes_and_deletions() -> None:
    clock = Clock()
    state = small_state(clock)
    ada, alan, grace = (r["id"] for r in state.live("crm/people")[:3])
    clock.now += 3600
    cursor = state.now().strftime("%a %b %d %H:%M:%S UTC %Y")
    async with client(state) as c:
        changes = [
            {"id": ada, "lock_version": 0, "person_job_title": "Analyst"},
            {"id": alan, "lock_version": 0, "__method": "DELETE"},
        ]
        saved = await c.put("/crm/people.api", params=KEY, **square(changes))
        assert saved.json()["success"] is True, saved.text
        delta: dict[str, Any] = {
            "_ff[]": ["updated_at", "is_deleted", "is_deleted"],
            "_ft[]": ["ge", "eq", "eq"],
        }
        delta |= {"_fc[]": [cursor, "0", "1"], "_fm": "1 AND (2 OR 3)", "_sort": "updated_at", "_dir": "ASC"}
        rows = (await c.get("/crm/people.api", params=KEY | delta)).json()["data"]
        assert {(r["id"], r["is_deleted"], r["lock_version"]) for r in rows} == {
            (ada, False, 1),
            (alan, True, 1),
        }
        live = await c.get(
            "/crm/people.api", params=KEY | {"_ff[]": "updated_at", "_ft[]": "ge", "_fc[]": cursor}
        )
        assert ids(live) == [ada]  # deleted records stay hidden unless a filter names is_deleted
        iso = await c.get(
            "/crm/people.api", params=KEY | delta | {"_fc[]": ["2025-06-15T16:06:40Z", "0", "1"]}
        )
        assert {r["id"] for r in iso.json()["data"]} == {ada, alan}
        assert grace not in ids(iso)
        tombstone = state.get("crm/people", alan)
        assert tombstone["is_deleted"] and tombstone["person_last_name"] == "Turing"


@pytest.mark.asyncio
async def test_a_batch_of_100_is_saved_and_101_is_refused() -> None:
    state = small_state()
    rows = [
        {"person_last_name": f"Doe{i}", "main_location[email]": f"doe{i}@example.com"} for i in range(101)
    ]
    async with client(state) as c:
        refused = await c.put("/crm/people.api", params=KEY, **square(rows))
        assert refused.status_code == 406 and refused.json()["failure_reason"] == "too_many_objects"
        assert len(state.live("crm/people")) == 4
        saved = await c.put("/crm/people.api", params=KEY, **square(rows[:100]))
        body = saved.json()
        assert saved.status_code == 200 and body["success"] is True
        assert len(body["affected_objects"]) == 100 and len(state.live("crm/people")) == 104
        assert [o["person_last_name"] for o in body["affected_objects"]] == [f"Doe{i}" for i in range(100)]
        assert all(o["lock_version"] == 0 and o["id"] > 0 for o in body["affected_objects"])
        unfiltered = [(k, v) for k, v in square_pairs(rows[:1]) if k not in ("_ff[]", "_ft[]", "_fc[]")]
        no_set = await c.put("/crm/people.api", params=KEY, **form(unfiltered))
        assert no_set.status_code == 406


@pytest.mark.asyncio
async def test_per_object_validation_failure_inside_http_200() -> None:
    state = small_state()
    alan = state.live("crm/people")[1]["id"]
    batch = [
        {"person_last_name": "Good", "main_location[email]": "good@example.com"},
        {"person_last_name": "Bad", "main_location[email]": "not-an-email"},
        {
            "id": alan,
            "lock_version": 0,
            "no_email_soliciting": "1",
            "main_location[email_address_undeliverable]": "true",
        },
        {"person_first_name": "NoLastName"},
    ]
    async with client(state) as c:
        together = await c.put("/crm/people.api", params=KEY, **square(batch))
        assert together.status_code == 200 and together.json()["success"] is False
        assert len(state.live("crm/people")) == 4 and state.get("crm/people", alan)["lock_version"] == 0
        alone = await c.put("/crm/people.api", params=KEY, **square(batch, _per_object_transactions="true"))
        body = alone.json()
        assert alone.status_code == 200 and body["success"] is False
        assert [i["success"] for i in body["affected_object_information"]] == [True, False, True, False]
        assert body["affected_object_errors"][1] == {"main_location[email]": ["is not a valid email address"]}
        assert body["errors"]["[3]"] == {"person_last_name": "can't be blank"}
        assert (
            body["affected_objects"][1] is None and body["affected_objects"][0]["person_last_name"] == "Good"
        )
        assert (
            body["affected_objects"][2] | {"no_email_soliciting": True, "lock_version": 1}
            == body["affected_objects"][2]
        )
        person = state.get("crm/people", alan)
        assert (
            person["no_email_soliciting"] is True
            and person["main_location[email_address_undeliverable]"] is True
        )
        assert len(state.live("crm/people")) == 5


@pytest.mark.asyncio
async def test_stale_lock_version_is_refused() -> None:
    state = small_state()
    ada = state.live("crm/people")[0]["id"]
    state.update("crm/people", ada, {"person_job_title": "Edited in the web UI"})
    async with client(state) as c:
        change = [{"id": ada, "lock_version": 0, "no_email_soliciting": "0"}]
        stale = await c.put("/crm/people.api", params=KEY, **square(change))
        body = stale.json()
        assert stale.status_code == 200 and body["success"] is False
        assert body["failures"][0]["message"] == STALE and body["failures"][0]["current_lock_version"] == 1
        assert state.get("crm/people", ada)["no_email_soliciting"] is True
        fresh = await c.put("/crm/people.api", params=KEY, **square([{**change[0], "lock_version": 1}]))
        assert fresh.json()["success"] is True and fresh.json()["affected_objects"][0]["lock_version"] == 2


@pytest.mark.asyncio
async def test_lead_fields_use_nested_keys_and_online_activity_is_linked() -> None:
    state = small_state()
    state.add_custom_field("crm/campaigns", PUBLIC_NAME_FIELD, "string")
    campaign = state.insert("crm/campaigns", {"name": "Launch", PUBLIC_NAME_FIELD: "Our launch"})
    lead = state.insert("crm/sales_leads", {"org_lead_party[main_location[email]]": "lead@example.com"})
    ada = state.live("crm/people")[0]["id"]
    assert field_name("org_lead_party[main_location][email]") == "org_lead_party[main_location[email]]"
    async with client(state) as c:
        wire = square_pairs(
            [{"id": lead["id"], "lock_version": 0, "org_lead_party[no_email_soliciting]": "1"}]
        )
        wire += [
            ("org_lead_party[main_location][email_address_undeliverable][]", "1")
        ]  # the un-nested wire form
        saved = await c.put("/crm/sales_leads.api", params=KEY, **form(wire))
        assert saved.json()["success"] is True, saved.text
        stored = state.get("crm/sales_leads", lead["id"])
        assert stored["org_lead_party[no_email_soliciting]"] is True
        assert stored["org_lead_party[main_location[email_address_undeliverable]]"] is True
        activities = [
            {
                "online_activity_type": "Email Open",
                "marketing_campaign_id": campaign["id"],
                "party_or_lead_id": ada,
            },
            {
                "online_activity_type": "Email Bounce",
                "marketing_campaign_id": campaign["id"],
                "party_or_lead_id": lead["id"],
                "party_or_lead_type": LEAD,
            },
            {
                "online_activity_type": "Email Open",
                "marketing_campaign_id": campaign["id"],
                "party_or_lead_id": 1,
            },
        ]
        made = await c.put(
            "/crm/online_activities.api", params=KEY, **square(activities, _per_object_transactions="1")
        )
        assert [i["success"] for i in made.json()["affected_object_information"]] == [True, True, False]
        link = {"_ff[]": "marketing_campaign_id", "_ft[]": "eq", "_fc[]": str(campaign["id"])}
        rows = (await c.get("/crm/online_activities.api", params=KEY | link)).json()["data"]
        assert [(r["party_or_lead_id"], r["party_or_lead_type"]) for r in rows] == [
            (ada, PERSON),
            (lead["id"], LEAD),
        ]


@pytest.mark.asyncio
async def test_rate_limit_redirects_are_followed_to_the_data() -> None:
    clock = Clock(0.0)
    state = small_state()
    knobs = Knobs(rate_limit_budget=2, rate_limit_period=1.0, rate_limit_hops=2, clock=clock)
    async with client(state, knobs) as c:
        for _ in range(2):
            assert len(ids(await c.get("/crm/people.api", params=KEY))) == 4
        held = await c.get("/crm/people.api", params=KEY)
        assert held.status_code == 302 and held.headers["location"].startswith("/delay.api")
        followed = await c.get("/crm/people.api", params=KEY, follow_redirects=True)
        assert len(ids(followed)) == 4 and len(followed.history) == 2
        clock.now += 1.0
        assert (await c.get("/crm/people.api", params=KEY)).status_code == 200
        knobs.rate_limit_budget, knobs.rate_limit_share = None, 1.0
        create = square([{"person_last_name": "Deferred"}])
        put = await c.put("/crm/people.api", params=KEY, **create, follow_redirects=True)
        assert put.status_code == 200 and put.json()["success"] is True, put.text
        assert [r["person_last_name"] for r in state.live("crm/people")].count("Deferred") == 1
        knobs.rate_limit_share = 0.0
        hop = await c.get(held.headers["location"])
        assert hop.status_code == 302 and hop.headers["location"] != held.headers["location"]
        assert len(ids(await c.get(hop.headers["location"]))) == 5  # the held request runs when followed
        assert (await c.get(held.headers["location"])).status_code == 404  # a ticket answers once


@pytest.mark.asyncio
async def test_fault_knobs() -> None:
    faults = Faults(script=["500", "503"], seed=7)
    app = create_app(small_state(), faults=faults)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE) as c:
        first = await c.get("/crm/people.api", params=KEY)
        assert first.status_code == 500 and first.json()["failure_reason"] == "internal_error"
        second = await c.get("/crm/people.api", params=KEY)
        assert second.status_code == 503 and second.headers["retry-after"] == "1"
        assert second.headers["content-type"].startswith("text/html")
        assert (await c.get("/crm/people.api", params=KEY)).status_code == 200
        faults.malformed = 1.0
        broken = await c.get("/crm/people.api", params=KEY)
        with pytest.raises(json.JSONDecodeError):
            broken.json()
        faults.update({"malformed": 0.0, "500": 0.25, "503": 0.25})
        statuses = [(await c.get("/crm/people.api", params=KEY)).status_code for _ in range(60)]
        assert 10 < statuses.count(200) < 50 and set(statuses) == {200, 500, 503}
        faults.update({"500": 0.0, "503": 0.0, "latency": 0.01})
        assert (await c.get("/crm/people.api", params=KEY)).status_code == 200


@pytest.mark.asyncio
async def test_metadata_types_lists_the_mapped_fields() -> None:
    state = WorkbooksState(clock=Clock(), seed=1)
    generate(state, seed=1, people=5, leads=5, campaigns=1)
    async with client(state) as c:
        found = await c.get("/metadata/types.api", params=KEY)
        types = {t["controller_path"]: t for t in found.json()["data"]}
        fields = {path: {f["name"]: f for f in t["fields"]} for path, t in types.items()}
        for name in (
            "main_location[email]",
            "no_email_soliciting",
            "main_location[email_address_undeliverable]",
        ):
            assert name in fields["crm/people"]
        assert {"org_lead_party[main_location[email]]", "org_lead_party[no_email_soliciting]"} <= set(
            fields["crm/sales_leads"]
        )
        assert {"cf_person_interests", "cf_person_loyalty_points"} <= set(fields["crm/people"])
        assert fields["crm/campaigns"][PUBLIC_NAME_FIELD]["datatype"] == "string"
        assert fields["crm/people"]["no_email_soliciting"]["datatype"] == "boolean"
        assert types["crm/campaign_membership"]["class_name"] == "Private::Crm::CampaignMembership"
        one = await c.get(
            "/metadata/types.api", params=KEY | {"class_names[]": PERSON, "_select_columns[]": "fields"}
        )
        assert [set(t) for t in one.json()["data"]] == [{"fields"}]
        own = await c.get("/crm/sales_leads/metadata.api", params=KEY)
        assert own.json()["data"][0]["class_name"] == LEAD


@pytest.mark.asyncio
async def test_member_statuses_are_records_of_their_own_and_memberships_hold_only_the_id() -> None:
    state = WorkbooksState(clock=Clock(), seed=1)
    generate(state, seed=1, people=20, leads=5, campaigns=2)
    campaign = state.live("crm/campaigns")[0]["id"]
    async with client(state) as c:
        read = await c.get(
            "/crm/campaign_membership_status.api",
            params=KEY
            | {"_ff[]": "marketing_campaign_id", "_ft[]": "eq", "_fc[]": str(campaign)}
            | {"_select_columns[]": ["marketing_campaign_id", "status", "name"]},
        )
        statuses = read.json()["data"]
        assert {(s["status"], s["name"]) for s in statuses} == {
            ("Potential", None), ("Booked", None), ("Cancelled", None),
            ("Potential", "Interested"), ("Cancelled", "Not Interested"), ("Cancelled", "Unsubscribed"),
        }  # fmt: skip
        assert {s["marketing_campaign_id"] for s in statuses} == {campaign}
        members = await c.get("/crm/campaign_membership.api", params=KEY | {"_start": "0", "_limit": "5"})
        assert all(isinstance(m["campaign_membership_status_id"], int) for m in members.json()["data"])
        assert not any("[" in column for m in members.json()["data"] for column in m)
        joined = await c.get(
            "/crm/campaign_membership.api",
            params=KEY | {"_select_columns[]": "campaign_membership_status[status]"},
        )
        assert joined.status_code == 406 and joined.json()["failure_reason"] == "unknown_column"


def test_generated_data_is_believable_and_repeatable() -> None:
    def build() -> WorkbooksState:
        state = WorkbooksState(clock=Clock(), seed=1)
        generate(state, seed=42, people=1500, leads=600, campaigns=3, opted_out_share=0.1)
        return state

    state, again = build(), build()
    assert state.records == again.records
    campaigns = state.live("crm/campaigns")
    assert [c["record_state"] for c in campaigns].count("closed") == 1 and len(campaigns) == 4
    assert all(c[PUBLIC_NAME_FIELD] for c in campaigns)
    emails = [p["main_location[email]"] for p in state.live("crm/people")]
    assert any(e != e.lower() for e in emails)
    assert 0 < sum("@" not in e or " " in e or e.startswith("@") or e.endswith("@") for e in emails) < 40
    opted_out = sum(p["no_email_soliciting"] for p in state.live("crm/people"))
    assert 100 < opted_out < 200
    assert any(lead["org_lead_party[no_email_soliciting]"] for lead in state.live("crm/sales_leads"))
    members = state.live("crm/campaign_membership")
    statuses = {state.status_name(m["campaign_membership_status_id"]) for m in members}
    assert "Unsubscribed" in statuses and "Booked" in statuses
    assert {m["party_or_lead_type"] for m in members} == {PERSON, LEAD}
    assert all(m["member_name"] for m in members)


def test_the_benchmark_shape_puts_everyone_in_open_campaigns_under_their_own_email() -> None:
    state = WorkbooksState(clock=Clock(), seed=1)
    shape: dict[str, Any] = {"unique_emails": True, "campaigns_per_party": (1, 2), "malformed_share": 0}
    generate(state, seed=3, people=900, leads=300, **shape)
    emails = [p["main_location[email]"].lower() for p in state.live("crm/people")]
    emails += [lead["org_lead_party[main_location[email]]"].lower() for lead in state.live("crm/sales_leads")]
    assert len(set(emails)) == len(emails) == 1200
    open_ids = {c["id"] for c in state.live("crm/campaigns") if c["record_state"] == "open"}
    joined: dict[tuple[str, int], int] = {}
    for member in state.live("crm/campaign_membership"):
        assert member["marketing_campaign_id"] in open_ids
        party = (member["party_or_lead_type"], member["party_or_lead_id"])
        joined[party] = joined.get(party, 0) + 1
    assert len(joined) == 1200 and set(joined.values()) == {1, 2}
