"""One crash-test world: a Workbooks and a Dotdigital emulator in their own processes, the example
rules pointed at them, and the service started, killed, edited around and settled.

The rules are `rules/workbooks-dotdigital.toml` with four changes a crash test needs: the
emulators' addresses and API user; intervals of seconds, so restarts find work at once; a call
budget no restart count can exhaust (the emulators run `--unlimited`; budgets are tested
elsewhere); and the safety thresholds opened, since a world whose edits pile up across kills must
not wait for a person's approval that its twin never needed (thresholds are tested elsewhere).
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import httpx

from adapters.dotdigital.client import DotdigitalClient
from adapters.dotdigital.emulator_state import Knobs
from adapters.workbooks.client import WorkbooksClient
from adapters.workbooks.emulator_state import DEFAULT_API_KEY
from adapters.workbooks.wire import WriteObject
from engine.rules_loading import load_rules
from tests.crash.subprocesses import REPO, Emulator, Service, plan_has_changes

RULES = REPO / "rules" / "workbooks-dotdigital.toml"
API_USER, PASSWORD = Knobs().api_user, Knobs().api_password
ENV = {"WORKBOOKS_API_KEY": DEFAULT_API_KEY, "DOTDIGITAL_PASSWORD": PASSWORD}
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
    esp: Emulator
    rules: Path
    kills: list[Kill] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)  # tracebacks in the log, unclean stops
    failed_runs: int = 0
    harness_calls: dict[str, int] = field(default_factory=lambda: {"crm": 0, "esp": 0})

    @classmethod
    def start(cls, root: Path, *, seed: int, contacts: int, faults: str | None) -> World:
        root.mkdir(parents=True, exist_ok=True)
        crm = Emulator.start("workbooks", seed=seed, contacts=contacts, faults=faults)
        esp = Emulator.start("dotdigital", seed=seed, contacts=contacts // 5, faults=faults)
        return cls(root, crm, esp, write_rules(root, crm.url, esp.url))

    @property
    def mapped(self) -> set[str]:
        """The Dotdigital data fields the rules map."""
        return {field.esp for field in load_rules(self.rules).rules.fields}

    def dumps(self) -> dict[str, Any]:
        return {"crm": self.crm.control("state"), "esp": self.esp.control("state")}

    def calls(self) -> dict[str, int]:
        """Vendor calls made so far, the harness's own edits left out."""
        made = {"crm": self.crm.calls(), "esp": self.esp.calls()}
        return {side: made[side] - self.harness_calls[side] for side in made}

    def close(self) -> None:
        for emulator in (self.crm, self.esp):
            emulator.stop()

    # -- the service ----------------------------------------------------------------------------
    def crash_once(self, rng: random.Random) -> Kill:
        """Start the service and SIGKILL it: mostly within KILL_WITHIN seconds of an apply beginning,
        sometimes at any moment; at once when no apply begins within APPLY_WAIT."""
        started = time.monotonic()
        service = Service.start(self.rules, ENV)
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

    def settle(self) -> None:
        """Run the service until every process runs with nothing to do and no job is open, stop it
        with SIGTERM, and check with a fresh `listsync plan` that nothing is left; again if there is."""
        for _ in range(3):
            service = Service.start(self.rules, ENV)
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
            if not plan_has_changes(self.rules, ENV):
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

    # -- the state store --------------------------------------------------------------------------
    def jobs(self) -> list[tuple[str, str, int]]:
        """(vendor job id, state, terminal) of every job the state store holds."""
        path = self.root / "state.sqlite3"
        if not path.exists():
            return []
        with sqlite3.connect(path) as conn:
            return [(str(j), str(s), int(t)) for j, s, t in conn.execute(
                "SELECT vendor_job_id, state, terminal FROM jobs"
            )]  # fmt: skip

    def open_jobs(self) -> int:
        return sum(1 for _, _, terminal in self.jobs() if not terminal)

    # -- edits, as people make them, through the vendors' APIs ----------------------------------------
    def change(self, change: Change) -> None:
        with self.crm.without_faults(), self.esp.without_faults():  # a person's edit goes through
            anyio.run(self._change, change)

    async def _change(self, change: Change) -> None:
        if change.kind == "esp_unsubscribe":
            async with httpx.AsyncClient(base_url=self.esp.url, timeout=30) as http:
                await DotdigitalClient(http, user=API_USER, password=PASSWORD).unsubscribe(change.email)
                self.harness_calls["esp"] += 1
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
        and m.get("campaign_membership_status[status]") != "Unsubscribed"
    ]


def leaving_membership(crm: dict[str, Any], email: str) -> tuple[int, int]:
    first = min(open_campaign_memberships(crm, email), key=lambda m: str(m["campaign"]))
    return int(first["id"]), int(first["lock_version"])


def planned_changes(dumps: dict[str, Any], count: int) -> list[Change]:
    """`count` edits, one person each, the kinds in turn: people synced and subscribed on both sides,
    with a unique address and a membership of an open campaign, in order of email."""
    crm, esp = dumps["crm"], dumps["esp"]
    emails = [email_of(p) for p in crm["people"]]
    subscribed = {
        str(c["email"]).lower()
        for c in esp["contacts"]
        if c["status"] == "Subscribed" and any(str(c["email"]) in b["members"] for b in esp["address_books"])
    }
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


def write_rules(root: Path, crm_url: str, esp_url: str) -> Path:
    text = RULES.read_text()
    edits = {
        'state = "state/workbooks-dotdigital.sqlite3"': 'state = "state.sqlite3"',
        'base_url = "https://secure.workbooks.com"': f'base_url = "{crm_url}"',
        "apiuser-xxxx@apiconnector.com": API_USER,
        "address_book_limit = 100": f'address_book_limit = 100\nendpoint = "{esp_url}"',
        "calls = 2000 ": "calls = 1000000 ",
        "burst = 20\n": "burst = 1000\n",
        "max_remove_share = 0.2": "max_remove_share = 1.0",
        "max_opt_out_share = 0.05": "max_opt_out_share = 1.0",
    }
    for old, new in edits.items():
        if old not in text:
            raise AssertionError(f"{RULES} no longer has {old!r}: update the crash test's edits")
        text = text.replace(old, new)
    rules = root / "rules.toml"
    rules.write_text(text + SERVICE_RULES)
    return rules
