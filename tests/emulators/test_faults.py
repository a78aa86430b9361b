"""The shared fault layer: each fault reaches the real clients of all four vendors as the engine
error it stands for, over ASGITransport and over a real socket; shares are honoured; the control API
steers it. (Each ESP's bulk jobs failing and stalling: `test_job_faults.py`.)"""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from adapters.constantcontact.client import ConstantContactClient
from adapters.constantcontact.emulator import create_app as constantcontact_app
from adapters.constantcontact.emulator_state import ConstantContactState
from adapters.constantcontact.emulator_state import Knobs as ConstantContactKnobs
from adapters.constantcontact.oauth import TokenEndpoint, TokenKeeper
from adapters.dotdigital.client import DotdigitalClient
from adapters.dotdigital.emulator import create_app as dotdigital_app
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from adapters.emulation.faults import Faults, FaultSpecError, parse_spec
from adapters.emulation.layer import ConnectionDropped, Control, FaultLayer
from adapters.mailchimp.client import MailchimpClient
from adapters.mailchimp.emulator import create_app as mailchimp_app
from adapters.mailchimp.emulator_state import Knobs as MailchimpKnobs
from adapters.mailchimp.emulator_state import MailchimpState
from adapters.workbooks.client import WorkbooksClient
from adapters.workbooks.emulator import create_app as workbooks_app
from adapters.workbooks.emulator_data import generate
from adapters.workbooks.emulator_state import DEFAULT_API_KEY, WorkbooksState
from engine.budgets import Budget
from engine.cli import main
from engine.contract import OAuthTokens
from engine.errors import TransientError
from engine.http import budgeted_client
from tests.emulators.serving import served

USER, PASSWORD = Knobs().api_user, Knobs().api_password
DEADLINE = 0.2  # the clients' deadline here; injected timeouts hold calls longer
# A call through the vendor's real client, given the HTTP client and the emulator's app.
Call = Callable[[httpx.AsyncClient, Starlette], Awaitable[object]]


def dotdigital_call(http: httpx.AsyncClient, app: Starlette) -> Awaitable[object]:
    return DotdigitalClient(http, user=USER, password=PASSWORD).discover_endpoint()


def workbooks_call(http: httpx.AsyncClient, app: Starlette) -> Awaitable[object]:
    return WorkbooksClient(http, api_key=DEFAULT_API_KEY).read("crm/people")


class _Granted:
    """A token store holding a grant the emulator issued, good for a day."""

    def __init__(self, state: ConstantContactState) -> None:
        issued = state.grants.issue("contact_data campaign_data offline_access")
        self.tokens = OAuthTokens(
            str(issued["access_token"]), str(issued["refresh_token"]), time.time() + 86_400
        )

    async def load(self) -> OAuthTokens | None:
        return self.tokens

    async def save(self, tokens: OAuthTokens) -> None:
        self.tokens = tokens


async def constantcontact_call(http: httpx.AsyncClient, app: Starlette) -> object:
    state: ConstantContactState = app.state.constantcontact
    knobs = state.knobs
    endpoint = TokenEndpoint(http, client_id=knobs.client_id, client_secret=knobs.client_secret)
    keeper = TokenKeeper(endpoint, _Granted(state))
    return [made async for made in ConstantContactClient(http, keeper).lists()]


def mailchimp_call(http: httpx.AsyncClient, app: Starlette) -> Awaitable[object]:
    return MailchimpClient(http, api_key=MailchimpKnobs().api_key).ping()


VENDORS: dict[str, tuple[Callable[[], Starlette], Call]] = {
    "dotdigital": (lambda: dotdigital_app(DotdigitalState()), dotdigital_call),
    "workbooks": (lambda: workbooks_app(WorkbooksState()), workbooks_call),
    "constant-contact": (
        lambda: constantcontact_app(ConstantContactState(ConstantContactKnobs(rate_limited=False))),
        constantcontact_call,
    ),
    "mailchimp": (lambda: mailchimp_app(MailchimpState()), mailchimp_call),
}
# What each fault looks like once the client has mapped it: (retry_after, words in the message).
EXPECTED: dict[str, tuple[float | None, str]] = {
    "500": (None, "500"),
    "503": (2.0, "503|Unavailable|unavailable"),
    "429": (2.0, "429"),
    "timeout": (None, "ReadTimeout"),
    # Over a socket a drop reads as an incomplete answer or, when the close races the read, as a
    # reset (ReadError); CI has seen both.
    "drop": (None, "RemoteProtocolError|ReadError|ConnectionDropped"),
    "malformed": (None, "not valid JSON|malformed JSON"),
}


@pytest.fixture(scope="module")
def sockets() -> Iterator[dict[str, tuple[Starlette, str]]]:
    """Each vendor's emulator served on a real socket once for the module; tests swap its faults."""
    with ExitStack() as stack:
        apps = {vendor: make() for vendor, (make, _) in VENDORS.items()}
        yield {vendor: (app, stack.enter_context(served(app))) for vendor, app in apps.items()}


@asynccontextmanager
async def http_to(app: Starlette, url: str | None) -> AsyncIterator[httpx.AsyncClient]:
    """A budgeted client, as the engine builds one, to `app` through ASGITransport, or to `url`."""
    transport = httpx.ASGITransport(app=app) if url is None else None
    async with budgeted_client(
        url or "http://emulator", Budget("test", None), transport=transport, deadline=DEADLINE
    ) as http:
        yield http


def reach(vendor: str, over: str, sockets: dict[str, tuple[Starlette, str]]) -> tuple[Starlette, str | None]:
    """The vendor's app and, over a socket, its URL; the socket's app is shared by the module."""
    return sockets[vendor] if over == "socket" else (VENDORS[vendor][0](), None)


@pytest.mark.asyncio
@pytest.mark.parametrize("over", ["asgi", "socket"])
@pytest.mark.parametrize("vendor", sorted(VENDORS))
@pytest.mark.parametrize("kind", sorted(EXPECTED))
async def test_each_fault_reaches_the_client_as_a_transient_error(
    vendor: str, kind: str, over: str, sockets: dict[str, tuple[Starlette, str]]
) -> None:
    app, url = reach(vendor, over, sockets)
    faults = Faults(script=[kind], retry_after=2, timeout_after=DEADLINE * 3, after_run=0.0)
    app.state.control.faults = faults
    call = VENDORS[vendor][1]
    async with http_to(app, url) as http:
        with pytest.raises(TransientError) as failed:
            await call(http, app)
        await call(http, app)  # the next call, unscripted, goes through
    retry_after, words = EXPECTED[kind]
    assert failed.value.retry_after == retry_after
    assert re.search(words, str(failed.value)), str(failed.value)
    assert faults.injected == {kind: 1} and faults.calls == 2


@pytest.mark.asyncio
@pytest.mark.parametrize("over", ["asgi", "socket"])
@pytest.mark.parametrize("after_run", [0.0, 1.0])
async def test_a_lost_answer_may_come_after_the_call_ran(
    over: str, after_run: float, sockets: dict[str, tuple[Starlette, str]]
) -> None:
    app, url = reach("dotdigital", over, sockets)
    app.state.control.faults = Faults(script=["drop"], after_run=after_run)
    name = f"Lost {over} {after_run}"
    async with http_to(app, url) as http:
        client = DotdigitalClient(http, user=USER, password=PASSWORD)
        with pytest.raises(TransientError):
            await client.create_address_book(name)
    state: DotdigitalState = app.state.dotdigital
    assert (name in [b.name for b in state.address_books.values()]) == bool(after_run)


def plain_app(faults: Faults) -> Starlette:
    async def hello(request: Request) -> JSONResponse:
        return JSONResponse({"hello": "world", "padding": "x" * 40})

    return Starlette(
        routes=[Route("/hello", hello)], middleware=[Middleware(FaultLayer, control=Control(faults))]
    )


async def outcomes(faults: Faults, calls: int) -> Counter[str]:
    """What a client sees of `calls` calls to a plain app behind `faults`, by fault kind."""
    seen: Counter[str] = Counter()
    transport = httpx.ASGITransport(app=plain_app(faults))
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as http:
        for _ in range(calls):
            try:
                answer = await http.get("/hello")
            except ConnectionDropped:
                seen["drop"] += 1
                continue
            try:
                answer.json()
                seen[str(answer.status_code) if answer.status_code != 200 else "ok"] += 1
            except json.JSONDecodeError:
                seen["malformed"] += 1
    return seen


@pytest.mark.asyncio
async def test_any_app_behind_the_layer_fails_the_shares_asked_for() -> None:
    shares = {"500": 0.1, "503": 0.05, "429": 0.05, "drop": 0.05, "malformed": 0.05}
    faults = Faults(seed=11)
    faults.update(shares)
    calls = 600
    seen = await outcomes(faults, calls)
    assert seen == {**faults.injected, "ok": calls - sum(faults.injected.values())}
    for kind, share in shares.items():
        spread = 4 * (calls * share * (1 - share)) ** 0.5  # four standard deviations
        assert abs(seen[kind] - calls * share) < spread, (kind, seen)


@pytest.mark.asyncio
@pytest.mark.parametrize("vendor", sorted(VENDORS))
async def test_each_vendors_client_fails_the_share_of_calls_asked_for(vendor: str) -> None:
    shares = {"500": 0.08, "503": 0.06, "429": 0.06, "drop": 0.06, "malformed": 0.06}
    make, call = VENDORS[vendor]
    app = make()
    faults = Faults(seed=5)
    faults.update(shares)
    app.state.control.faults = faults
    calls, failed = 300, 0
    async with http_to(app, None) as http:
        for _ in range(calls):
            try:
                await call(http, app)
            except TransientError:
                failed += 1
    assert faults.calls == calls and failed == sum(faults.injected.values())  # each fault, and only faults
    for kind, share in shares.items():
        spread = 4 * (calls * share * (1 - share)) ** 0.5
        assert abs(faults.injected[kind] - calls * share) < spread, (kind, faults.injected)


def test_the_draw_honours_the_shares_and_the_seed() -> None:
    shares = {"500": 0.1, "503": 0.05, "429": 0.05, "timeout": 0.02, "drop": 0.05, "malformed": 0.03}
    draws = 20_000

    def drawn(seed: int) -> list[str | None]:
        faults = Faults(seed=seed)
        faults.update(shares)
        return [faults.draw() for _ in range(draws)]

    counts = Counter(drawn(3))
    for kind, share in shares.items():
        assert abs(counts[kind] - draws * share) < 4 * (draws * share * (1 - share)) ** 0.5, (kind, counts)
    assert drawn(3) == drawn(3) and drawn(3) != drawn(4)


@pytest.mark.asyncio
async def test_the_control_api_changes_faults_at_runtime_and_is_never_faulted() -> None:
    state = DotdigitalState()
    app = dotdigital_app(state, faults=Faults(error_500=1.0))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as http:
        client = DotdigitalClient(http, user=USER, password=PASSWORD)
        with pytest.raises(TransientError, match="500"):
            await client.discover_endpoint()
        report = (await http.get("/_emulator/faults")).json()  # no credentials, not faulted
        assert report["settings"]["500"] == 1.0 and report["injected"] == {"500": 1}
        assert report["calls"] == 1 and report["settings"]["job_fail"] == 0.0
        changed = await http.put("/_emulator/faults", json={"500": 0, "job_fail": 1, "retry_after": 3})
        assert changed.status_code == 200 and changed.json()["settings"]["retry_after"] == 3.0
        await client.create_address_book("Spring")
        assert state.knobs.import_fail_share == 1.0
        refused = await http.put("/_emulator/faults", json={"500": 0.6, "503": 0.6})
        assert refused.status_code == 400 and "add up to" in refused.json()["error"]
        unknown = await http.put("/_emulator/faults", json={"job_fail": 0, "teapot": 0.1})
        assert unknown.status_code == 400 and "teapot" in unknown.json()["error"]
        assert (await http.put("/_emulator/faults", content=b"500=0.1")).status_code == 400
        assert app.state.faults.error_500 == 0.0 and state.knobs.import_fail_share == 1.0  # all or none
        dump = (await http.get("/_emulator/state")).json()
        assert [b["name"] for b in dump["address_books"]] == ["Spring"]
        assert (await http.get("/_emulator/nothing")).status_code == 404
    outside = httpx.ASGITransport(app=app, client=("192.0.2.7", 5000))
    async with httpx.AsyncClient(transport=outside, base_url="http://emulator") as http:
        assert (await http.get("/_emulator/faults")).status_code == 403


@pytest.mark.asyncio
async def test_import_jobs_fail_and_stall_by_share() -> None:
    state = DotdigitalState(Knobs(import_polls=0, max_active_imports=100), seed=4)
    app = dotdigital_app(state)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as http:
        await http.put("/_emulator/faults", json={"job_fail": 0.3, "job_stall": 0.2})
        client = DotdigitalClient(http, user=USER, password=PASSWORD)
        book = await client.create_address_book("Spring")
        rows = [[{"Email": f"p{i}@example.com"}] for i in range(60)]
        jobs = [await client.import_contacts(r, address_book_id=book.id, columns=()) for r in rows]
        statuses = Counter([await client.import_status(job) for job in jobs])
        report = (await http.get("/_emulator/faults")).json()
    assert set(statuses) == {"Finished", "Failed", "NotFinished"}
    assert statuses["Failed"] == report["injected"]["job_fail"] and 8 <= statuses["Failed"] <= 30
    assert statuses["NotFinished"] == report["injected"]["job_stall"] and 4 <= statuses["NotFinished"] <= 22


@pytest.mark.asyncio
async def test_the_workbooks_state_dump_names_members_by_email() -> None:
    state = WorkbooksState(seed=2)
    generate(state, seed=2, people=20, leads=5, campaigns=1)
    transport = httpx.ASGITransport(app=workbooks_app(state))
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as http:
        dump = (await http.get("/_emulator/state")).json()
    assert len(dump["people"]) == 20 and len(dump["leads"]) == 5
    emails = {p["main_location[email]"] for p in dump["people"]}
    emails |= {lead["org_lead_party[main_location[email]]"] for lead in dump["leads"]}
    memberships = dump["campaign_memberships"]
    assert memberships and {m["member"] for m in memberships} <= emails
    assert {m["campaign"] for m in memberships} <= {c["name"] for c in dump["campaigns"]}
    assert {"no_email_soliciting", "main_location[email_address_undeliverable]"} <= set(dump["people"][0])


def test_fault_specs_parse_and_bad_ones_are_refused_with_the_reason() -> None:
    assert parse_spec("500=0.1, drop=0.05,,job_fail=1") == {"500": 0.1, "drop": 0.05, "job_fail": 1.0}
    for spec, reason in [
        ("500", "NAME=NUMBER"),
        ("=0.1", "NAME=NUMBER"),
        ("500=lots", "not a number"),
        ("500=0.1,500=0.2", "twice"),
        ("500=nan", "finite"),
    ]:
        with pytest.raises(FaultSpecError, match=reason):
            parse_spec(spec)
    faults = Faults()
    for values, reason in [
        ({"500": 1.5}, "between 0 and 1"),
        ({"500": 0.5, "drop": 0.6}, "add up to"),
        ({"latency": -1}, "seconds"),
        ({"teapot": 0.1}, "teapot"),
    ]:
        with pytest.raises(FaultSpecError, match=reason):
            faults.update(values)
    assert faults.settings() == Faults().settings()  # nothing of a refused update stays


@pytest.mark.parametrize(
    ("name", "spec", "reason"),
    [
        ("workbooks", "job_fail=0.1", "unknown faults \\['job_fail'\\]"),
        ("dotdigital", "job_fail=0.7,job_stall=0.7", "add up to more than 1"),
        ("dotdigital", "500:0.1", "NAME=NUMBER"),
        ("constant-contact", "job_stall=1.5", "between 0 and 1"),
        ("mailchimp", "drop=0.6,timeout=0.6", "add up to"),
    ],
)
def test_listsync_emulate_refuses_a_bad_fault_spec(
    name: str, spec: str, reason: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["emulate", name, "--contacts", "0", "--faults", spec]) == 1
    assert re.search(reason, capsys.readouterr().err)


@contextmanager
def emulate(*args: str) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    command = [sys.executable, "-m", "engine.cli", "emulate", *args, "--port", "0"]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"listening on (http://\S+)", first)
        assert match, first + (process.stderr.read() if process.stderr else "")
        yield match.group(1), process
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_an_emulator_process_is_steered_over_its_control_api(tmp_path: Path) -> None:
    saved = tmp_path / "state.json"
    spec = "500=0.5,drop=0.5,retry_after=0"
    with (
        emulate(
            "dotdigital", "--contacts", "40", "--seed", "2", "--faults", spec, "--state-file", str(saved)
        ) as (url, process),
        httpx.Client(base_url=url, timeout=10, auth=(USER, PASSWORD)) as http,
    ):
        failed = 0
        for _ in range(20):
            try:
                failed += http.get("/v2/address-books").status_code == 500
            except httpx.RemoteProtocolError:
                failed += 1
        assert failed == 20
        report = http.get("/_emulator/faults").json()
        assert report["calls"] == 20 and sum(report["injected"].values()) == 20
        http.put("/_emulator/faults", json={"500": 0, "drop": 0}).raise_for_status()
        assert http.get("/v2/address-books").status_code == 200
        dump: dict[str, Any] = http.get("/_emulator/state").json()
        assert len(dump["contacts"]) == 40
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    assert json.loads(saved.read_text()) == dump
