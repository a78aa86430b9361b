"""`listsync run` in-process over both emulators: intervals, failure isolation, hot reload, held plans.

The service runs for a few seconds with every interval at one second and no jitter; each test waits
for the state it expects (with a deadline) rather than for a fixed time. The JSON log is captured
and read back, as an operator's log collector would.
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from adapters.demos.workbooks_dotdigital import emulator_transports
from engine.budgets import Budgets
from engine.cli import main
from engine.errors import TransientError
from engine.logs import LOGGER, setup_logging
from engine.processes import PROCESSES
from engine.service import Service
from engine.store import StateStore
from tests.test_workbooks_dotdigital_sync import World

pytestmark = pytest.mark.asyncio
FAST = """
[intervals]
members = "1s"
contacts = "1s"
activity = "1s"
imports = "1s"

[service]
jitter = 0.0
job_wait = "1s"
"""


@pytest.fixture
def log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    handler = setup_logging("json", stream)
    yield stream
    LOGGER.removeHandler(handler)


def events(log: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.getvalue().splitlines()]


def fast_rules(world: World, name: str | None = None, password_env: str | None = None) -> Path:
    """The world's rules with one-second intervals; optionally under another name and password."""
    text = world.rules.path.read_text() + FAST
    if name is not None:
        text = text.replace('name = "workbooks-dotdigital"', f'name = "{name}"')
        text = text.replace('state = "state.sqlite3"', f'state = "{name}.sqlite3"')
    if password_env is not None:
        text = text.replace('env = "DOTDIGITAL_PASSWORD"', f'env = "{password_env}"')
    path = world.rules.path.with_name(f"{name or 'fast'}.toml")
    path.write_text(text)
    return path


async def serve_until(service: Service, done: Callable[[], bool], limit: float = 40) -> None:
    """Run the service until `done()` holds (checked every 50 ms), then stop it gracefully."""
    stop = anyio.Event()
    service.load()
    async with anyio.create_task_group() as group:
        group.start_soon(service.serve, stop)
        with anyio.fail_after(limit):
            while not done():  # noqa: ASYNC110 (the emulators' state has no event to wait on)
                await anyio.sleep(0.05)
        stop.set()


def service_for(world: World, *paths: Path) -> Service:
    return Service(
        list(paths),
        budgets=Budgets(enabled=False),
        extras=dict(emulator_transports(world.crm, world.esp)),
        reload_every=0.1,
        stop_grace=5,
    )


def ok_runs(service: Service, name: str, process: str) -> int:
    return sum(1 for n, p, r in service.results if (n, p) == (name, process) and r.outcome == "ok")


async def test_every_process_runs_on_its_interval_and_a_failing_rule_set_leaves_the_others_running(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log: io.StringIO
) -> None:
    world = World(tmp_path, monkeypatch)
    monkeypatch.setenv("WRONG_PASSWORD", "not-the-password")
    good = fast_rules(world)
    broken = fast_rules(world, "broken", password_env="WRONG_PASSWORD")
    service = service_for(world, good, broken)
    name = "workbooks-dotdigital"

    def settled() -> bool:
        twice = all(ok_runs(service, name, p) >= 2 for p in PROCESSES)
        return twice and service.states[("broken", "members")].failures >= 2

    await serve_until(service, settled)
    # The good rule set synced: Dotdigital holds its contacts; the broken one is retried each interval.
    assert world.esp.address_books and len(world.esp.contacts) > 100
    assert service.states[("broken", "contacts")].failures >= 1
    runs = [e for e in events(log) if e["event"] == "run"]
    first = next(e["process"] for e in runs if e["rule_set"] == name)
    assert first == "imports"  # jobs left open by an earlier service are resumed before any plan
    members = next(e for e in runs if e["process"] == "members" and e["rule_set"] == name)
    assert members["outcome"] == "ok" and members["ops"]["add_member"] > 0 and members["duration"] > 0
    assert set(members["calls"]) == {"crm", "esp"}
    failed = [e for e in events(log) if e["event"] == "run failed"]
    assert failed and all(e["rule_set"] == "broken" and e["level"] == "error" for e in failed)
    assert "credentials" in failed[0]["error"] and "not-the-password" not in log.getvalue()
    assert events(log)[-1]["event"] == "service stopped"


async def test_an_edit_is_used_from_the_next_run_and_an_invalid_one_keeps_the_previous_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log: io.StringIO
) -> None:
    world = World(tmp_path, monkeypatch)
    path = fast_rules(world)
    service = service_for(world, path)
    name = "workbooks-dotdigital"
    original = path.read_text()
    books = {book.name for book in world.esp.address_books.values()}
    steps: list[str] = []

    def next_step() -> bool:
        members = ok_runs(service, name, "members")
        if not steps and members >= 1:
            books.update(book.name for book in world.esp.address_books.values())
            path.write_text(original.replace("[lists]", "[lists]\ntemplate = 3"))  # a duplicate key
            steps.append("invalid")
        elif steps == ["invalid"] and any(e["event"].startswith("rules invalid") for e in events(log)):
            steps.append(f"runs {members}")
        elif len(steps) == 2 and members >= int(steps[1].split()[1]) + 2:
            public_name = 'template = "{cf_marketing_campaign_public_name:.120}"'
            path.write_text(original.replace(public_name, 'template = "CRM {name:.100}"'))
            steps.append("valid")
        elif steps[-1:] == ["valid"]:
            return any(book.name.startswith("CRM ") for book in world.esp.address_books.values())
        return False

    await serve_until(service, next_step)
    invalid = next(e for e in events(log) if e["event"].startswith("rules invalid"))
    assert invalid["file"] == str(path) and any(f"{path.name}:" in p for p in invalid["problems"])
    assert any(e["event"] == "rules reloaded" for e in events(log))
    assert books and books <= {book.name for book in world.esp.address_books.values()}


async def test_a_held_plan_waits_for_approval_then_the_next_run_applies_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    world = World(tmp_path, monkeypatch)
    await world.plan_and_apply()
    path = fast_rules(world)
    subscribed = [c.email for c in world.esp.contacts.values() if c.status == "Subscribed"]
    opted_out = subscribed[:30]
    for email in opted_out:
        world.esp.unsubscribe(email)  # 30 of ~150 opt out in Dotdigital: above the rules' 5%
    service = service_for(world, path)
    name = "workbooks-dotdigital"

    def held() -> bool:
        return any(r.outcome == "held" for n, p, r in service.results if p == "contacts")

    await serve_until(service, held)
    assert await cli("status", str(path), "--json") == 0
    status = json.loads(capsys.readouterr().out)
    [plan] = [h for h in status[0]["held_plans"] if h["process"] == "contacts"]
    # The first sync's imports ended; status shows what Dotdigital's reports said of them.
    ended = status[0]["ended_jobs"]
    assert ended and {job["state"] for job in ended} <= {"Finished", "Completed"}
    assert any("newContacts" in (job["detail"] or "") for job in ended)
    assert plan["state"] == "held" and "max_opt_out_share" in plan["stops"][0]
    assert not crm_opted_out(world, opted_out[0])  # nothing was written

    assert await cli("approve", str(plan["id"]), str(path)) == 0
    assert await cli("approve", str(plan["id"]), str(path)) == 1  # decided already
    assert f"Plan {plan['id']} of workbooks-dotdigital (contacts) approved" in capsys.readouterr().out
    service = service_for(world, path)
    await serve_until(service, lambda: ok_runs(service, name, "contacts") >= 1)
    async with await StateStore.open(world.rules.state_path) as store:
        [applied] = [h for h in await store.held_plans(name, open_only=False) if h.id == plan["id"]]
    assert applied.state == "applied"
    assert all(crm_opted_out(world, email) for email in opted_out)
    assert await cli("history", str(path), "--json") == 0
    # Other processes run meanwhile (and may hold the same opt-outs until contacts applies them).
    outcomes = [run["outcome"] for run in json.loads(capsys.readouterr().out) if run["process"] == "contacts"]
    assert "held" in outcomes and outcomes[0] in ("ok", "partial")
    assert any(e["event"] == "run" and e.get("held") == plan["id"] for e in events(log))


async def cli(*argv: str) -> int:
    """The `listsync` command, run as a person would while the test's event loop is busy."""
    return await anyio.to_thread.run_sync(main, list(argv))


def crm_opted_out(world: World, email: str) -> bool:
    record = world.person_or_lead(email)
    return any(value is True for key, value in record.items() if "no_email_soliciting" in key)


async def test_a_budget_save_that_fails_is_logged_and_the_service_goes_on(log: io.StringIO) -> None:
    """A busy state database once took the whole service down from its budget-saving task."""

    class Busy:
        async def save_budget_levels(self, levels: object) -> None:
            raise TransientError("state database state.sqlite3 is busy: database is locked")

    await Service([])._save_budgets([Busy()])  # type: ignore[list-item]
    [event] = events(log)
    assert event["event"] == "budget levels not saved" and "busy" in event["error"]


async def test_a_restarted_service_reads_whole_only_when_full_read_every_has_passed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, log: io.StringIO
) -> None:
    world = World(tmp_path, monkeypatch)
    rules = fast_rules(world)
    name = "workbooks-dotdigital"

    def first_reads() -> dict[str, bool]:
        """Whether each process's first run of the last service read whole, by process."""
        runs = [e for e in events(log) if e["event"] == "run" and e["rule_set"] == name]
        log.truncate(0), log.seek(0)
        return {p: next(e["full_read"] for e in runs if e["process"] == p) for p in PROCESSES}

    async def serve_once() -> None:
        service = service_for(world, rules)
        await serve_until(service, lambda: all(ok_runs(service, name, p) >= 2 for p in PROCESSES))

    await serve_once()
    assert all(first_reads().values())  # a first start has read nothing yet
    await serve_once()
    assert not any(first_reads().values())  # a restart within a day goes on from its cursors
    rules.write_text(rules.read_text().replace('job_wait = "1s"', 'job_wait = "1s"\nfull_read_every = "1s"'))
    await anyio.sleep(1)
    await serve_once()
    assert all(first_reads().values())
