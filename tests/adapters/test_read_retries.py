"""The clients repeat a failed read page by page when the adapter asks them to, and never a change.

A snapshot is hundreds of page reads; without a repeat per page one fault ends the plan. Each test
scripts faults on the emulator's shared fault layer, then checks what the client got and how many
calls reached the emulator.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest
import stamina
from starlette.applications import Starlette

from adapters.dotdigital.client import DotdigitalClient
from adapters.dotdigital.emulator import create_app as dotdigital_app
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from adapters.emulation.faults import Faults
from adapters.workbooks.client import WorkbooksClient
from adapters.workbooks.emulator import create_app as workbooks_app
from adapters.workbooks.emulator_data import generate
from adapters.workbooks.emulator_state import DEFAULT_API_KEY, WorkbooksState
from engine.errors import TransientError
from engine.retrying import ATTEMPTS

SCRIPT = ["500", "malformed", "drop", "429"]


@asynccontextmanager
async def over(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://e") as http:
        yield http


def scripted(app: Starlette, script: list[str]) -> Faults:
    faults = Faults(script=list(script), retry_after=0, after_run=0.0)
    app.state.control.faults = faults
    return faults


async def workbooks_people(retry_reads: bool, script: list[str]) -> tuple[list[int], Faults]:
    state = WorkbooksState(seed=3)
    generate(state, seed=3, people=250, leads=0)
    app = workbooks_app(state)
    faults = scripted(app, script)
    async with over(app) as http:
        client = WorkbooksClient(http, api_key=DEFAULT_API_KEY, retry_reads=retry_reads)
        rows = [int(row["id"]) async for row in client.read_all("crm/people", select=["id"])]
    return rows, faults


@pytest.mark.asyncio
async def test_a_workbooks_read_survives_a_fault_on_each_page() -> None:
    clean, clean_faults = await workbooks_people(True, [])
    with stamina.set_testing(True, attempts=ATTEMPTS):
        got, faults = await workbooks_people(True, SCRIPT)
    assert got == clean and len(clean) >= 250
    assert faults.injected == {kind: 1 for kind in SCRIPT}
    assert faults.calls == clean_faults.calls + len(SCRIPT)  # only the failed pages were asked again


@pytest.mark.asyncio
async def test_without_retry_reads_a_workbooks_read_fails_at_the_first_fault() -> None:
    with pytest.raises(TransientError):
        await workbooks_people(False, ["500"])


@pytest.mark.asyncio
async def test_a_dotdigital_read_is_repeated_but_a_change_is_not() -> None:
    state = DotdigitalState(Knobs(rate_scheme="none"), seed=3)
    app = dotdigital_app(state)
    with stamina.set_testing(True, attempts=ATTEMPTS):
        async with over(app) as http:
            client = DotdigitalClient(
                http, user=Knobs().api_user, password=Knobs().api_password, retry_reads=True
            )
            for number in range(3):
                await client.create_address_book(f"Book {number}")
            faults = scripted(app, SCRIPT)
            books = [book.name async for book in client.address_books()]
            assert faults.injected == {kind: 1 for kind in SCRIPT}
            assert sorted(books) == sorted(b.name for b in state.address_books.values())
            assert {"Book 0", "Book 1", "Book 2"} <= set(books)

            faults = scripted(app, ["500"])
            with pytest.raises(TransientError):
                await client.create_address_book("Made once")
    assert faults.calls == 1
    assert "Made once" not in [b.name for b in state.address_books.values()]
