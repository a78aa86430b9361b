"""The Dotdigital v2 emulator behaves as the published API does, and its answers match the OpenAPI documents.

Every endpoint listsync uses is held to its document (v2, and the Contacts API v3 for its import):
``test_every_endpoint_the_client_calls_conforms`` drives every method of the client through a transport
that validates each successful answer, and fails when the client calls a path no document names, when
a client method goes unexercised, when a path written in ``client.py`` is never requested, or when the
endpoints validated differ from ``ENDPOINTS``, the list of what listsync uses.
"""

from __future__ import annotations

import ast
import base64
import functools
import inspect
import json
import re
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_core import OpenAPI
from openapi_core.testing import MockRequest, MockResponse

from adapters.dotdigital import client as client_module
from adapters.dotdigital.client import BEGINNING, DotdigitalClient
from adapters.dotdigital.emulator import create_app
from adapters.dotdigital.emulator_data import generate
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from adapters.emulation.faults import Faults

BASE = "https://r1-api.dotdigital.com"
SPECS = Path(__file__).resolve().parents[3] / "shared/vendor-specs/dotdigital"
SPEC = SPECS / "dotdigital-v2-api-swagger.json"
V3_SPEC = SPECS / "dotdigital-contacts-service.json"  # the Contacts API v3, for its import
KNOBS = Knobs()
AUTH = (KNOBS.api_user, KNOBS.api_password)


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@asynccontextmanager
async def client(state: DotdigitalState | None = None, **knobs: Any) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(state, knobs=Knobs(**knobs) if knobs else None)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE, auth=AUTH) as http:
        yield http


@functools.cache
def spec(path: Path = SPEC) -> OpenAPI:
    return OpenAPI.from_file_path(str(path))


def validate(request: httpx.Request, response: httpx.Response, pattern: str, document: Path) -> None:
    """Hold ``response`` to the operation at ``pattern`` of ``document``, its media type included."""
    mock_request = MockRequest(BASE, request.method.lower(), request.url.path, path_pattern=pattern)
    media_type = response.headers.get("content-type", "application/json")
    mock_response = MockResponse(response.content, status_code=response.status_code, content_type=media_type)
    spec(document).validate_response(mock_request, mock_response)


def conforms(response: httpx.Response, pattern: str, document: Path = SPEC) -> Any:
    """Validate ``response`` against the operation at ``pattern`` of ``document``; return its JSON."""
    validate(response.request, response, pattern, document)
    return response.json()


def csv_file(*rows: str) -> bytes:
    return ("\r\n".join(rows) + "\r\n").encode()


async def finish(http: httpx.AsyncClient, import_id: str, polls: int = 10) -> list[str]:
    seen = []
    for _ in range(polls):
        response = await http.get(f"/v2/contacts/import/{import_id}")
        seen.append(conforms(response, "/v2/contacts/import/{importId}")["status"])
        if seen[-1] != "NotFinished":
            break
    return seen


@pytest.mark.asyncio
async def test_calls_without_credentials_are_refused() -> None:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=create_app()), base_url=BASE) as http:
        plain = await http.get("/v2/account-info")
        wrong = await http.get("/v2/account-info", auth=("apiuser-x@apiconnector.com", "nope"))
    assert plain.status_code == wrong.status_code == 401
    assert plain.json() == {"message": "Authorization has been denied for this request."}


@pytest.mark.asyncio
async def test_account_info_names_the_api_endpoint() -> None:
    async with client(api_endpoint="https://r3-api.dotdigital.com/") as http:
        body = conforms(await http.get("/v2/account-info"), "/v2/account-info")
    props = {p["name"]: p["value"] for p in body["properties"]}
    assert props["ApiEndpoint"] == "https://r3-api.dotdigital.com/"


@pytest.mark.asyncio
async def test_address_books_names_limits_and_paging() -> None:
    state = DotdigitalState(Knobs(address_book_limit=3))
    async with client(state) as http:
        made = await http.post("/v2/address-books", json={"name": "CRM Campaign 42", "visibility": "Private"})
        assert made.status_code == 201
        assert conforms(made, "/v2/address-books")["contacts"] == 0
        for name in ("Test", "all contacts", "crm campaign 42"):
            refused = await http.post("/v2/address-books", json={"name": name})
            assert refused.json()["message"].endswith("ERROR_ADDRESSBOOK_DUPLICATE"), name
        assert (await http.post("/v2/address-books", json={"name": "x" * 129})).status_code == 400
        await http.post("/v2/address-books", json={"name": "B"})
        await http.post("/v2/address-books", json={"name": "C", "visibility": "Public"})
        over = await http.post("/v2/address-books", json={"name": "D"})
        assert over.json()["message"].endswith("ERROR_ADDRESSBOOK_LIMITEXCEEDED")
        page = conforms(await http.get("/v2/address-books?select=2&skip=1"), "/v2/address-books")
        assert [b["name"] for b in page] == ["B", "C"]
        assert (await http.get("/v2/address-books?select=1001")).status_code == 400
        book_id = made.json()["id"]
        renamed = await http.put(
            f"/v2/address-books/{book_id}", json={"name": "Renamed", "visibility": "Public"}
        )
        assert conforms(renamed, "/v2/address-books/{id}")["name"] == "Renamed"
        assert (await http.delete(f"/v2/address-books/{book_id}")).status_code == 200
        assert (await http.get(f"/v2/address-books/{book_id}")).status_code == 404


@pytest.mark.asyncio
async def test_data_field_names_and_per_type_limits_count_existing_fields() -> None:
    state = DotdigitalState(Knobs(data_field_limits={"String": 2, "Numeric": 1, "Date": 1, "Boolean": 1}))
    state.create_data_field("EXISTING", "String")
    async with client(state) as http:
        ok = await http.post(
            "/v2/data-fields", json={"name": "crm_id", "type": "String", "visibility": "Private"}
        )
        assert ok.status_code == 201
        dup = await http.post("/v2/data-fields", json={"name": "CRM_ID", "type": "String"})
        assert dup.json() == {"message": "Field already exists. ERROR_NON_UNIQUE_DATAFIELD"}
        for bad in ("x" * 21, "has space", "dollar$", ""):
            refused = await http.post("/v2/data-fields", json={"name": bad, "type": "String"})
            assert "ERROR_DATAFIELD_INVALID" in refused.json()["message"], bad
        assert (
            await http.post("/v2/data-fields", json={"name": "with-hyphen", "type": "Numeric"})
        ).status_code == 201
        full = await http.post("/v2/data-fields", json={"name": "THIRD", "type": "String"})
        assert full.json()["message"].endswith("ERROR_DATAFIELD_LIMITEXCEEDED")
        listed = conforms(await http.get("/v2/data-fields"), "/v2/data-fields")
        assert [f["name"] for f in listed] == ["EXISTING", "CRM_ID", "WITH-HYPHEN"]
        gone = await http.delete("/v2/data-fields/crm_id")
        assert conforms(gone, "/v2/data-fields/{name}") == {"dependencies": [], "result": True}


async def _import_world(http: httpx.AsyncClient, state: DotdigitalState) -> int:
    state.create_data_field("FIRSTNAME", "String")
    state.create_data_field("SCORE", "Numeric")
    suppressed = state.add_contact("gone@example.com")
    state.suppress(suppressed, "Unsubscribed")
    return int((await http.post("/v2/address-books", json={"name": "Import target"})).json()["id"])


@pytest.mark.parametrize("as_multipart", [True, False], ids=["multipart", "base64-json"])
@pytest.mark.asyncio
async def test_import_finishes_after_polls_and_applies_rows(as_multipart: bool) -> None:
    state = DotdigitalState(Knobs(import_polls=2))
    data = csv_file(
        "email,FirstName,Score,Nickname",
        "Ann@Example.com,Ann,7,",
        "bob@example.com,Bob,3,Bobby",
        "not-an-email,Nope,1,",
        "gone@example.com,Gone,1,",
        "ann@example.com,Dup,1,",
        "cy@example.com,Cy,seven,",
    )
    async with client(state) as http:
        book_id = await _import_world(http, state)
        url = f"/v2/address-books/{book_id}/contacts/import"
        if as_multipart:
            sent = await http.post(url, files={"file": ("people.csv", data, "text/csv")})
        else:
            sent = await http.post(
                url, json={"fileName": "people.csv", "data": base64.b64encode(data).decode()}
            )
        assert sent.status_code == 202
        job = conforms(sent, "/v2/address-books/{addressBookId}/contacts/import")
        assert job["status"] == "NotFinished"
        early = await http.get(f"/v2/contacts/import/{job['id']}/report")
        assert early.json()["message"].endswith("ERROR_IMPORT_REPORT_NOT_FOUND")
        assert state.contact_by_email("ann@example.com") is None  # nothing applied before it finishes
        assert await finish(http, job["id"]) == ["NotFinished", "NotFinished", "Finished"]
        report = conforms(
            await http.get(f"/v2/contacts/import/{job['id']}/report"), "/v2/contacts/import/{importId}/report"
        )
        faults = await http.get(f"/v2/contacts/import/{job['id']}/report-faults")
        validate(faults.request, faults, "/v2/contacts/import/{importId}/report-faults", SPEC)
        members = conforms(await http.get(f"/v2/address-books/{book_id}/contacts?withFullData=true"),
                           "/v2/address-books/{addressBookId}/contacts")  # fmt: skip
    assert report["newContacts"] == 2 and report["updatedContacts"] == 0
    assert (report["invalidEntries"], report["duplicateEmails"], report["globallySuppressed"]) == (3, 1, 1)
    assert report["unsubscribed"] == 1
    # The document's media type, with the CSV body the reference and the ReadMe describe.
    assert faults.headers["content-type"] == "application/octet-stream"
    assert faults.text.splitlines() == [
        "Reason,email,FirstName,Score,Nickname",
        "UnknownDataField,bob@example.com,Bob,3,Bobby",
        "InvalidEmail,not-an-email,Nope,1,",
        "Unsubscribed,gone@example.com,Gone,1,",
        "Duplicate,ann@example.com,Dup,1,",
        "InvalidDataFieldValue,cy@example.com,Cy,seven,",
    ]
    assert_counts_agree(report, faults.text)
    assert sorted(m["email"] for m in members) == ["Ann@Example.com", "bob@example.com"]
    ann = {f["key"]: f["value"] for f in members[0]["dataFields"]}
    assert ann == {"FIRSTNAME": "Ann", "SCORE": 7}
    gone = state.contact_by_email("gone@example.com")
    assert gone is not None and gone.id not in state.address_books[book_id].members


# The report counts each fault row once, by its reason; a suppression also in its breakdown.
PROBLEM_COUNTS = ("invalidEntries", "duplicateEmails", "globallySuppressed", "failures")
COUNT_OF_REASON = {"InvalidEmail": "invalidEntries", "InvalidDataFieldValue": "invalidEntries",
                   "UnknownDataField": "invalidEntries", "Duplicate": "duplicateEmails",
                   "Failed": "failures"}  # fmt: skip


def assert_counts_agree(report: dict[str, int], faults_csv: str) -> None:
    """The report's problem counts are the fault rows counted by reason, suppressions as
    globallySuppressed; imported rows are new or updated."""
    reasons = [line.split(",", 1)[0] for line in faults_csv.splitlines()[1:]]
    counted = Counter(COUNT_OF_REASON.get(reason, "globallySuppressed") for reason in reasons)
    assert {key: report[key] for key in PROBLEM_COUNTS} == {key: counted[key] for key in PROBLEM_COUNTS}


@pytest.mark.asyncio
async def test_report_counts_agree_with_the_fault_rows_whatever_goes_wrong() -> None:
    """Random row failures, every suppression reason, bad values, duplicates and unknown columns: the
    counts match the fault rows, and a clean import's counts are all new or updated with no fault."""
    state = DotdigitalState(Knobs(import_polls=0, row_fault_share=0.3), seed=9)
    state.create_data_field("SCORE", "Numeric")
    reasons = ["Unsubscribed", "HardBounced", "IspComplained", "Suppressed", "DirectComplaint", "MailBlocked"]
    for n, reason in enumerate(reasons):
        state.suppress(state.add_contact(f"s{n}@example.com"), reason)
    lines = [f"s{n}@example.com,1," for n in range(len(reasons))]
    lines += [f"p{n}@example.com,{n}," for n in range(30)] + [
        "p1@example.com,1,",
        "x@y,1,",
        "q@example.com,z,",
    ]
    lines += ["u@example.com,1,extra"]
    async with client(state) as http:
        sent = await http.post(
            "/v2/contacts/import", files={"file": ("a.csv", csv_file("Email,SCORE,OTHER", *lines))}
        )
        assert await finish(http, sent.json()["id"]) == ["Finished"]
        report = (await http.get(f"/v2/contacts/import/{sent.json()['id']}/report")).json()
        faults = (await http.get(f"/v2/contacts/import/{sent.json()['id']}/report-faults")).text
        state.tune(row_fault_share=0.0)
        clean = await http.post(
            "/v2/contacts/import", files={"file": ("b.csv", csv_file("Email", "c@example.com"))}
        )
        assert await finish(http, clean.json()["id"]) == ["Finished"]
        clean_report = (await http.get(f"/v2/contacts/import/{clean.json()['id']}/report")).json()
        clean_faults = (await http.get(f"/v2/contacts/import/{clean.json()['id']}/report-faults")).text
    assert 0 < report["failures"] < 30 and report["globallySuppressed"] == len(reasons)
    breakdown = (
        "unsubscribed",
        "hardBounced",
        "ispComplaints",
        "suppressedContacts",
        "blocked",
        "mailBlocked",
    )
    assert [report[key] for key in breakdown] == [1] * len(breakdown)
    assert_counts_agree(report, faults)
    imported = report["newContacts"] + report["updatedContacts"]
    assert imported == len(lines) - sum(report[key] for key in PROBLEM_COUNTS) + 1  # u@ is both
    assert {k: v for k, v in clean_report.items() if v} == {"newContacts": 1}
    assert clean_faults.splitlines() == ["Reason,email"]


@pytest.mark.asyncio
async def test_v3_import_creates_contacts_unsubscribed_and_lists_failures_inline() -> None:
    state = DotdigitalState(Knobs(import_polls=1))
    state.create_data_field("FIRSTNAME", "String")
    known = state.add_contact("known@example.com")
    state.suppress(state.add_contact("gone@example.com"), "HardBounced")

    def entry(email: str, status: str | None = "unsubscribed", **data: str) -> dict[str, Any]:
        item: dict[str, Any] = {
            "matchIdentifier": "email",
            "identifiers": {"email": email},
            "dataFields": data,
        }
        if status:
            item["channelProperties"] = {"email": {"status": status}}
        return item

    contacts = [
        entry("new@example.com", FIRSTNAME="Nia"),
        entry("KNOWN@example.com"),
        entry("new@example.com"),
        entry("bad@@example"),
        entry("gone@example.com", None),
        entry("odd@example.com", NOFIELD="x"),
    ]
    async with client(state) as http:
        submitted = await http.put(
            "/contacts/v3/import", json={"mergeOption": "overwrite", "contacts": contacts}
        )
        import_id = conforms(submitted, "/contacts/v3/import", V3_SPEC)["importId"]
        pattern = "/contacts/v3/import/{importId}"
        first = conforms(await http.get(f"/contacts/v3/import/{import_id}"), pattern, V3_SPEC)
        assert first == {"importId": import_id, "status": "NotFinished"}
        assert state.contact_by_email("new@example.com") is None  # applied only when finished
        done = conforms(await http.get(f"/contacts/v3/import/{import_id}"), pattern, V3_SPEC)
        missing = await http.get("/contacts/v3/import/00000000-0000-4000-8000-000000000000")
    assert done["status"] == "Finished"
    assert done["summary"] == {
        "newContacts": 1,
        "updatedContacts": 1,
        "globallySuppressed": 1,
        "invalidEntries": 2,
        "duplicateIdentifiers": 1,
    }
    failed = {f["identifiers"]["email"]: f["failures"][0]["failureCode"] for f in done["failures"]}
    assert failed == {
        "new@example.com": "duplicateIdentifier",
        "bad@@example": "invalidEmail",
        "gone@example.com": "contactSuppressed",
        "odd@example.com": "invalidDataField",
    }
    new = state.contact_by_email("new@example.com")
    assert new is not None and new.status == "Unsubscribed" and new.data == {"FIRSTNAME": "Nia"}
    assert known.status == "Unsubscribed" and state.suppressions[known.id].reason == "Unsubscribed"
    assert missing.status_code == 404 and missing.json()["errorCode"] == "contacts:importNotFound"


@pytest.mark.asyncio
async def test_v2_and_v3_imports_share_the_active_import_limit() -> None:
    state = DotdigitalState(Knobs(max_active_imports=1, import_stalls=True))
    body = {"contacts": [{"matchIdentifier": "email", "identifiers": {"email": "a@example.com"}}]}
    async with client(state) as http:
        assert (await http.put("/contacts/v3/import", json=body)).status_code == 202
        refused = await http.put("/contacts/v3/import", json=body)
        v2 = await http.post("/v2/contacts/import", json={"fileName": "a.csv", "data": "RW1haWwNCg=="})
    assert refused.status_code == 429 and refused.json()["errorCode"] == "contacts:tooManyActiveImports"
    assert v2.status_code == 400 and "ERROR_IMPORT_TOOMANYACTIVEIMPORTS" in v2.json()["message"]


@pytest.mark.asyncio
async def test_import_without_email_column_is_invalid_file_format() -> None:
    async with client(import_polls=0) as http:
        sent = await http.post(
            "/v2/contacts/import", files={"file": ("x.csv", csv_file("name", "Ann"), "text/csv")}
        )
        assert await finish(http, sent.json()["id"]) == ["InvalidFileFormat"]


@pytest.mark.asyncio
async def test_twenty_sixth_concurrent_import_is_refused() -> None:
    async with client() as http:
        payload = {"fileName": "a.csv", "data": base64.b64encode(csv_file("Email", "a@example.com")).decode()}
        for _ in range(25):
            assert (await http.post("/v2/contacts/import", json=payload)).status_code == 202
        refused = await http.post("/v2/contacts/import", json=payload)
    assert refused.status_code == 400
    assert refused.json()["message"].endswith("ERROR_IMPORT_TOOMANYACTIVEIMPORTS")


@pytest.mark.asyncio
async def test_suppressions_are_listed_with_reasons_and_complaints_stay_suppressed() -> None:
    state = DotdigitalState()
    complainer = state.add_contact("angry@example.com")
    state.suppress(complainer, "IspComplained")
    async with client(state) as http:
        created = await http.post("/v2/contacts", json={"email": "kim@example.com", "dataFields": []})
        assert conforms(created, "/v2/contacts")["status"] == "Subscribed"
        gone = await http.post("/v2/contacts/unsubscribe", json={"email": "kim@example.com"})
        assert conforms(gone, "/v2/contacts/unsubscribe")["reason"] == "Unsubscribed"
        targets = [{"email": "angry@example.com"}, {"email": "nobody@example.com"}]
        batch = await http.put("/v2/contacts/suppress-contacts", json=targets)
        assert (
            conforms(batch, "/v2/contacts/suppress-contacts")["notFound"][0]["email"] == "nobody@example.com"
        )
        since = conforms(
            await http.get("/v2/contacts/suppressed-since/2020-01-01"), "/v2/contacts/suppressed-since/{date}"
        )
        unsubs = await http.get("/v2/contacts/unsubscribed-since/2020-01-01T00:00:00Z")
        again = await http.post("/v2/contacts", json={"email": "KIM@example.com"})
        refused = await http.post(
            "/v2/contacts/resubscribe", json={"unsubscribedContact": {"email": "angry@example.com"}}
        )
        allowed = await http.post(
            "/v2/contacts/resubscribe", json={"unsubscribedContact": {"email": "kim@example.com"}}
        )
        fetched = conforms(await http.get("/v2/contacts/kim@example.com"), "/v2/contacts/{email}")
    assert {(s["suppressedContact"]["email"], s["reason"]) for s in since} == {
        ("angry@example.com", "IspComplained"), ("kim@example.com", "Unsubscribed"),
    }  # fmt: skip
    assert [
        s["suppressedContact"]["email"] for s in conforms(unsubs, "/v2/contacts/unsubscribed-since/{date}")
    ] == ["kim@example.com"]
    assert again.json()["message"] == "Contact is suppressed. ERROR_CONTACT_SUPPRESSED"
    assert conforms(refused, "/v2/contacts/resubscribe")["status"] == "ContactCannotBeUnsuppressed"
    assert allowed.json()["status"] == "ContactAdded" and fetched["status"] == "Subscribed"
    assert state.suppressions[complainer.id].reason == "IspComplained"


@pytest.mark.asyncio
async def test_flat_rate_limit_caps_per_hour_then_recovers() -> None:
    clock = FakeClock()
    state = DotdigitalState(Knobs(rate_scheme="flat", flat_calls_per_hour=3), clock=clock)
    async with client(state) as http:
        codes = [(await http.get("/v2/data-fields")).status_code for _ in range(4)]
        capped = await http.get("/v2/data-fields")
        clock.now += 3600
        recovered = await http.get("/v2/data-fields")
    assert codes == [200, 200, 200, 400]
    assert capped.json()["message"].endswith("ERROR_APIUSAGE_EXCEEDED")
    assert recovered.status_code == 200
    assert len(state.calls) == 6


@pytest.mark.asyncio
async def test_tiered_rate_limit_answers_429_with_headers() -> None:
    clock = FakeClock()
    state = DotdigitalState(Knobs(rate_scheme="tiered", tiered_calls_per_minute=2), clock=clock)
    async with client(state) as http:
        first = await http.get("/v2/data-fields")
        await http.get("/v2/data-fields")
        clock.now += 20
        over = await http.get("/v2/data-fields")
        clock.now += 40
        later = await http.get("/v2/data-fields")
    assert first.headers["X-RateLimit-Remaining"] == "1"
    assert over.status_code == 429
    assert over.headers["X-RateLimit-Limit"] == "2" and over.headers["X-RateLimit-Remaining"] == "0"
    assert over.headers["X-RateLimit-Reset"] == "40" and over.headers["X-RateLimit-Scope"] == "lowCallRate"
    assert later.status_code == 200


@pytest.mark.asyncio
async def test_fault_knobs_server_errors_retry_after_and_stalled_imports() -> None:
    faults = Faults(error_503=0.5, seed=3)
    state = DotdigitalState(seed=3)
    transport = httpx.ASGITransport(app=create_app(state, faults=faults))
    async with httpx.AsyncClient(transport=transport, base_url=BASE, auth=AUTH) as http:
        codes = [(await http.get("/v2/data-fields")).status_code for _ in range(40)]
        assert 10 < codes.count(503) < 30 and set(codes) == {200, 503}
        faults.update({"503": 0.0, "429": 1.0, "retry_after": 7})
        limited = await http.get("/v2/data-fields")
        assert limited.status_code == 429 and limited.headers["Retry-After"] == "7"
        assert limited.json() == {"message": "Too Many Requests"}
        faults.update({"429": 0.0, "malformed": 1.0})
        state.tune(import_stalls=True)
        broken = await http.get("/v2/data-fields")
        with pytest.raises(ValueError):
            json.loads(broken.content or b"{")
        faults.malformed = 0.0
        sent = await http.post(
            "/v2/contacts/import", files={"file": ("a.csv", csv_file("Email", "a@example.com"))}
        )
        assert await finish(http, sent.json()["id"], polls=6) == ["NotFinished"] * 6
        state.tune(import_stalls=False, import_outcome="RejectedByWatchdog", import_polls=0)
        again = await http.post(
            "/v2/contacts/import", files={"file": ("a.csv", csv_file("Email", "a@example.com"))}
        )
        assert await finish(http, again.json()["id"]) == ["RejectedByWatchdog"]
    assert faults.injected == {"503": codes.count(503), "429": 1, "malformed": 1}


@pytest.mark.asyncio
async def test_generated_account_and_campaign_activity() -> None:
    state = DotdigitalState(Knobs(rate_scheme="none"), seed=1)
    generate(state, seed=11, contacts=300, address_books=3, campaigns=2)
    twin = DotdigitalState(seed=1)
    generate(twin, seed=11, contacts=300, address_books=3, campaigns=2)
    assert [c.email for c in state.contacts.values()] == [c.email for c in twin.contacts.values()]
    emails = [c.email for c in state.contacts.values()]
    assert len({e.lower() for e in emails}) == 300 and any(e != e.lower() for e in emails)
    reasons = {s.reason for s in state.suppressions.values()}
    assert {"Unsubscribed", "HardBounced"} <= reasons
    campaign = next(iter(state.campaigns.values()))
    async with client(state) as http:
        listed = conforms(await http.get("/v2/campaigns"), "/v2/campaigns")
        active = await http.get("/v2/campaigns/with-activity-since/2000-01-01")
        summary = conforms(
            await http.get(f"/v2/campaigns/{campaign.id}/summary"), "/v2/campaigns/{campaignId}/summary"
        )
        acts = await http.get(f"/v2/campaigns/{campaign.id}/activities/since-date/2000-01-01")
        opens = await http.get(f"/v2/campaigns/{campaign.id}/opens/since-date/2000-01-01T00:00:00Z")
        clicks = await http.get(f"/v2/campaigns/{campaign.id}/clicks")
        bounced = await http.get(f"/v2/campaigns/{campaign.id}/hard-bouncing-contacts")
    assert len(listed) == 2 and len(conforms(active, "/v2/campaigns/with-activity-since/{date}")) == 2
    rows = conforms(acts, "/v2/campaigns/{campaignId}/activities/since-date/{date}")
    assert summary["numSent"] == len(rows) > 0
    assert summary["numOpens"] == len(conforms(opens, "/v2/campaigns/{campaignId}/opens/since-date/{date}"))
    assert summary["numClicks"] == len(conforms(clicks, "/v2/campaigns/{campaignId}/clicks"))
    hard = conforms(bounced, "/v2/campaigns/{campaignId}/hard-bouncing-contacts")
    assert summary["numHardBounces"] == sum(r["hardBounced"] for r in rows) == len(hard)
    assert all(c["status"] == "HardBounced" for c in hard)


@pytest.mark.asyncio
async def test_generate_activity_marks_hard_bounces_suppressed() -> None:
    from adapters.dotdigital.emulator_data import ActivityShares

    state = DotdigitalState(seed=5)
    book = state.create_address_book("Everyone")
    for n in range(20):
        state.add_member(book.id, state.add_contact(f"p{n}@example.com"))
    campaign = state.add_campaign("Launch", book_ids=[book.id])
    assert state.generate_activity(campaign.id, ActivityShares(hard_bounce=1.0)) == 20
    assert all(state.suppressions[c].reason == "HardBounced" for c in book.members)
    async with client(state) as http:
        since = await http.get("/v2/contacts/suppressed-since/2000-01-01")
        deletion = await http.post(f"/v2/address-books/{book.id}/contacts/delete", json=[1, 2])
        job = conforms(deletion, "/v2/address-books/{addressBookId}/contacts/delete")
        done = await http.get(f"/v2/contacts/deletion/{job['id']}")
    assert len(since.json()) == 20
    assert conforms(done, "/v2/contacts/deletion/{deletionRequestId}")["status"] == "Completed"
    assert 1 not in book.members and 3 in book.members


@pytest.mark.asyncio
async def test_a_campaigns_address_books_are_the_existing_books_it_was_sent_to() -> None:
    state = DotdigitalState()
    books = [state.create_address_book(name) for name in ("Spring", "Webinar", "Gone", "Unused")]
    campaign = state.add_campaign("Launch", book_ids=[b.id for b in books[:3]])
    del state.address_books[books[2].id]
    async with client(state) as http:
        every = await http.get(f"/v2/campaigns/{campaign.id}/address-books")
        second = await http.get(f"/v2/campaigns/{campaign.id}/address-books?select=1&skip=1")
        missing = await http.get("/v2/campaigns/999/address-books")
    pattern = "/v2/campaigns/{campaignId}/address-books"
    assert [b["name"] for b in conforms(every, pattern)] == ["Spring", "Webinar"]
    assert [b["name"] for b in conforms(second, pattern)] == ["Webinar"]
    assert missing.json()["message"].endswith("ERROR_CAMPAIGN_NOT_FOUND")


# -- every endpoint listsync uses, held to its document -------------------------------------------------
# What the client calls, as (method, the document's path): the list the test below checks both ways.
ENDPOINTS = {
    ("GET", "/v2/account-info"),
    ("GET", "/v2/address-books"),
    ("POST", "/v2/address-books"),
    ("GET", "/v2/address-books/{addressBookId}/contacts"),
    ("GET", "/v2/address-books/{addressBookId}/contacts/unsubscribed-since/{date}"),
    ("POST", "/v2/address-books/{addressBookId}/contacts/delete"),
    ("GET", "/v2/contacts/deletion/{deletionRequestId}"),
    ("GET", "/v2/contacts/modified-since/{date}"),
    ("GET", "/v2/contacts/suppressed-since/{date}"),
    ("PUT", "/v2/contacts/suppress-contacts"),
    ("POST", "/v2/contacts/unsubscribe"),
    ("POST", "/v2/contacts/resubscribe"),
    ("POST", "/v2/contacts/resubscribe-with-no-challenge"),
    ("GET", "/v2/data-fields"),
    ("POST", "/v2/data-fields"),
    ("POST", "/v2/address-books/{addressBookId}/contacts/import"),
    ("POST", "/v2/contacts/import"),
    ("GET", "/v2/contacts/import/{importId}"),
    ("GET", "/v2/contacts/import/{importId}/report"),
    ("GET", "/v2/contacts/import/{importId}/report-faults"),
    ("PUT", "/contacts/v3/import"),
    ("GET", "/contacts/v3/import/{importId}"),
    ("GET", "/v2/campaigns/with-activity-since/{date}"),
    ("GET", "/v2/campaigns/{campaignId}/address-books"),
    ("GET", "/v2/campaigns/{campaignId}/summary"),
    *(("GET", f"/v2/campaigns/{{campaignId}}/{feed}") for feed in ("activities", "opens", "clicks")),
    *(
        ("GET", f"/v2/campaigns/{{campaignId}}/{feed}/since-date/{{date}}")
        for feed in ("activities", "opens", "clicks")
    ),
}
_HOLE = re.compile(r"\{[^}]+\}")


@functools.cache
def operations(document: Path) -> dict[str, frozenset[str]]:
    """The document's paths, each with the methods it has operations for (upper-case)."""
    paths = json.loads(document.read_text())["paths"]
    return {path: frozenset(method.upper() for method in methods) for path, methods in paths.items()}


def operation_of(method: str, path: str) -> tuple[str, Path]:
    """The document and its path a request is for; of several that fit, the most literal one."""
    document = V3_SPEC if path.startswith("/contacts/v3/") else SPEC
    fits = [
        pattern
        for pattern, methods in operations(document).items()
        if method in methods and re.fullmatch(_HOLE.sub("[^/]+", pattern), path)
    ]
    assert fits, f"{method} {path} is no operation of {document.name}"
    return max(fits, key=lambda pattern: len(_HOLE.sub("", pattern))), document


class Conforming(httpx.AsyncBaseTransport):
    """The emulator, with each successful answer held to the document's operation for its request;
    ``validated`` collects the operations, ``paths`` every path requested."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner
        self.validated: set[tuple[str, str]] = set()
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self._inner.handle_async_request(request)
        await response.aread()
        self.paths.append(request.url.path)
        if response.is_success:
            pattern, document = operation_of(request.method, request.url.path)
            validate(request, response, pattern, document)
            self.validated.add((request.method, pattern))
        return response


def client_paths() -> list[re.Pattern[str]]:
    """Every request path ``client.py`` writes down, as a pattern: the literal text, with each
    f-string hole matching anything."""
    tree = ast.parse(inspect.getsource(client_module))
    inside = {id(part) for node in ast.walk(tree) if isinstance(node, ast.JoinedStr) for part in node.values}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(
                re.escape(str(part.value)) if isinstance(part, ast.Constant) else ".*" for part in node.values
            )
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in inside:
            text = re.escape(node.value)
        else:
            continue
        if text.startswith(("/v2", "/contacts/v3")):
            found.append(re.compile(text))
    return found


async def exercise(api: DotdigitalClient) -> None:
    """Every method of the client, each branch that picks another endpoint taken, on a generated
    account with activity; each job polled to its end."""

    async def each(items: AsyncIterator[Any]) -> list[Any]:
        return [item async for item in items]

    await api.discover_endpoint()
    book = await api.create_address_book("Conformance")
    left = []
    for listed in await each(api.address_books()):
        left += await each(api.address_book_unsubscribed_since(listed.id, BEGINNING))
    assert left, "the account has a contact unsubscribed from one of its books"
    await api.create_data_field("REGION", "String")
    await api.data_fields()
    rows = [{"Email": "new@example.com", "REGION": "North"}, {"Email": "not-an-email", "REGION": "?"}]
    for book_id in (book.id, None):
        job = await api.import_contacts(rows, address_book_id=book_id, columns=["REGION"])
        while await api.import_status(job) == "NotFinished":
            pass
        await api.import_report(job)
        assert [fault["Reason"] for fault in await api.import_faults(job)] == ["InvalidEmail"]
    members = await each(api.address_book_members(book.id))
    deletion = await api.remove_from_address_book(book.id, [member.id for member in members])
    while await api.deletion_status(deletion) == "Started":
        pass
    subscribed = next(c for c in await each(api.contacts()) if c.status == "Subscribed")
    await each(api.contacts_modified_since(BEGINNING, with_full_data=False))
    await api.suppress([subscribed.email, "nobody@example.com"])
    for challenge in (True, False):
        await api.unsubscribe("left@example.com")
        assert (await api.resubscribe("left@example.com", {}, challenge=challenge)).status == "ContactAdded"
    await each(api.suppressed_since(BEGINNING))
    unsubscribing = await api.import_unsubscribed(["gone@example.com", "bad@@example"])
    while (await api.v3_import_status(unsubscribing)).status == "NotFinished":
        pass
    campaign = (await each(api.campaigns_with_activity_since(BEGINNING)))[0].id
    await each(api.campaign_address_books(campaign))
    for since in (None, BEGINNING):
        await each(api.campaign_activities(campaign, since))
        await each(api.campaign_opens(campaign, since))
        await each(api.campaign_clicks(campaign, since))
    await api.campaign_summary(campaign)


@pytest.mark.asyncio
async def test_every_endpoint_the_client_calls_conforms(monkeypatch: pytest.MonkeyPatch) -> None:
    state = DotdigitalState(Knobs(rate_scheme="none", import_polls=1), seed=2)
    generate(state, seed=2, contacts=40, address_books=2, campaigns=1)
    first = next(iter(state.address_books.values()))
    state.unsubscribe_from_book(first.id, state.members(first.id)[0].email)
    methods = {name for name, value in vars(DotdigitalClient).items() if inspect.isfunction(value)}
    methods = {name for name in methods if not name.startswith("_")}
    called: set[str] = set()
    for name in methods:
        method = getattr(DotdigitalClient, name)

        def spy(
            self: DotdigitalClient, *args: Any, _name: str = name, _method: Any = method, **kw: Any
        ) -> Any:
            called.add(_name)
            return _method(self, *args, **kw)

        monkeypatch.setattr(DotdigitalClient, name, spy)
    conforming = Conforming(httpx.ASGITransport(app=create_app(state)))
    async with httpx.AsyncClient(transport=conforming, base_url=BASE) as http:
        await exercise(DotdigitalClient(http, user=AUTH[0], password=AUTH[1]))
    assert called == methods, f"not exercised: {sorted(methods - called)}"
    unrequested = [
        p.pattern for p in client_paths() if not any(p.fullmatch(path) for path in conforming.paths)
    ]
    assert not unrequested, f"client.py paths never requested here: {unrequested}"
    assert conforming.validated == ENDPOINTS
