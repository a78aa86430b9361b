"""Dotdigital's bulk jobs as the adapter sees them: its imports kept under the account's limit, and a job's
end read into one outcome per op.

Split from ``adapter.py`` because jobs are a concern of their own: the adapter submits them, and this
module knows how each kind ends and what to make of it.

- **At most 25 imports in flight.** Dotdigital runs at most 25 imports of an account at once (v2 and
  Contacts API v3 imports together) and refuses another with ERROR_IMPORT_TOOMANYACTIVEIMPORTS.
  ``ImportsInFlight`` remembers the imports this adapter submitted and has not yet seen end, oldest
  first; before another is submitted while the limit's worth are in flight, it polls the oldest until
  one ends, so a write (an ``add_member`` batch across more than 25 address books, say) never relies on
  the vendor's refusal. An import that has not ended after ``ROOM_PATIENCE`` is put behind the others,
  so a stuck one does not hold the rest up; after ``ROOM_WAIT`` it gives up with a TransientError, as
  the vendor's refusal would. Imports of other processes are not counted: those still meet the
  vendor's refusal, which the client raises as a transient ``DotdigitalBusy``. The memory is the
  adapter's, for one run; a job the run leaves behind is the vendor's to finish and the engine's to
  poll.
- **Reading an import's end.** A finished v2 import's report (``GET .../report``) gives its counts;
  only when they do not show every row imported cleanly is its fault report (``.../report-faults``)
  read, to turn each fault into its row's rejection. The counts go in the job's detail. A v3 import
  lists its failures in its status. A job that ended otherwise (``Failed``, ``RejectedByWatchdog``,
  ``InvalidFileFormat``, ``ExceedsAllowedContactLimit``...) imported nothing: every op is rejected,
  with why, and the next run plans it again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from adapters.dotdigital import rows
from adapters.dotdigital.client import ACTIVE_IMPORTS_WAIT, DotdigitalClient
from engine.contract import JobStatus, Outcome
from engine.errors import TransientError
from engine.plans import Op

MAX_ACTIVE_IMPORTS = 25  # Dotdigital's own limit per account
IMPORTS_IN_FLIGHT = "dotdigital.imports_in_flight"  # its key in AdapterContext.account_state
DELETION = "deletion:"
UNSUBSCRIBE_IMPORT = "unsubscribe-import:"
# Pace of the polls that wait for room: as the engine polls its jobs, doubling up to half a minute.
ROOM_POLL_FIRST, ROOM_POLL_MAX = 1.0, 30.0
ROOM_PATIENCE = 300.0  # seconds one import is waited for before the next oldest is
ROOM_WAIT = 900.0  # seconds a submission waits for room in all, as long as an apply waits for its jobs
RUNNING = frozenset({"NotFinished", "Started"})  # imports', then deletions' state while they run
_ENDED = {
    "Failed": "it failed at Dotdigital",
    "RejectedByWatchdog": "Dotdigital's watchdog held it back (see the import in Dotdigital)",
    "InvalidFileFormat": "Dotdigital could not read its file",
    "ExceedsAllowedContactLimit": (
        "it would take the account past its contact allowance (raise it, or remove contacts, in Dotdigital)"
    ),
}


class ImportsInFlight:
    """The imports the account's adapters in this process submitted and have not seen end, oldest
    first, kept to ``limit``. One is shared by every run of the account (``shared``), so that the
    service's processes, running at once, keep to the limit together."""

    def __init__(self, limit: int = MAX_ACTIVE_IMPORTS) -> None:
        self.limit = limit
        self._jobs: dict[str, None] = {}  # job names as ``write`` answers them, in submission order
        self._submitting = asyncio.Lock()

    async def submit(self, api: DotdigitalClient, submission: Callable[[], Awaitable[str]]) -> str:
        """Submit an import (``submission`` gives its job name) once there is room for it, one
        submission at a time, so that two writers never both take the last place."""
        async with self._submitting:
            await self.make_room(api)
            job = await submission()
            self.started(job)
            return job

    def started(self, job: str) -> None:
        self._jobs[job] = None

    def ended(self, job: str) -> None:
        self._jobs.pop(job, None)

    async def make_room(self, api: DotdigitalClient) -> None:
        """Return once fewer than ``limit`` of these imports may be running, polling the oldest until
        one has ended; TransientError when none has after ``ROOM_WAIT``."""
        started = waiting_since = time.monotonic()
        delay = ROOM_POLL_FIRST
        while len(self._jobs) >= self.limit:
            oldest = next(iter(self._jobs))
            if await import_ended(api, oldest):
                self.ended(oldest)
                return
            now = time.monotonic()
            if now - started >= ROOM_WAIT:
                raise TransientError(
                    f"Dotdigital is still running all {self.limit} imports this run submitted after "
                    f"{ROOM_WAIT:g} s (it runs at most {MAX_ACTIVE_IMPORTS} at once); the rest of the "
                    "write waits to be tried again",
                    retry_after=ACTIVE_IMPORTS_WAIT,
                )
            if now - waiting_since >= ROOM_PATIENCE:  # stuck, maybe: wait for the next oldest instead
                self.ended(oldest)
                self.started(oldest)
                waiting_since, delay = now, ROOM_POLL_FIRST
            await asyncio.sleep(delay)
            delay = min(delay * 2, ROOM_POLL_MAX)


def shared(account_state: dict[str, Any], limit: int) -> ImportsInFlight:
    """The account's imports in flight, kept in ``AdapterContext.account_state`` (the first rule set
    to open the account sets the limit)."""
    found = account_state.setdefault(IMPORTS_IN_FLIGHT, ImportsInFlight(limit))
    assert isinstance(found, ImportsInFlight)
    return found


async def import_ended(api: DotdigitalClient, job: str) -> bool:
    """Whether the import ``job`` (a v2 import id, or ``unsubscribe-import:<v3 id>``) has ended."""
    if job.startswith(UNSUBSCRIBE_IMPORT):
        state = (await api.v3_import_status(job.removeprefix(UNSUBSCRIBE_IMPORT))).status
    else:
        state = await api.import_status(job)
    return state not in RUNNING


async def poll_job(api: DotdigitalClient, job: str, ops: Sequence[Op]) -> JobStatus:
    """A job's state; once terminal, one outcome per op of ``ops`` (the job's, in written order)."""
    if job.startswith(UNSUBSCRIBE_IMPORT):
        return await _poll_unsubscribe_import(api, job.removeprefix(UNSUBSCRIBE_IMPORT), ops)
    if job.startswith(DELETION):
        state = await api.deletion_status(job.removeprefix(DELETION))
        if state in RUNNING:
            return JobStatus(state, False)
        return finished(state, ops, {}) if state == "Completed" else failed(state, ops, "removal")
    state = await api.import_status(job)
    if state in RUNNING:
        return JobStatus(state, False)
    if state != "Finished":
        return failed(state, ops, "import")
    report = await api.import_report(job)
    faults: dict[str, str] = {}
    if not report.imported_all(len(ops)):
        for row in await api.import_faults(job):
            email, reason = rows.column(row, "email"), rows.column(row, "reason")
            if email:
                faults.setdefault(email.strip().lower(), reason or "rejected by the import")
    return finished(state, ops, faults, report.summary())


async def _poll_unsubscribe_import(api: DotdigitalClient, job: str, ops: Sequence[Op]) -> JobStatus:
    answer = await api.v3_import_status(job)
    if answer.status in RUNNING:
        return JobStatus(answer.status, False)
    if answer.status != "Finished":
        return failed(answer.status, ops, "import")
    faults = {
        failure.identifiers.get("email", "").strip().lower(): "; ".join(
            f"{reason.failure_code}: {reason.description}" for reason in failure.failures
        )
        or "not imported"
        for failure in answer.failures
    }
    counts = ", ".join(f"{name} {count:,}" for name, count in answer.summary.items() if count)
    return finished(answer.status, ops, faults, counts or None)


def failed(state: str, ops: Sequence[Op], what: str) -> JobStatus:
    """A job that ended without applying anything: every op rejected, saying why."""
    why = _ENDED.get(state, "Dotdigital gave no reason")
    reason = f"the {what} ended {state}: {why}; nothing of it was applied, and the next run tries again"
    return JobStatus(state, True, tuple(Outcome(False, reason) for _ in ops), detail=reason)


def finished(state: str, ops: Sequence[Op], faults: dict[str, str], detail: str | None = None) -> JobStatus:
    """A finished job's outcomes: each op's email rejected with its fault, or done."""
    emails = [str(op.email).lower() for op in ops]
    outcomes = tuple(Outcome(False, faults[e]) if e in faults else Outcome(True) for e in emails)
    return JobStatus(state, True, outcomes, detail=detail)
