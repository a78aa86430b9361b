"""One crash-test world: a Workbooks and an ESP emulator in their own processes, the ESP's example
rules pointed at them, and the service started, killed, edited around and settled.

The rules are `rules/workbooks-<esp>.toml` with the changes a crash test needs: the emulators'
addresses and accounts (the ESP's part in its `CrashEsp`, `tests/crash/esp.py`); intervals of
seconds, so restarts find work at once; a call budget no restart count can exhaust (the emulators run
`--unlimited`; budgets are tested elsewhere); and the safety thresholds opened, since a world whose
edits pile up across kills must not wait for a person's approval that its twin never needed
(thresholds are tested elsewhere).
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx

from adapters.workbooks.client import WorkbooksClient
from adapters.workbooks.emulator_state import DEFAULT_API_KEY
from adapters.workbooks.wire import WriteObject
from engine.rules_loading import load_rules
from tests.crash.esp import CrashEsp
from tests.crash.esps import ESPS
from tests.crash.subprocesses import Emulator, Service, plan_has_changes

SERVICE_RULES = """
[intervals]
members = "2s"
contacts = "2s"
activity = "3s"
imports = "1s"

[service]
jitter = 0.1
job_wait = "20s"
"""
PROCESSES = ("members", "contacts", "activity")
APPLY_WAIT = 15.0  # seconds a restart may take to begin an apply; longer means it has nothing to do
KILL_WITHIN = 2.0  # seconds after an apply began in which the kill falls
SETTLE_LIMIT = 600.0
ORPHAN_POLLS = 10  # more than any emulator's job needs to end


@dataclass(frozen=True)
class Change:
    """An edit a person makes on one side between two kills, to one person picked by email."""

    kind: str  # crm_opt_out, esp_unsubscribe, crm_rename, crm_leave
    email: str


@dataclass
class Kill:
    idle: bool  # no apply began within APPLY_WAIT: the service had nothing to do
    in_apply: bool  # an apply had begun and not ended when the kill came
    after: float  # seconds after the service started


@dataclass
class World:
    root: Path
    crm: Emulator
    esp: CrashEsp
    rules: Path
    env: dict[str, str]  # the secrets the rules read, as the service's environment
    kills: list[Kill] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # tracebacks in the log, unclean stops
    failed_runs: int = 0
    logged_runs: dict[int, tuple[str, str]] = field(default_factory=dict)  # id -> (process, outcome)
    harness_calls: dict[str, int] = field(default_factory=lambda: {"crm": 0, "esp": 0})

    @classmethod
    @contextmanager
    def running(
        cls, root: Path, *, esp: str, seed: int, contacts: int, faults: str | None
    ) -> Iterator[World]:
        """Both emulators started, the rules written, and the ESP authorised as a person would; the
        emulators stopped at the end, however it comes."""
        root.mkdir(parents=True, exist_ok=True)
        started: list[Emulator] = []
        try:
            started.append(
                Emulator.start("workbooks", seed=seed, contacts=contacts, faults=without_job_faults(faults))
            )
            started.append(Emulator.start(esp, seed=seed, contacts=contacts // 5, faults=faults))
            crm, vendor = started[0], ESPS[esp](started[1])
            rules = write_rules(root, crm.url, vendor)
            env = {"WORKBOOKS_API_KEY": DEFAULT_API_KEY, **vendor.secrets()}
            vendor.authorise(rules, env)
            yield cls(root, crm, vendor, rules, env)
        finally:
            for emulator in started:
                emulator.stop()

    @property
    def mapped(self) -> set[str]:
        """The ESP fields the rules map."""
        return {field.esp for field in load_rules(self.rules).rules.fields}

    def dumps(self) -> dict[str, Any]:
        return {"crm": self.crm.control("state"), "esp": self.esp.emulator.control("state")}

    def calls(self) -> dict[str, int]:
        """Vendor calls made so far, the harness's own edits left out."""
        made = {"crm": self.crm.calls(), "esp": self.esp.emulator.calls()}
        return {side: made[side] - self.harness_calls[side] for side in made}

    # -- the service ----------------------------------------------------------------------------
    def crash_once(self, rng: random.Random) -> Kill:
        """Start the service and SIGKILL it: mostly within KILL_WITHIN seconds of an apply beginning,
        sometimes at any moment; at once when no apply begins within APPLY_WAIT."""
        self.finish_orphans()
        started = time.monotonic()
        service = Service.start(self.rules, self.env)
        idle = False
        if rng.random() < 0.2:
            self._watch(service, started + rng.uniform(0.5, 4.0))
        else:
            began = self._watch(service, started + APPLY_WAIT, until=lambda e: e["event"] == "run applying")
            if began:  # early in the apply more often: most applies between two edits are short
                self._watch(service, time.monotonic() + rng.random() ** 2 * KILL_WITHIN)
            idle = not began
        kill = Kill(idle, bool(service.applying()), after=time.monotonic() - started)
        service.kill()
        self._note(service)
        self.kills.append(kill)
        return kill

    def finish_orphans(self) -> bool:
        """Run to their end the jobs a kill left out of the state store (submitted in the instant
        before it), as the vendor would whether or not anyone asks, so that their rows land before
        the service starts again; the emulators move a job on only as it is polled. Done just before
        a start, not at the kill: a call the killed service had sent may still be on its way to the
        emulator then (and, on a busy machine, even later: `settle` looks again once quiet). A job
        that stalls is left as it is. Whether there was any."""
        recorded = {job for job, _, _ in self.jobs()}
        found = False
        with self.esp.emulator.without_faults():
            for _ in range(ORPHAN_POLLS):
                running = [
                    job
                    for job, status in self.esp.jobs(self.esp.emulator.control("state")).items()
                    if status in self.esp.running and job not in recorded
                ]
                if not running:
                    break
                found = True
                for job in running:
                    anyio.run(self.esp.poll, job)
                    self.harness_calls["esp"] += 1
        return found

    def settle(self) -> None:
        """Run the service until every process runs with nothing to do and no job is open, stop it
        with SIGTERM, and check that no orphaned job turned up and, with a fresh `listsync plan`, that
        nothing is left; again if there is."""
        for _ in range(3):
            self.finish_orphans()
            service = Service.start(self.rules, self.env)
            quiet = self._watch(service, time.monotonic() + SETTLE_LIMIT, until=self._quiet(service))
            code = service.stop()
            self._note(service)
            if code != 0:
                self.findings.append(f"the service exited {code} on SIGTERM")
            if not quiet:
                said = "; ".join(self.findings[-3:]) or "no error in its log"
                raise AssertionError(
                    f"{self.root.name}: the service did not settle in {SETTLE_LIMIT:.0f}s ({said})"
                )
            # An orphan that reached the emulator only now ran as the vendor would: settle again.
            if not self.finish_orphans() and not plan_has_changes(self.rules, self.env):
                return
        raise AssertionError(f"{self.root.name}: a plan still had changes after settling three times")

    def _quiet(self, service: Service) -> Callable[[dict[str, Any]], bool]:
        last: dict[str, dict[str, Any]] = {}

        def check(event: dict[str, Any]) -> bool:
            if event.get("event") == "run":
                last[event["process"]] = event
            idle = all(p in last and last[p]["outcome"] == "ok" and not last[p].get("ops") for p in PROCESSES)
            return idle and "imports" in last and not self.open_jobs()

        return check

    def _watch(
        self, service: Service, deadline: float, until: Callable[[dict[str, Any]], bool] | None = None
    ) -> bool:
        """Read the service's events until `deadline`, or until one satisfies `until` (True then)."""
        while time.monotonic() < deadline:
            event = service.next_event(deadline)
            if event is not None and until is not None and until(event):
                return True
        return False

    def _note(self, service: Service) -> None:
        for event in service.seen:
            if event.get("event") == "unparsed":
                self.findings.append(f"a log line that is not JSON: {event['line'][:300]}")
            elif event.get("event") == "run failed":
                self.failed_runs += 1
            elif event.get("event") == "run":
                ended = (str(event["process"]), str(event["outcome"]))
                if self.logged_runs.setdefault(int(event["run_id"]), ended) != ended:
                    self.findings.append(f"run {event['run_id']} logged twice: {ended}, {self.logged_runs}")

    # -- the state store (read as `listsync status` reads it, from another process) ---------------
    def _query(self, sql: str) -> list[tuple[Any, ...]]:
        path = self.root / "state.sqlite3"
        if not path.exists():
            return []
        with closing(sqlite3.connect(path)) as conn:
            return list(conn.execute(sql))

    def jobs(self) -> list[tuple[str, str, int]]:
        """(vendor job id, state, terminal) of every job the state store holds."""
        rows = self._query("SELECT vendor_job_id, state, terminal FROM jobs")
        return [(str(job), str(state), int(terminal)) for job, state, terminal in rows]

    def runs(self) -> dict[int, tuple[str, str]]:
        """Every run the state store holds: its process and outcome, by id."""
        return {int(i): (str(p), str(o)) for i, p, o in self._query("SELECT id, process, outcome FROM runs")}

    def open_jobs(self) -> int:
        return sum(1 for _, _, terminal in self.jobs() if not terminal)

    # -- edits, as people make them, through the vendors' APIs ----------------------------------------
    def change(self, change: Change) -> None:
        with self.crm.without_faults(), self.esp.emulator.without_faults():  # a person's edit goes through
            anyio.run(self._change, change)

    async def _change(self, change: Change) -> None:
        if change.kind == "esp_unsubscribe":
            self.harness_calls["esp"] += await self.esp.unsubscribe(change.email)
            return
        async with httpx.AsyncClient(base_url=self.crm.url, timeout=30) as http:
            client = WorkbooksClient(http, api_key=DEFAULT_API_KEY)
            for _ in range(5):  # a write of the service's may have moved the record's lock_version
                [result] = await client.write(*self._crm_write(change, self.crm.control("state")))
                self.harness_calls["crm"] += 1
                if result.ok:
                    return
                if not result.stale:
                    raise AssertionError(f"Workbooks refused the harness's {change}: {result}")
        raise AssertionError(f"Workbooks kept answering stale for the harness's {change}")

    @staticmethod
    def _crm_write(change: Change, crm: dict[str, Any]) -> tuple[str, list[WriteObject]]:
        if change.kind == "crm_leave":
            membership = leaving_membership(crm, change.email)
            return "crm/campaign_membership", [WriteObject.delete(*membership)]
        person = next(p for p in crm["people"] if email_of(p) == change.email)
        fields: dict[str, Any] = (
            {"no_email_soliciting": True}
            if change.kind == "crm_opt_out"
            else {"person_first_name": f"{person['person_first_name']}-renamed"}
        )
        return "crm/people", [WriteObject.update(person["id"], person["lock_version"], fields)]


def email_of(person: dict[str, Any]) -> str:
    return str(person.get("main_location[email]") or "").strip().lower()


def open_campaign_memberships(crm: dict[str, Any], email: str) -> list[dict[str, Any]]:
    open_names = {c["name"] for c in crm["campaigns"] if c.get("record_state") == "open"}
    return [
        m
        for m in crm["campaign_memberships"]
        if str(m.get("member") or "").strip().lower() == email
        and m.get("party_or_lead_type") == "Private::Crm::Person"
        and m.get("campaign") in open_names
        and m.get("status") != "Unsubscribed"
    ]


def leaving_membership(crm: dict[str, Any], email: str) -> tuple[int, int]:
    first = min(open_campaign_memberships(crm, email), key=lambda m: str(m["campaign"]))
    return int(first["id"]), int(first["lock_version"])


def planned_changes(dumps: dict[str, Any], esp: CrashEsp, count: int) -> list[Change]:
    """`count` edits, one person each, the kinds in turn: people synced and subscribed on both sides,
    with a unique address and a membership of an open campaign, in order of email."""
    crm = dumps["crm"]
    emails = [email_of(p) for p in crm["people"]]
    subscribed = esp.mailable(dumps["esp"])
    people = sorted(
        email_of(p)
        for p in crm["people"]
        if emails.count(email_of(p)) == 1
        and not p.get("no_email_soliciting")
        and email_of(p) in subscribed
        and open_campaign_memberships(crm, email_of(p))
    )
    if len(people) < count:
        raise AssertionError(f"only {len(people)} people can be edited; {count} edits were asked for")
    kinds = ("crm_opt_out", "esp_unsubscribe", "crm_rename", "crm_leave")
    return [Change(kinds[n % len(kinds)], email) for n, email in enumerate(people[:count])]


def without_job_faults(faults: str | None) -> str | None:
    """The spec without the ESPs' own faults of their bulk jobs (job_fail), which Workbooks, having
    no bulk jobs, does not take."""
    kept = [part for part in (faults or "").split(",") if not part.strip().startswith("job_")]
    return ",".join(kept) or None


def write_rules(root: Path, crm_url: str, esp: CrashEsp) -> Path:
    text = esp.rules.read_text()
    edits = {
        f'state = "state/{esp.rules.stem}.sqlite3"': 'state = "state.sqlite3"',
        'base_url = "https://secure.workbooks.com"': f'base_url = "{crm_url}"',
        **esp.rules_edits(),
        "max_remove_share = 0.2": "max_remove_share = 1.0",
        "max_opt_out_share = 0.05": "max_opt_out_share = 1.0",
    }
    for old, new in edits.items():
        if old not in text:
            raise AssertionError(f"{esp.rules} no longer has {old!r}: update the crash test's edits")
        text = text.replace(old, new)
    rules = root / "rules.toml"
    rules.write_text(text + SERVICE_RULES)
    return rules
