"""`listsync run`: every process of every rule set on its interval, for months, until told to stop.

What it promises, and how:

- **Intervals with jitter, one run at a time per process.** Each (rule file, process) has a loop
  that runs the process, then waits its `[intervals]` value, give or take `service.jitter`. The
  processes of one rule set run at once: a `members` run carrying an opt-out does not wait for a
  `contacts` run's bulk import to end. Their commits do not overwrite each other: a run writes a
  contact's base only if no other run wrote it since its plan was made (`StateStore.commit_base`
  with `since`), and otherwise leaves that contact to be diffed again. The `imports` process follows
  only jobs older than `service.job_wait`, the time an apply polls its own. At start `imports` runs
  first, so jobs an earlier service left open are resumed and polled, never submitted again,
  before anything new is planned.
- **Whole reads once in a while.** Runs read what changed since their cursors; every
  `service.full_read_every` a run reads both sides whole, to catch what a cursor cannot see. The time
  of the last is kept in the state store, so a restart (or a crash loop) does not read whole again.
- **A failing rule set does not stop the others.** A run's error is logged, counted and the loop
  waits its interval as usual; the next run tries again.
- **Hot reload.** Rule files are re-read every `reload_every` seconds when their bytes change. A
  valid edit is used from the next run on; an invalid one is logged with its file:line problems and
  the previous rules keep running. (Polling, not inotify: it works the same on every filesystem and
  in containers, and a few seconds is soon enough for a config edit.)
- **Graceful stop.** On SIGTERM or SIGINT no new run starts; runs in flight get `stop_grace` seconds
  to finish, then are cancelled. Cancelling is safe at any point: an import job is in the state store
  before its first poll, and a base is written only once its ops are confirmed.
- **Budgets survive restarts.** Every account's bucket level is saved in the state stores every
  `SAVE_EVERY` seconds and at stop, and restored at start (leaked by the time in between). A kill -9
  loses at most the calls of the last few seconds from the count.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio

from engine.applying import describe_error
from engine.budgets import Budgets, lane, lane_of_process
from engine.errors import ListsyncError, RuleProblem, RulesError
from engine.logs import log_event
from engine.processes import PROCESSES
from engine.rules_loading import LoadedRules, load_rules
from engine.ruleset import ProcessName, duration_seconds
from engine.runs import RunResult, run_process
from engine.session import SIDES, budget_for, open_sync, restore_budget_levels, save_budget_levels
from engine.store import StateStore

SAVE_EVERY = 5.0  # seconds between saves of the budgets' levels
FIRST = "imports"  # runs first at start: resume what an earlier service left open


@dataclass
class Watched:
    """A rule file the service runs: its valid rules, and the bytes they were loaded from."""

    path: Path
    loaded: LoadedRules
    text: bytes
    problem: str | None = None  # the last edit's problems, while the file stays invalid


@dataclass
class ProcessState:
    """What the service knows of one process of one rule set, for /healthz, /metrics and logs."""

    runs: int = 0
    failures: int = 0
    running: bool = False
    last_outcome: str | None = None
    last_run: float | None = None
    last_success: float | None = None
    last_full: float | None = None
    last_error: str | None = None


@dataclass
class Service:
    paths: Sequence[Path]
    budgets: Budgets = field(default_factory=Budgets)
    extras: dict[str, Any] = field(default_factory=dict)  # handed to the adapters (emulator transports)
    reload_every: float = 2.0
    stop_grace: float = 30.0
    rng: random.Random = field(default_factory=random.Random)
    watched: dict[Path, Watched] = field(default_factory=dict)
    states: dict[tuple[str, str], ProcessState] = field(default_factory=dict)
    results: list[tuple[str, str, RunResult]] = field(default_factory=list)  # every run, for metrics
    ready: bool = False
    stopping: anyio.Event = field(default_factory=anyio.Event)
    _resumed: dict[Path, anyio.Event] = field(default_factory=dict)

    def load(self) -> None:
        """Load every rule file; any invalid one stops the start with its problems (RulesError)."""
        problems: list[RuleProblem] = []
        for path in self.paths:
            try:
                loaded = load_rules(path)
            except RulesError as error:
                problems += error.problems
                continue
            self.watched[path] = Watched(path, loaded, path.read_bytes())
            self._resumed[path] = anyio.Event()
        if problems:
            raise RulesError(problems)

    async def serve(self, stop: anyio.Event) -> None:
        """Run until `stop` is set, then stop gracefully. `load` first."""
        async with AsyncExitStack() as stack:
            stores = await self._open_stores(stack)
            await self._restore_budgets(stores)
            async with anyio.create_task_group() as background:
                background.start_soon(self._watch)
                background.start_soon(self._save_budgets_every, stores)
                async with anyio.create_task_group() as loops:
                    for path in self.watched:
                        for process in PROCESSES:
                            loops.start_soon(self._loop, path, process)
                    self.ready = True
                    log_event("service started", rule_files=len(self.watched))
                    await stop.wait()
                    self.ready = False
                    self.stopping.set()
                    log_event("service stopping", grace=self.stop_grace)
                    loops.cancel_scope.deadline = anyio.current_time() + self.stop_grace
                background.cancel_scope.cancel()
            with anyio.CancelScope(shield=True):
                await self._save_budgets(stores)
        log_event("service stopped")

    # -- the loops ----------------------------------------------------------------------------------
    async def _loop(self, path: Path, process: ProcessName) -> None:
        if process != FIRST:
            await self._resumed[path].wait()
        while not self.stopping.is_set():
            await self._run(self.watched[path], process)
            if process == FIRST:
                self._resumed[path].set()
            rules = self.watched[path].loaded.rules
            interval = duration_seconds(getattr(rules.intervals, process))
            jitter = rules.service.jitter
            with anyio.move_on_after(interval * (1 + self.rng.uniform(-jitter, jitter))):
                await self.stopping.wait()

    async def _run(self, watched: Watched, process: ProcessName) -> None:
        loaded = watched.loaded
        name = loaded.rules.name
        state = self.states.setdefault((name, process), ProcessState())
        if self.stopping.is_set():
            return
        started = time.time()
        full = False
        state.running, state.runs, state.last_run = True, state.runs + 1, started
        try:
            with lane(lane_of_process(process)):
                async with open_sync(loaded, budgets=self.budgets, extras=self.extras) as sync:
                    if state.last_full is None:  # an earlier service's, so a restart reads only changes
                        state.last_full = await sync.store.last_full_read(name, process)
                    full = self._full_read_due(loaded, state, started)
                    result = await run_process(sync, process, incremental=not full)
                    if full and result.outcome != "failed":
                        state.last_full = started
                        await sync.store.save_full_read(name, process, started)
        except Exception as error:  # noqa: BLE001 (one rule set's failure must not stop the rest)
            state.failures += 1
            state.last_outcome, state.last_error = "failed", describe_error(error)
            log_event(
                "run failed",
                logging.ERROR,
                rule_set=name,
                process=process,
                error=state.last_error,
                duration=time.time() - started,
            )
            return
        finally:
            state.running = False
        state.last_outcome, state.last_error = result.outcome, result.detail
        if result.outcome in ("ok", "partial"):
            state.last_success = time.time()
        self.results.append((name, process, result))
        level = logging.WARNING if result.outcome == "held" else logging.INFO
        log_event(
            "run",
            level,
            rule_set=name,
            process=process,
            outcome=result.outcome,
            run_id=result.run_id,
            full_read=full,
            ops=result.ops,
            calls=result.calls,
            duration=time.time() - started,
            rejected=sum(result.rejected.values()) or None,
            held=result.held,
            detail=result.detail if result.outcome == "held" else None,
        )

    @staticmethod
    def _full_read_due(loaded: LoadedRules, state: ProcessState, now: float) -> bool:
        every = duration_seconds(loaded.rules.service.full_read_every)
        return state.last_full is None or now - state.last_full >= every

    # -- hot reload ---------------------------------------------------------------------------------
    async def _watch(self) -> None:
        while True:
            await anyio.sleep(self.reload_every)
            for watched in self.watched.values():
                self._reload(watched)

    def _reload(self, watched: Watched) -> None:
        try:
            text = watched.path.read_bytes()
        except OSError as error:
            if watched.problem != str(error):
                watched.problem = str(error)
                log_event("rules unreadable", logging.ERROR, file=str(watched.path), error=str(error))
            return
        if text == watched.text:
            return
        try:
            loaded = load_rules(watched.path)
        except RulesError as error:
            watched.text = text  # report this version once
            watched.problem = "; ".join(str(problem) for problem in error.problems)
            log_event(
                "rules invalid, previous rules kept",
                logging.ERROR,
                file=str(watched.path),
                problems=[str(problem) for problem in error.problems],
            )
            return
        watched.loaded, watched.text, watched.problem = loaded, text, None
        log_event("rules reloaded", file=str(watched.path), rule_set=loaded.rules.name)

    # -- budgets ------------------------------------------------------------------------------------
    async def _open_stores(self, stack: AsyncExitStack) -> list[StateStore]:
        stores: dict[Path, StateStore] = {}
        for watched in self.watched.values():
            path = watched.loaded.state_path
            if path not in stores:
                stores[path] = await StateStore.open(path)
                stack.push_async_callback(stores[path].close)
        return list(stores.values())

    async def _restore_budgets(self, stores: Sequence[StateStore]) -> None:
        for watched in self.watched.values():
            for side in SIDES:
                budget_for(self.budgets, watched.loaded, side)
        for store in stores:
            await restore_budget_levels(store, self.budgets)

    async def _save_budgets_every(self, stores: Sequence[StateStore]) -> None:
        while True:
            await anyio.sleep(SAVE_EVERY)
            await self._save_budgets(stores)

    async def _save_budgets(self, stores: Sequence[StateStore]) -> None:
        """Save the budgets' levels in every store; a store that fails (busy) is tried next time,
        as a failed run would be: it must not stop the service."""
        for store in stores:
            try:
                await save_budget_levels(store, self.budgets)
            except ListsyncError as error:
                log_event("budget levels not saved", logging.WARNING, error=str(error))
