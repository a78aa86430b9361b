"""The Workbooks client against the emulator: auth, paging, filters, batched writes, redirects, errors."""

from __future__ import annotations

import json
import string
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.emulation.faults import Faults
from adapters.workbooks.client import MAX_HOPS, Filter, SessionLost, WorkbooksClient, raise_for
from adapters.workbooks.emulator import Knobs, create_app
from adapters.workbooks.emulator_data import generate
from adapters.workbooks.emulator_state import DEFAULT_API_KEY, WorkbooksState
from adapters.workbooks.wire import WriteObject
from engine.errors import ListsyncError, PermanentError, TransientError
from tests.support import Clock

BASE = "https://secure.workbooks.com"
USER, PASSWORD = "api.user@example.com", "secret"
START = 1_750_000_000.0


def small_state(clock: Clock | None = None, **kwargs: Any) -> WorkbooksState:
    state = WorkbooksState(clock=clock or Clock(), seed=7, **kwargs)
    state.add_custom_field("crm/people", "cf_person_points", "integer", "Points")
    people = [
        ("Ada", "Lovelace", "ada@example.com", True, 10),
        ("Alan", "Turing", "alan@example.com", False, 20),
        ("Grace", "Hopper", "grace@navy.example", False, 30),
        ("Edsger", "Dijkstra", None, False, 40),
    ]
    for first, last, email, opted_out, points in people:
        values = {"person_first_name": first, "person_last_name": last, "main_location[email]": email}
        state.insert("crm/people", values | {"no_email_soliciting": opted_out, "cf_person_points": points})
    return state


@asynccontextmanager
async def http(
    state: WorkbooksState,
    knobs: Knobs | None = None,
    sent: list[httpx.Request] | None = None,
    faults: Faults | None = None,
) -> AsyncIterator[httpx.AsyncClient]:
    async def record(request: httpx.Request) -> None:
        if sent is not None:
            sent.append(request)

    transport = httpx.ASGITransport(app=create_app(state, knobs=knobs, faults=faults))
    hooks = {"request": [record]}
    async with httpx.AsyncClient(transport=transport, base_url=BASE, event_hooks=hooks) as client:
        yield client


def form(request: httpx.Request) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for key, value in parse_qsl(request.content.decode(), keep_blank_values=True):
        fields.setdefault(key, []).append(value)
    return fields


def paths(sent: list[httpx.Request]) -> list[str]:
    return [request.url.path for request in sent]


@pytest.mark.asyncio
async def test_api_key_reads_page_through_every_row() -> None:
    state = WorkbooksState(clock=Clock(), seed=3)
    generate(state, seed=3, people=230, leads=5, campaigns=1)
    sent: list[httpx.Request] = []
    async with http(state, sent=sent) as h:
        wb = WorkbooksClient(h, api_key=DEFAULT_API_KEY)
        page = await wb.read("crm/people", select=["person_last_name"], limit=100)
        assert len(page.data) == 100 and page.total == 230
        rows = [row async for row in wb.read_all("crm/people", select=["person_last_name"], page_size=100)]
    assert len({row["id"] for row in rows}) == 230
    assert paths(sent) == ["/crm/people.api"] * 4
    sent_form = form(sent[-1])
    assert sent_form["api_key"] == [DEFAULT_API_KEY] and sent_form["_api_version"] == ["1"]
    assert sent_form["_start"] == ["200"] and sent_form["_limit"] == ["100"]
    assert DEFAULT_API_KEY not in str(sent[-1].url)  # the key travels in the body, never in a URL
    assert all(request.headers["user-agent"].startswith("listsync/") for request in sent)


@pytest.mark.asyncio
async def test_filters_match_and_select_columns() -> None:
    async with http(small_state()) as h:
        wb = WorkbooksClient(h, api_key=DEFAULT_API_KEY)
        both: list[Filter] = [("person_last_name", "ct", "o"), ("cf_person_points", "le", 30)]
        page = await wb.read("crm/people", select=["person_last_name"], filters=both)
        assert [r["person_last_name"] for r in page.data] == ["Lovelace", "Hopper"]
        assert {key for row in page.data for key in row} == {"id", "lock_version", "person_last_name"}
        either = await wb.read("crm/people", filters=both, match="or", sort=[("person_last_name", "DESC")])
        assert [r["person_last_name"] for r in either.data] == ["Turing", "Lovelace", "Hopper"]
        opted_out = await wb.read("crm/people", filters=[("no_email_soliciting", "eq", True)])
        assert [r["person_last_name"] for r in opted_out.data] == ["Lovelace"]
        blank = await wb.read("crm/people", filters=[("main_location[email]", "blank", None)])
        assert [r["person_last_name"] for r in blank.data] == ["Dijkstra"]
        assert set(await wb.metadata_types()) >= {"crm/people", "crm/sales_leads", "crm/campaigns"}
        assert "cf_person_points" in (await wb.metadata_types())["crm/people"]


@pytest.mark.asyncio
async def test_session_login_token_on_changes_and_login_again_after_expiry() -> None:
    clock = Clock()
    state = small_state(clock, session_timeout=3600)
    ada = state.live("crm/people")[0]["id"]
    sent: list[httpx.Request] = []
    async with http(state, sent=sent) as h:
        wb = WorkbooksClient(h, username=USER, password=PASSWORD, application_name="tests")
        session = await wb.login()
        login = form(sent[0])
        assert login["client"] == ["api"] and login["api_version"] == ["1"]
        assert login["_application_name"] == ["tests"] and login["_strict_attribute_checking"] == ["true"]
        assert h.cookies.get("Workbooks-Session") == session.session_id
        [saved] = await wb.write("crm/people", [WriteObject.update(ada, 0, {"person_job_title": "Countess"})])
        assert saved.ok and saved.lock_version == 1
        assert form(sent[-1])["_authenticity_token"] == [session.authenticity_token]
        assert "api_key" not in form(sent[-1])
        clock.now += 7200  # the session times out
        page = await wb.read("crm/people", filters=[("id", "eq", ada)])
        assert page.data[0]["person_job_title"] == "Countess"
        assert paths(sent).count("/login.api") == 2 and wb.session is not None
        assert wb.session.session_id != session.session_id and len(state.sessions) == 1
        await wb.logout()
    assert state.sessions == {} and wb.session is None


@pytest.mark.asyncio
async def test_wrong_password_and_unknown_key_are_permanent_and_never_echoed() -> None:
    async with http(small_state()) as h:
        with pytest.raises(PermanentError, match="check the API key") as bad_login:
            await WorkbooksClient(h, username=USER, password="hunter2-wrong").read("crm/people")
        assert "hunter2-wrong" not in str(bad_login.value)
        key = "99999-" * 7 + "99999"
        with pytest.raises(PermanentError, match="check the API key") as bad_key:
            await WorkbooksClient(h, api_key=key).read("crm/people")
        assert key not in str(bad_key.value) and not isinstance(bad_key.value, SessionLost)


@pytest.mark.asyncio
async def test_incremental_reads_include_deleted_records() -> None:
    clock = Clock()
    state = small_state(clock)
    ada, alan, grace, _ = (r["id"] for r in state.live("crm/people"))
    clock.now += 3600
    cursor = state.now()
    clock.now += 60
    async with http(state) as h:
        wb = WorkbooksClient(h, api_key=DEFAULT_API_KEY)
        changes = [WriteObject.update(ada, 0, {"person_job_title": "Analyst"}), WriteObject.delete(alan, 0)]
        assert [r.ok for r in await wb.write("crm/people", changes)] == [True, True]
        state.update("crm/people", grace, {"person_job_title": "Admiral"})
        rows = [r async for r in wb.people_since(cursor, ["person_job_title"])]
        assert {(r["id"], r["is_deleted"]) for r in rows} == {(ada, False), (alan, True), (grace, False)}
        everyone = [r async for r in wb.people_since(None, ["person_last_name"])]
        assert len(everyone) == 4 and [r["is_deleted"] for r in everyone].count(True) == 1
        assert [r async for r in wb.leads_since(cursor, ["name"])] == []
        assert [r async for r in wb.memberships_since(cursor, ["member_name"])] == []
        assert await wb.campaigns(["name"]) == []


@pytest.mark.asyncio
async def test_a_write_of_250_objects_goes_in_three_requests() -> None:
    state = small_state()
    sent: list[httpx.Request] = []
    async with http(state, sent=sent) as h:
        wb = WorkbooksClient(h, api_key=DEFAULT_API_KEY)
        creates = [
            WriteObject.create({"person_last_name": f"Bulk{i}", "main_location[email]": f"b{i}@example.com"})
            for i in range(250)
        ]
        results = await wb.write("crm/people", creates)
    assert [len(form(request)["__method[]"]) for request in sent] == [100, 100, 50]
    assert all(request.method == "PUT" for request in sent)
    assert form(sent[0])["_fm"] == ["or"] and form(sent[0])["_fc[]"] == ["0"]  # the working set of creates
    assert "main_location[email][]" in form(sent[0])  # nested keys are un-nested on the wire
    assert all(r.ok for r in results) and len({r.id for r in results}) == 250
    assert len(state.live("crm/people")) == 254


@pytest.mark.asyncio
async def test_validation_failures_and_stale_lock_versions_are_results() -> None:
    state = small_state()
    ada, alan, *_ = (r["id"] for r in state.live("crm/people"))
    async with http(state) as h:
        wb = WorkbooksClient(h, api_key=DEFAULT_API_KEY)
        results = await wb.write(
            "crm/people",
            [
                WriteObject.update(ada, 0, {"no_email_soliciting": False}),
                WriteObject.update(alan, 5, {"person_job_title": "Codebreaker"}),
                WriteObject.create({"person_last_name": "Bad", "main_location[email]": "not-an-email"}),
                WriteObject.create({"person_last_name": "Good", "person_job_title": None}),
            ],
        )
    fresh, stale, invalid, created = results
    assert fresh.ok and fresh.id == ada and fresh.lock_version == 1 and not fresh.stale
    assert not stale.ok and stale.stale and stale.id == alan and "updated elsewhere" in stale.reason
    assert not invalid.ok and not invalid.stale and "main_location[email]" in invalid.errors
    assert "valid email" in invalid.reason
    assert created.ok and created.id is not None and state.get("crm/people", created.id)["name"] == "Good"
    assert state.get("crm/people", alan)["person_job_title"] is None


@pytest.mark.asyncio
async def test_rate_limit_redirects_are_followed_and_a_loop_is_capped() -> None:
    state = small_state()
    knobs = Knobs(rate_limit_share=1.0, rate_limit_hops=3)
    sent: list[httpx.Request] = []
    async with http(state, knobs, sent=sent) as h:
        wb = WorkbooksClient(h, api_key=DEFAULT_API_KEY)
        assert (await wb.read("crm/people")).total == 4
        assert paths(sent) == ["/crm/people.api", "/delay.api", "/delay.api", "/delay.api"]
        [made] = await wb.write("crm/people", [WriteObject.create({"person_last_name": "Deferred"})])
        assert made.ok and state.get("crm/people", made.id or 0)["person_last_name"] == "Deferred"
        knobs.rate_limit_hops = MAX_HOPS + 5
        with pytest.raises(TransientError, match="kept redirecting"):
            await wb.read("crm/people")


@pytest.mark.asyncio
async def test_server_faults_are_transient() -> None:
    faults = Faults(script=["503", "500"])
    async with http(small_state(), faults=faults) as h:
        wb = WorkbooksClient(h, api_key=DEFAULT_API_KEY)
        with pytest.raises(TransientError) as unavailable:
            await wb.read("crm/people")
        assert unavailable.value.retry_after == 1.0
        with pytest.raises(TransientError, match="HTTP 500"):
            await wb.read("crm/people")
        faults.malformed = 1.0
        with pytest.raises(TransientError, match="malformed JSON"):
            await wb.read("crm/people")
        faults.malformed = 0.0
        with pytest.raises(PermanentError, match=r"unknown_column.*nonsense"):
            await wb.read("crm/people", select=["nonsense"])


@pytest.mark.asyncio
async def test_a_dropped_connection_is_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse), base_url=BASE) as h:
        with pytest.raises(TransientError, match="could not reach Workbooks"):
            await WorkbooksClient(h, api_key=DEFAULT_API_KEY).read("crm/people")


def answer(status: int, body: Any = None, **headers: str) -> httpx.Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return httpx.Response(status, content=content, headers=headers)


@pytest.mark.parametrize(
    ("response", "error"),
    [
        (answer(401, {"failure_reason": "unrecognised_api_key"}), PermanentError),
        (answer(401, {"failure_reason": "session_expired"}), SessionLost),
        (answer(403, {"failure_reason": "invalid_authenticity_token"}), SessionLost),
        (answer(403, {"failure_reason": "database_being_migrated"}), TransientError),
        (answer(403, {"failure_reason": "no_permission_for_api"}), PermanentError),
        (answer(403, {"failure_reason": "user_agent_required"}), PermanentError),
        (answer(404, {"failure_reason": "not_found"}), PermanentError),
        (
            answer(406, {"failure_reason": "invalid_filter", "failure_message": "_ff[] needs _fc[]"}),
            PermanentError,
        ),
        (answer(429, b"slow down", **{"Retry-After": "7"}), TransientError),
        (answer(502, b"<html>bad gateway</html>"), TransientError),
        (answer(200, b'{"success": tru'), TransientError),
        (answer(302, b""), TransientError),
    ],
)
def test_raise_for_maps_each_status(response: httpx.Response, error: type[ListsyncError]) -> None:
    with pytest.raises(error) as raised:
        raise_for(response)
    assert type(raised.value) is error
    if isinstance(raised.value, TransientError) and response.status_code == 429:
        assert raised.value.retry_after == 7.0
    if response.status_code == 406:
        assert "_ff[]" in str(raised.value)


def test_retry_after_as_an_http_date_counts_from_the_date_header() -> None:
    response = answer(
        503, b"", **{"Retry-After": "Wed, 21 Oct 2025 07:28:30 GMT", "Date": "Wed, 21 Oct 2025 07:28:00 GMT"}
    )
    with pytest.raises(TransientError) as raised:
        raise_for(response)
    assert raised.value.retry_after == 30.0


SECRETS = (DEFAULT_API_KEY, PASSWORD)
header_text = st.text(alphabet=string.ascii_letters + string.digits + " ,:-.", max_size=40)
words = st.one_of(st.sampled_from([*SECRETS, "session_expired", "database_being_migrated", ""]), st.text())
bodies = st.one_of(
    st.binary(max_size=200),
    st.builds(
        lambda reason, message, extra: json.dumps(
            {"failure_reason": reason, "failure_message": message, "flash": extra}
        ).encode(),
        words,
        st.one_of(words, st.builds(lambda a, b: f"{a} {b}", words, words), st.integers(), st.none()),
        words,
    ),
    st.builds(lambda v: json.dumps(v).encode(), st.recursive(st.none() | st.booleans() | words, st.lists)),
)


@settings(max_examples=300, deadline=None)
@given(status=st.integers(100, 599), body=bodies, after=st.none() | header_text)
def test_raise_for_only_raises_listsync_errors_without_secrets(
    status: int, body: bytes, after: str | None
) -> None:
    response = httpx.Response(status, content=body, headers={} if after is None else {"Retry-After": after})
    try:
        result = raise_for(response, secrets=SECRETS)
    except ListsyncError as error:
        assert not any(secret in str(error) for secret in SECRETS)
        retry = getattr(error, "retry_after", None)
        assert retry is None or retry >= 0
    else:
        assert 200 <= status < 300 and isinstance(result, dict)
