"""The Dotdigital adapter's bulk imports over the emulator: how their end is read, and how many run at once.

An import's report is read first and its fault report only when the counts show a row with a problem;
the counts are the job's detail. The account's adapters in one process (the service's runs) keep at
most ``max_active_imports`` (25) imports in flight together, v2 and v3 alike, polling the oldest before
another is submitted, so a write never meets the vendor's refusal of a 26th; the refusal that imports
of other programs cause is still a transient error that submits nothing twice. An import that would
exceed the account's contact allowance rejects every op, saying so, and a later run plans them again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

import anyio
import httpx
import msgspec
import pytest

import engine.applying
from adapters.demos.workbooks_dotdigital import emulator_rules, emulator_transports
from adapters.dotdigital import jobs
from adapters.dotdigital.adapter import DotdigitalAdapter, DotdigitalSettings
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from adapters.workbooks.emulator_data import generate
from adapters.workbooks.emulator_state import WorkbooksState
from engine.applying import ApplyReport, apply_plan
from engine.budgets import Budgets
from engine.contract import Outcome, PartialWrite
from engine.errors import RulesError, TransientError
from engine.planning import make_plan
from engine.plans import Change, Op
from engine.rules_loading import load_rules
from engine.session import open_sync
from tests.adapters.test_dotdigital_contract import account, opened, settle, write
from tests.workbooks_world import dotdigital_rules

pytestmark = pytest.mark.asyncio


@pytest.fixture(autouse=True)
def quick_polls(monkeypatch: pytest.MonkeyPatch) -> None:
    """Room for an import is waited for in milliseconds: the emulator moves an import on per poll."""
    monkeypatch.setattr(jobs, "ROOM_POLL_FIRST", 0.001)
    monkeypatch.setattr(jobs, "ROOM_POLL_MAX", 0.001)


class Watch:
    """Counts the imports running at the emulator as each import submission (v2 or v3) reaches it."""

    def __init__(self, state: DotdigitalState) -> None:
        self.state = state
        self.running_before: list[int] = []

    def __call__(self, request: httpx.Request) -> None:
        if request.method in ("POST", "PUT") and request.url.path.endswith("/import"):
            self.running_before.append(self.state.active_imports())

    def refusals(self) -> list[tuple[str, str, int]]:
        return [call for call in self.state.calls if call[2] >= 400]


def books(state: DotdigitalState, count: int) -> list[Op]:
    """``count`` new address books and an add_member op into each, for a new address each."""
    names = [state.create_address_book(f"Campaign {n:02}").name for n in range(count)]
    return [Op("add_member", f"p{n}@example.com", list=name) for n, name in enumerate(names)]


# -- reading an import's end -----------------------------------------------------------------------------
async def test_a_clean_import_is_read_from_its_report_alone_and_its_counts_are_the_detail() -> None:
    state = account([{"email": "ada@example.com"}], import_polls=0)
    ops = [
        Op("upsert_contact", "ada@example.com", changes={"FIRSTNAME": Change(None, "Ada")}),
        Op("upsert_contact", "new@example.com", changes={"FIRSTNAME": Change(None, "New")}),
    ]
    async with opened(state) as adapter:
        [first, _] = await adapter.write("upsert_contact", ops)
        assert first.job is not None
        status = await adapter.poll(first.job, ops)
    paths = [path for _, path, _ in state.calls]
    assert status.terminal and all(outcome.ok for outcome in status.outcomes)
    assert status.detail == "newContacts 1, updatedContacts 1"
    assert f"/v2/contacts/import/{first.job}/report" in paths
    assert not any(path.endswith("/report-faults") for path in paths)  # a call saved


async def test_an_import_with_problems_reads_its_faults_into_rejections() -> None:
    state = account([{"email": "gone@example.com"}], import_polls=0)
    state.suppress(state.contacts[1], "HardBounced")
    ops = [Op("add_member", email, list="Spring") for email in ("ok@example.com", "gone@example.com", "x@@y")]
    state.create_address_book("Spring")
    async with opened(state) as adapter:
        [first, *_] = await adapter.write("add_member", ops)
        assert first.job is not None
        status = await adapter.poll(first.job, ops)
    assert [(o.ok, o.reason) for o in status.outcomes] == [
        (True, None),
        (False, "HardBounced"),
        (False, "InvalidEmail"),
    ]
    assert status.detail == "newContacts 1, globallySuppressed 1, invalidEntries 1, hardBounced 1"
    assert [path for _, path, _ in state.calls].count(f"/v2/contacts/import/{first.job}/report-faults") == 1


async def test_counts_that_do_not_account_for_every_row_send_it_to_the_fault_report() -> None:
    """A report whose new and updated rows fall short of the rows sent is not taken for a clean one,
    though no problem count is set: the fault report is read (and here names no row)."""
    state = account(import_polls=0)

    def short_count(request: httpx.Request) -> None:
        for job in state.imports.values():
            if job.report is not None and request.url.path.endswith(f"{job.id}/report"):
                job.report["newContacts"] -= 1

    ops = [Op("upsert_contact", f"p{n}@example.com") for n in range(3)]
    async with opened(state, meddle=short_count) as adapter:
        [first, *_] = await adapter.write("upsert_contact", ops)
        assert first.job is not None
        status = await adapter.poll(first.job, ops)
    assert any(path.endswith("/report-faults") for _, path, _ in state.calls)
    assert all(outcome.ok for outcome in status.outcomes) and status.detail == "newContacts 2"


# -- at most 25 imports in flight ------------------------------------------------------------------------
async def test_a_write_across_more_than_25_books_never_has_more_than_25_imports_running() -> None:
    state = account(import_polls=2)
    ops = books(state, 30)
    watch = Watch(state)
    async with opened(state, meddle=watch) as adapter:
        outcomes = await write(adapter, "add_member", ops)
    assert [(o.ok, o.reason) for o in outcomes] == [(True, None)] * 30
    assert len(watch.running_before) == 30 and max(watch.running_before) == 24
    assert not watch.refusals()  # the vendor never had to refuse a 26th
    for op in ops:
        contact = state.contact_by_email(str(op.email))
        assert contact is not None and [b.name for b in state.books_of(contact.id)] == [op.list]


async def test_runs_of_one_account_at_once_keep_to_25_imports_together() -> None:
    """The service runs members, contacts and activity at once, each with an adapter of its own; they
    share the account's imports in flight, so together they never reach the vendor's refusal."""
    state = account(import_polls=2)
    ops = books(state, 60)
    watch = Watch(state)
    shared: dict[str, object] = {}
    results: list[Sequence[Outcome]] = []

    async def run(adapter: DotdigitalAdapter, part: list[Op]) -> None:
        results.append(await write(adapter, "add_member", part))

    async with (
        opened(state, meddle=watch, account_state=shared) as one,
        opened(state, meddle=watch, account_state=shared) as other,
        anyio.create_task_group() as runs,
    ):
        runs.start_soon(run, one, ops[:30])
        runs.start_soon(run, other, ops[30:])
    assert [outcome.ok for found in results for outcome in found] == [True] * 60
    assert len(watch.running_before) == 60 and max(watch.running_before) == 24
    assert not watch.refusals()


async def test_unsubscribe_imports_count_among_the_imports_in_flight() -> None:
    """A v3 import that creates an opt-out unsubscribed is one of the 25: a v2 import waits for it to
    end, and it waits for a v2 import, as the account shares its limit between them."""
    state = account(import_polls=1)
    ops = books(state, 25)
    watch = Watch(state)
    async with opened(state, meddle=watch) as adapter:
        [opt_out] = await adapter.write("opt_out_esp", [Op("opt_out_esp", "first@example.com")])
        members = await adapter.write("add_member", ops)  # the 25th waits for the v3 import
        [(v3_id, v3)] = state.v3_imports.items()
        assert opt_out.job == f"{jobs.UNSUBSCRIBE_IMPORT}{v3_id}" and v3.status == "Finished"
        [again] = await adapter.write("opt_out_esp", [Op("opt_out_esp", "second@example.com")])
        assert sum(job.status == "NotFinished" for job in state.imports.values()) == 24
        done = await settle(adapter, [*ops, Op("opt_out_esp", "second@example.com")], [*members, again])
    assert all(outcome.ok for outcome in done)
    assert max(watch.running_before) == 24 and not watch.refusals()
    opted_out = [state.contact_by_email(email) for email in ("first@example.com", "second@example.com")]
    assert [contact and contact.status for contact in opted_out] == ["Unsubscribed"] * 2


async def test_fewer_imports_in_flight_when_the_settings_say_so() -> None:
    state = account(import_polls=1)
    ops = books(state, 7)
    watch = Watch(state)
    async with opened(state, meddle=watch, max_active_imports=3) as adapter:
        outcomes = await write(adapter, "add_member", ops)
    assert all(outcome.ok for outcome in outcomes) and max(watch.running_before) == 2
    with pytest.raises(msgspec.ValidationError, match="max_active_imports"):
        msgspec.convert(
            {"api_user": "u", "password": {"env": "P"}, "max_active_imports": 26}, DotdigitalSettings
        )


async def test_the_rules_refuse_more_than_25_imports_in_flight(tmp_path: Path) -> None:
    rules = emulator_rules(tmp_path)
    text = rules.read_text().replace(
        "address_book_limit = 100", "address_book_limit = 100\nmax_active_imports = 40"
    )
    rules.write_text(text)
    with pytest.raises(
        RulesError, match=r"toml:\d+:\d+: esp\.settings\.max_active_imports: must be at most 25"
    ):
        load_rules(rules)


async def test_other_processes_imports_still_meet_the_vendors_refusal_and_nothing_is_sent_twice() -> None:
    """Imports listsync did not submit are not counted: the vendor's refusal is a transient error,
    the import already submitted is answered, and the retry submits only the rest."""
    state = account(import_polls=0, max_active_imports=2)
    ops = books(state, 2)
    elsewhere = state.submit_import(None, b"Email\r\nother@example.com\r\n")  # another process's
    async with opened(state) as adapter:
        with pytest.raises(PartialWrite) as cut:
            await adapter.write("add_member", ops)
        [taken, left] = cut.value.outcomes
        assert taken is not None and taken.job is not None and left is None
        assert "ERROR_IMPORT_TOOMANYACTIVEIMPORTS" in str(cut.value)
        state.poll_import(elsewhere.id)  # the other process's import ends
        [again] = await write(adapter, "add_member", ops[1:])
    assert again.ok and len(state.imports) == 3  # ours once each, and the other one


async def test_a_stuck_import_is_passed_over_and_after_a_while_the_write_gives_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(jobs, "ROOM_PATIENCE", 0.005)
    state = account(import_polls=0, import_stalls=True)
    ops = books(state, 4)
    async with opened(state, max_active_imports=2) as adapter:
        [stuck] = await adapter.write("add_member", ops[:1])
        state.tune(import_stalls=False)
        await adapter.write("add_member", ops[1:3])  # the third waits for the second, not the stuck one
        assert sum(job.status == "NotFinished" for job in state.imports.values()) == 2
        state.tune(import_stalls=True)
        await adapter.write("add_member", ops[3:4])  # waits for the third: now two stuck
        monkeypatch.setattr(jobs, "ROOM_WAIT", 0.05)
        with pytest.raises(TransientError, match="still running all 2 imports") as gave_up:
            await adapter.write("add_member", [Op("add_member", "late@example.com", list=ops[0].list)])
    assert not isinstance(gave_up.value, PartialWrite)  # nothing was taken: a retry sends it all
    assert stuck.job in state.imports and state.imports[str(stuck.job)].status == "NotFinished"
    assert len(state.imports) == 4


# -- an import past the account's contact allowance ------------------------------------------------------
async def test_an_import_past_the_contact_allowance_rejects_every_op_and_a_later_run_plans_them_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine.applying, "POLL_FIRST", 0.01)
    loaded = dotdigital_rules(tmp_path, monkeypatch)
    crm = WorkbooksState(seed=5)
    generate(crm, seed=5, people=40, leads=10)
    esp = DotdigitalState(Knobs(rate_scheme="none", contact_limit=5), seed=5, started_at=datetime.now(UTC))

    async def run() -> tuple[set[tuple[str, str, str | None]], ApplyReport, list[str | None]]:
        """Plan and apply once: the import ops planned, the report, and the details of the jobs."""
        extras = dict(emulator_transports(crm, esp))
        async with open_sync(loaded, budgets=Budgets(enabled=False), extras=extras) as sync:
            plan = await make_plan(sync)
            report = await apply_plan(sync, plan, override_safety=True)
            details = [job.detail for job in await sync.store.jobs(loaded.rules.name)]
        planned: set[tuple[str, str, str | None]] = {
            (op.kind, str(op.email), op.list)
            for op in plan.ops
            if op.kind in ("upsert_contact", "add_member")
        }
        return planned, report, details

    first, refused, details = await run()
    reason = (
        "the import ended ExceedsAllowedContactLimit: it would take the account past its contact "
        "allowance (raise it, or remove contacts, in Dotdigital); nothing of it was applied, and the "
        "next run tries again"
    )
    # Nothing of the contact imports was applied: only the few CRM opt-outs are there, unsubscribed.
    assert first and {contact.status for contact in esp.contacts.values()} == {"Unsubscribed"}
    assert refused.rejected["upsert_contact"] + refused.rejected["add_member"] == len(first)
    assert refused.reasons[reason] >= len(first) and not refused.done["upsert_contact"]
    assert set(details) == {reason, f"newContacts {len(esp.contacts)}"}  # and the opt-outs' v3 import
    esp.tune(contact_limit=None)  # the account's allowance is raised
    second, imported, details = await run()
    assert first <= second  # every op the allowance refused is planned again
    assert imported.done["upsert_contact"] + imported.done["add_member"] == len(second)
    assert any(detail and detail.startswith("newContacts ") for detail in details)


async def test_the_syncs_of_one_budget_registry_share_the_accounts_imports_in_flight(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What the service has: one `Budgets` for all its runs, so one count per account."""
    loaded = dotdigital_rules(tmp_path, monkeypatch)
    crm, esp = WorkbooksState(seed=5), DotdigitalState(Knobs(rate_scheme="none"), seed=5)
    budgets = Budgets(enabled=False)
    found = []
    for _ in range(2):
        async with open_sync(loaded, budgets=budgets, extras=dict(emulator_transports(crm, esp))):
            found.append(budgets.all()["dotdigital"].adapter_state[jobs.IMPORTS_IN_FLIGHT])
    assert isinstance(found[0], jobs.ImportsInFlight) and found[0] is found[1]
    assert found[0].limit == jobs.MAX_ACTIVE_IMPORTS
