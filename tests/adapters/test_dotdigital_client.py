"""The Dotdigital v2 client against the emulator: endpoints, paging, imports, and the error mapping."""

from __future__ import annotations

import json
import math
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.dotdigital import wire
from adapters.dotdigital.client import (
    BEGINNING,
    FLAT_CAP_WAIT,
    MAX_WAIT,
    USER_AGENT,
    DotdigitalBusy,
    DotdigitalClient,
    DotdigitalError,
    raise_for,
)
from adapters.dotdigital.emulator import create_app
from adapters.dotdigital.emulator_data import generate
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from adapters.emulation.faults import Faults
from engine.errors import ListsyncError, PermanentError, TransientError
from tests.adapters.meddling import Meddle, Meddling

BASE = "https://r1-api.dotdigital.com"
USER, PASSWORD = Knobs().api_user, Knobs().api_password


@asynccontextmanager
async def dotdigital(
    state: DotdigitalState | None = None,
    *,
    password: str = PASSWORD,
    page_size: int = 1000,
    faults: Faults | None = None,
    meddle: Meddle | None = None,
    **knobs: Any,
) -> AsyncIterator[tuple[DotdigitalClient, DotdigitalState, list[httpx.Request]]]:
    """A client over the emulator (behind `faults`), the emulator's state, and every request sent;
    `meddle` sees each request before the emulator does."""
    state = state or DotdigitalState(Knobs(**knobs))
    sent: list[httpx.Request] = []

    async def record(request: httpx.Request) -> None:
        sent.append(request)

    transport: httpx.AsyncBaseTransport = httpx.ASGITransport(app=create_app(state, faults=faults))
    if meddle is not None:
        transport = Meddling(transport, meddle)
    async with httpx.AsyncClient(
        transport=transport, base_url=BASE, event_hooks={"request": [record]}
    ) as http:
        yield DotdigitalClient(http, user=USER, password=password, page_size=page_size), state, sent


async def collect(items: AsyncIterator[Any]) -> list[Any]:
    return [item async for item in items]


@pytest.mark.asyncio
async def test_discovers_the_regional_endpoint_with_basic_auth_and_a_user_agent() -> None:
    async with dotdigital(api_endpoint="https://r2-api.dotdigital.com/") as (client, _, sent):
        assert await client.discover_endpoint() == "https://r2-api.dotdigital.com"
    assert sent[0].headers["User-Agent"] == USER_AGENT
    assert USER_AGENT.startswith("listsync/")
    assert sent[0].headers["Authorization"].startswith("Basic ")
    assert PASSWORD not in repr(client)


@pytest.mark.asyncio
async def test_pages_until_a_short_page() -> None:
    state = DotdigitalState(Knobs(rate_scheme="none"))
    generate(state, seed=7, contacts=1100, address_books=2, campaigns=0)
    async with dotdigital(state) as (client, _, sent):
        everyone = await collect(client.contacts())
    assert len(everyone) == len({c.id for c in everyone}) == 1100
    assert {c.status for c in everyone} > {"Subscribed"}  # suppressed contacts come with their status
    assert all(c.data_fields for c in everyone)
    pages = [r for r in sent if "modified-since" in r.url.path]
    # Each page repeats 50 of the last; the page before the last is read again to confirm the end.
    assert [r.url.params["skip"] for r in pages] == ["0", "950", "0"]

    book = next(iter(state.address_books.values()))
    async with dotdigital(state, page_size=7) as (client, _, sent):
        members = await collect(client.address_book_members(book.id))
        books = await collect(client.address_books())
    assert [m.id for m in members] == list(book.members)
    *skips, confirming = [int(r.url.params["skip"]) for r in sent if r.url.path.endswith("/contacts")]
    assert skips == list(range(0, skips[-1] + 1, 5))  # pages of 7 overlap by 2
    assert skips[-1] + 2 <= len(members) < skips[-1] + 7  # the last page holds the overlap and is short
    assert confirming == skips[-2]  # the page before the last, read again to confirm the end
    assert [b.name for b in books] == [b.name for b in state.address_books.values()]


@pytest.mark.asyncio
async def test_address_book_create_and_duplicate() -> None:
    async with dotdigital() as (client, _, _sent):
        book = await client.create_address_book("CRM Campaign 42")
        assert (book.name, book.visibility, book.contacts) == ("CRM Campaign 42", "Private", 0)
        with pytest.raises(DotdigitalError) as refused:
            await client.create_address_book("crm campaign 42")
    assert (refused.value.status, refused.value.code) == (400, "ERROR_ADDRESSBOOK_DUPLICATE")
    assert isinstance(refused.value, PermanentError)


@pytest.mark.asyncio
async def test_data_field_create_list_and_duplicate() -> None:
    async with dotdigital() as (client, _, _sent):
        made = await client.create_data_field("crm_id", "String", "none")
        assert (made.name, made.type, made.default_value) == ("CRM_ID", "String", "none")
        assert [f.name for f in await client.data_fields()] == ["CRM_ID"]
        with pytest.raises(DotdigitalError) as refused:
            await client.create_data_field("CRM_ID", "Numeric")
    assert refused.value.code == "ERROR_NON_UNIQUE_DATAFIELD"


@pytest.mark.asyncio
async def test_import_finishes_after_polls_with_report_and_faults() -> None:
    async with dotdigital(import_polls=2) as (client, state, _sent):
        await client.create_data_field("FIRSTNAME", "String")
        book = await client.create_address_book("Imported")
        await client.unsubscribe("gone@example.com")
        rows = [
            {"Email": "ann@example.com", "FIRSTNAME": "Ann"},
            {"Email": "bob@example.com", "FIRSTNAME": "Bob, Jr."},
            {"Email": "gone@example.com", "FIRSTNAME": "Gone"},
            {"Email": "not-an-email", "FIRSTNAME": "Nobody"},
        ]
        import_id = await client.import_contacts(rows, address_book_id=book.id, columns=["FIRSTNAME"])
        with pytest.raises(DotdigitalError) as early:
            await client.import_report(import_id)
        statuses = [await client.import_status(import_id) for _ in range(3)]
        report = await client.import_report(import_id)
        faults = await client.import_faults(import_id)
        members = await collect(client.address_book_members(book.id))
    assert early.value.code == "ERROR_IMPORT_REPORT_NOT_FOUND"
    assert statuses == ["NotFinished", "NotFinished", "Finished"]
    assert (report.new_contacts, report.globally_suppressed, report.invalid_entries) == (2, 1, 1)
    assert report.unsubscribed == 1
    assert faults == [
        {"Reason": "Unsubscribed", "email": "gone@example.com", "FIRSTNAME": "Gone"},
        {"Reason": "InvalidEmail", "email": "not-an-email", "FIRSTNAME": "Nobody"},
    ]
    assert {m.email: m.fields()["FIRSTNAME"] for m in members} == {
        "ann@example.com": "Ann",
        "bob@example.com": "Bob, Jr.",
    }
    assert state.contact_by_email("ann@example.com") is not None


FAULTS = b"Reason,email,FIRSTNAME\r\nDuplicate,ann@example.com,Ann\r\n"


async def faults_answered(body: bytes, media_type: str | None) -> list[dict[str, str]]:
    """The client's reading of a fault report answered with ``body`` as ``media_type``."""

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, content=body, headers={"content-type": media_type} if media_type else {})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url=BASE) as http:
        return await DotdigitalClient(http, user=USER, password=PASSWORD).import_faults("1b2c")


@pytest.mark.parametrize(
    "media_type", ["application/octet-stream", "text/csv; charset=utf-8", "text/plain", None]
)
@pytest.mark.asyncio
async def test_a_fault_report_is_read_as_csv_whatever_media_type_it_comes_as(media_type: str | None) -> None:
    """The v2 document says octet-stream, the ReadMe CSV: the body is the same CSV either way."""
    assert await faults_answered(FAULTS, media_type) == [
        {"Reason": "Duplicate", "email": "ann@example.com", "FIRSTNAME": "Ann"}
    ]
    assert await faults_answered(b"", media_type) == []
    assert await faults_answered(b"Reason,email\r\n", media_type) == []


@pytest.mark.parametrize(
    "body",
    [
        b"<!DOCTYPE html><html><body>Service Unavailable</body></html>",
        b'{"message": "Import is not processed yet. ERROR_IMPORT_REPORT_NOT_FOUND"}',
    ],
    ids=["html", "json"],
)
@pytest.mark.asyncio
async def test_a_fault_report_without_an_email_column_is_refused_not_read_as_no_faults(body: bytes) -> None:
    with pytest.raises(PermanentError, match=r"GET /v2/contacts/import/1b2c/report-faults is not the fault"):
        await faults_answered(body, "application/octet-stream")


@pytest.mark.asyncio
async def test_too_many_active_imports_is_transient_with_its_code() -> None:
    async with dotdigital(max_active_imports=1, import_stalls=True) as (client, _, _sent):
        rows = [{"Email": "ann@example.com"}]
        await client.import_contacts(rows, address_book_id=None, columns=[])
        with pytest.raises(DotdigitalBusy) as busy:
            await client.import_contacts(rows, address_book_id=None, columns=[])
    assert busy.value.code == "ERROR_IMPORT_TOOMANYACTIVEIMPORTS"
    assert busy.value.retry_after is not None and busy.value.retry_after > 0


def test_import_rows_are_split_into_files_under_the_limit() -> None:
    rows = [{"Email": f"person{i}@example.com", "CITY": "Leeds" * (i % 5)} for i in range(200)]
    runs = wire.split_for_import(rows, ["CITY"], max_bytes=600)
    assert len(runs) > 1
    assert [row for run in runs for row in run] == rows
    assert all(len(wire.import_csv(run, ["CITY"])) <= 600 for run in runs)
    assert wire.split_for_import([], ["CITY"]) == []


@pytest.mark.asyncio
async def test_an_oversized_import_file_is_refused_before_sending() -> None:
    async with dotdigital() as (client, _, sent):
        with pytest.raises(ValueError, match="split_for_import"):
            await client.import_contacts(
                [{"Email": "a@example.com"}] * 10, address_book_id=None, columns=[], max_bytes=50
            )
    assert sent == []


@pytest.mark.asyncio
async def test_suppress_then_suppressed_since() -> None:
    async with dotdigital() as (client, state, _sent):
        before = state.now() - timedelta(seconds=1)
        state.add_contact("kept@example.com")
        state.add_contact("Quiet@Example.com")
        done, missing = await client.suppress(["quiet@example.com", "nobody@example.com"])
        await client.unsubscribe("left@example.com")
        since = await collect(client.suppressed_since(before))
    assert (done, missing) == (["Quiet@Example.com"], ["nobody@example.com"])
    assert {(s.suppressed_contact.email, s.reason) for s in since} == {
        ("Quiet@Example.com", "Suppressed"),
        ("left@example.com", "Unsubscribed"),
    }
    assert all(s.date_removed is not None for s in since)


@pytest.mark.asyncio
async def test_bulk_removal_from_a_book() -> None:
    async with dotdigital(deletion_polls=2) as (client, state, _sent):
        book = await client.create_address_book("Leaving")
        people = [state.add_contact(f"p{i}@example.com") for i in range(5)]
        for person in people:
            state.add_member(book.id, person)
        job = await client.remove_from_address_book(book.id, [people[0].id, people[3].id])
        statuses = [await client.deletion_status(job), await client.deletion_status(job)]
        left = await collect(client.address_book_members(book.id))
    assert statuses == ["Started", "Completed"]
    assert [c.email for c in left] == ["p1@example.com", "p2@example.com", "p4@example.com"]


@pytest.mark.asyncio
async def test_campaign_activity_and_summary() -> None:
    state = DotdigitalState(Knobs(rate_scheme="none"))
    generate(state, seed=11, contacts=120, address_books=2, campaigns=2)
    async with dotdigital(state, page_size=25) as (client, _, _sent):
        campaigns = await collect(client.campaigns_with_activity_since(BEGINNING))
        first = campaigns[0].id
        activities = await collect(client.campaign_activities(first))
        recent = await collect(client.campaign_activities(first, since=state.now() - timedelta(days=1)))
        opens = await collect(client.campaign_opens(first))
        summary = await client.campaign_summary(first)
    assert len(campaigns) == 2
    assert summary.num_sent == len(activities) > 25
    assert len(recent) <= len(activities)
    assert len(opens) == summary.num_opens == sum(a.num_opens for a in activities)
    assert summary.num_hard_bounces == sum(a.hard_bounced for a in activities)


# -- error mapping ----------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_wrong_password_is_permanent_and_never_echoed() -> None:
    async with dotdigital(password="hunter2-wrong") as (client, _, _sent):
        with pytest.raises(PermanentError) as refused:
            await client.discover_endpoint()
    assert not isinstance(refused.value, DotdigitalError)
    assert "hunter2-wrong" not in str(refused.value)
    assert "API user" in str(refused.value) and "401" in str(refused.value)


@pytest.mark.asyncio
async def test_flat_cap_is_transient_for_a_quarter_hour() -> None:
    async with dotdigital(flat_calls_per_hour=1) as (client, _, _sent):
        await client.discover_endpoint()
        with pytest.raises(DotdigitalBusy) as capped:
            await client.discover_endpoint()
    assert capped.value.code == "ERROR_APIUSAGE_EXCEEDED"
    assert capped.value.retry_after == FLAT_CAP_WAIT


@pytest.mark.asyncio
async def test_429_honours_retry_after() -> None:
    async with dotdigital(faults=Faults(error_429=1.0, retry_after=17)) as (client, _, _sent):
        with pytest.raises(TransientError) as limited:
            await client.discover_endpoint()
    assert limited.value.retry_after == 17


@pytest.mark.asyncio
async def test_tiered_429_reads_the_rate_limit_reset() -> None:
    async with dotdigital(rate_scheme="tiered", tiered_calls_per_minute=1) as (client, _, _sent):
        await client.discover_endpoint()
        with pytest.raises(TransientError) as limited:
            await client.discover_endpoint()
    assert limited.value.retry_after is not None and 0 < limited.value.retry_after <= 60


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("faults", "wait"), [(Faults(error_503=1.0, retry_after=30), 30.0), (Faults(error_500=1.0), None)]
)
async def test_server_errors_are_transient(faults: Faults, wait: float | None) -> None:
    async with dotdigital(faults=faults) as (client, _, _sent):
        with pytest.raises(TransientError) as failed:
            await client.discover_endpoint()
    assert failed.value.retry_after == wait


@pytest.mark.asyncio
async def test_malformed_json_is_transient() -> None:
    async with dotdigital(faults=Faults(malformed=1.0)) as (client, _, _sent):
        with pytest.raises(TransientError, match="not valid JSON"):
            await client.discover_endpoint()


@pytest.mark.asyncio
async def test_dropped_connections_are_transient() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with httpx.AsyncClient(transport=httpx.MockTransport(refuse), base_url=BASE) as http:
        client = DotdigitalClient(http, user=USER, password=PASSWORD)
        with pytest.raises(TransientError, match="ConnectError"):
            await client.discover_endpoint()


@pytest.mark.asyncio
async def test_a_body_of_the_wrong_shape_is_permanent() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "not-a-number", "properties": []})

    async with httpx.AsyncClient(transport=httpx.MockTransport(answer), base_url=BASE) as http:
        client = DotdigitalClient(http, user=USER, password=PASSWORD)
        with pytest.raises(PermanentError, match="shape"):
            await client.discover_endpoint()


_header_text = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=40)
_bodies = st.one_of(
    st.binary(max_size=300),
    st.builds(
        lambda text, code: json.dumps({"message": f"{text} {PASSWORD} {code}"}).encode(),
        st.text(max_size=80),
        st.sampled_from(["ERROR_APIUSAGE_EXCEEDED", "ERROR_IMPORT_TOOMANYACTIVEIMPORTS", "ERROR_X", ""]),
    ),
    st.builds(lambda text: f"<html>{text}{PASSWORD}</html>".encode(), st.text(max_size=400)),
)


@given(
    status=st.integers(100, 599),
    body=_bodies,
    retry_after=st.one_of(st.none(), _header_text, st.integers(-(10**12), 10**12).map(str)),
    reset=st.one_of(st.none(), _header_text, st.floats(allow_nan=True).map(str)),
)
def test_raise_for_only_raises_listsync_errors_without_the_password(
    status: int, body: bytes, retry_after: str | None, reset: str | None
) -> None:
    headers = {k: v for k, v in (("Retry-After", retry_after), ("X-RateLimit-Reset", reset)) if v is not None}
    response = httpx.Response(status, content=body, headers=headers)
    try:
        raise_for(response, redact=[PASSWORD])
    except ListsyncError as error:
        assert not 200 <= status < 300
        assert PASSWORD not in str(error)
        if isinstance(error, TransientError) and error.retry_after is not None:
            assert math.isfinite(error.retry_after) and 0 <= error.retry_after <= MAX_WAIT
        if isinstance(error, DotdigitalError):
            assert error.status == status
    else:
        assert 200 <= status < 300
