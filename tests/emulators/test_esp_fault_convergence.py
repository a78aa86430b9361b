"""With 30% of calls failing, a sync into Constant Contact or Mailchimp ends as one without faults.

The same test as `test_fault_convergence.py` (Workbooks -> Dotdigital), for the other two ESPs: a
CRM in JSON Lines files (`tests/files_world.py`) synced into an empty emulated account, once
cleanly and once with the fault layer failing 30% of the calls every way it knows, reads included
(timeouts cut to a quarter-second deadline) and a share of the vendor's bulk jobs failing or
stalling; runs are repeated, plan then apply, until a plan is empty. Then both sides change the same
way in either world (an opt-out on each side, a rename, someone taken off the campaign), and both
sync again. Each time the two accounts' dumps (`GET /_emulator/state`) must be equal but for ids,
dates and the bulk jobs it took (`adapters.emulation.dumps.comparable`), and so must the CRM files.
`LISTSYNC_FAULT_SEEDS=1,2,3,...` runs more seeds. The two-way CITY field has no owner: a base that
missed what a partly failed apply confirmed would turn the CRM's later edit into a conflict that
never clears (`tests/test_partial_apply_base.py` shows that case on its own).
"""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import stamina
from starlette.applications import Starlette

import engine.applying
from adapters.constantcontact.emulator import create_app as constantcontact_app
from adapters.constantcontact.emulator_state import ConstantContactState
from adapters.constantcontact.emulator_state import Knobs as ConstantContactKnobs
from adapters.emulation.dumps import comparable
from adapters.emulation.faults import Faults
from adapters.mailchimp.emulator import create_app as mailchimp_app
from adapters.mailchimp.emulator_state import Knobs as MailchimpKnobs
from adapters.mailchimp.emulator_state import MailchimpState
from engine.budgets import Budget, Budgets
from engine.contract import OAuthTokens
from engine.http import BudgetedTransport
from engine.retrying import ATTEMPTS
from engine.rules_loading import load_rules
from engine.store import StateStore
from tests.emulators.converging import converge
from tests.files_world import World, crm_person

SEEDS = [int(s) for s in os.environ.get("LISTSYNC_FAULT_SEEDS", "7").split(",")]
SHARES = {"500": 0.07, "503": 0.05, "429": 0.04, "timeout": 0.03, "drop": 0.06, "malformed": 0.05}
SHARES |= {"retry_after": 0.01, "job_fail": 0.1, "job_stall": 0.2}
DEADLINE = 0.25
PEOPLE = 24

ESP_RULES = {
    "constant-contact": """
[esp]
adapter = "constant-contact"
settings = { client_id = "emulator-client-id", client_secret = { env = "CC_CLIENT_SECRET" } }
""",
    "mailchimp": """
[esp]
adapter = "mailchimp"
settings.api_key = { env = "MC_KEY" }
settings.audience = "Customers"
settings.endpoint = "https://us21.api.mailchimp.com"
""",
}
RULES = """
name = "esp-faults"
state = "state.sqlite3"

[crm]
adapter = "files"
settings = {{ path = "crm.jsonl", campaigns = "campaigns.jsonl" }}
{esp}
[[fields]]
crm = "city"
esp = "CITY"
direction = "both"

[campaigns]
integrated = ["*"]

[lists]
template = "CRM {{name:.90}}"
master = "All Workbooks Contacts"

[safety]
max_remove_share = 1.0
max_opt_out_share = 1.0
"""


@dataclass
class Account:
    """One emulated ESP account: its app, how to dump it, and how its side changes."""

    app: Starlette
    unsubscribe: Callable[[str], None]
    jobs: str  # the dump's key for the bulk jobs, which differ by path


async def constantcontact(root: Path, monkeypatch: pytest.MonkeyPatch, seed: int | None) -> Account:
    state = ConstantContactState(
        ConstantContactKnobs(rate_limited=False, activity_polls=0), started_at=datetime.now(UTC)
    )
    monkeypatch.setenv("CC_CLIENT_SECRET", state.knobs.client_secret)
    issued = state.grants.issue("contact_data campaign_data offline_access")
    tokens = OAuthTokens(str(issued["access_token"]), str(issued["refresh_token"]), time.time() + 86_400)
    async with await StateStore.open(root / "state.sqlite3") as store:  # as `listsync auth` leaves it
        await store.save_tokens("esp-faults", "esp", "constant-contact", tokens)

    def unsubscribe(email: str) -> None:
        contact = state.contact_by_email(email)
        assert contact is not None
        state.unsubscribe(contact, "Contact")

    faults = None if seed is None else Faults(seed=seed, timeout_after=DEADLINE * 2)
    return Account(constantcontact_app(state, faults=faults), unsubscribe, "activities")


async def mailchimp(root: Path, monkeypatch: pytest.MonkeyPatch, seed: int | None) -> Account:
    state = MailchimpState(MailchimpKnobs(batch_polls=1), started_at=datetime.now(UTC))
    audience = state.create_audience("Customers")
    monkeypatch.setenv("MC_KEY", state.knobs.api_key)

    def unsubscribe(email: str) -> None:
        member = state.member(audience, email)
        state.unsubscribe(audience, member, "I no longer want to receive these emails", state.now())

    faults = None if seed is None else Faults(seed=seed, timeout_after=DEADLINE * 2)
    return Account(mailchimp_app(state, faults=faults), unsubscribe, "batches")


ACCOUNTS: dict[str, Callable[[Path, pytest.MonkeyPatch, int | None], Awaitable[Account]]] = {
    "constant-contact": constantcontact,
    "mailchimp": mailchimp,
}


class Emulated:
    """One world: the CRM files, the ESP account, and syncing them to an empty plan."""

    def __init__(self, world: World, account: Account, seed: int | None) -> None:
        self.world, self.account, self.seed = world, account, seed
        transport = httpx.ASGITransport(app=account.app)
        self.extras = {
            "esp_transport": BudgetedTransport(transport, Budget("deadline", None), deadline=DEADLINE)
        }
        self.errors: list[str] = []
        self.exposed = 0  # calls made while faults were on
        self._since = 0

    @classmethod
    async def make(
        cls, root: Path, vendor: str, monkeypatch: pytest.MonkeyPatch, seed: int | None
    ) -> Emulated:
        root.mkdir()
        world = World(root)
        (root / "rules.toml").write_text(RULES.format(esp=ESP_RULES[vendor]))
        people = [crm_person(f"p{n:02}@example.com", city=f"City {n}") for n in range(PEOPLE)]
        for person in people[:2]:
            person["opted_out"] = True
        world.write("crm.jsonl", people)
        return cls(world, await ACCOUNTS[vendor](root, monkeypatch, seed), seed)

    async def converge(self) -> int:
        """Plan and apply until a plan is empty; the number of applies it took."""
        rules = load_rules(self.world.root / "rules.toml")
        return await converge(rules, Budgets(enabled=False), self.extras, self.faulty, self.errors)

    def faulty(self, on: bool) -> None:
        if self.seed is None:
            return
        control = self.account.app.state.control
        if control.faults.error_500:  # faults were on: count the calls made since
            self.exposed += control.faults.calls - self._since
        self._since = control.faults.calls
        control.update({name: share * on for name, share in SHARES.items()})

    async def dumps(self) -> dict[str, Any]:
        transport = httpx.ASGITransport(app=self.account.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as http:
            esp = (await http.get("/_emulator/state")).json()
        esp.pop(self.account.jobs)
        return {"esp": comparable(esp), "crm": self.world.read("crm.jsonl")}

    def change(self) -> None:
        """The same edits in either world: an opt-out each side, a rename, one off the campaign."""
        self.world.edit("crm.jsonl", "p02@example.com", opted_out=True)
        self.world.edit("crm.jsonl", "p04@example.com", city="Renamed")
        self.world.edit("crm.jsonl", "p05@example.com", lists=[])
        self.account.unsubscribe("p03@example.com")


@pytest.mark.asyncio
@pytest.mark.timeout(120)
@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("vendor", sorted(ESP_RULES))
async def test_a_sync_with_30_percent_of_calls_failing_ends_as_one_without_faults(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, vendor: str, seed: int
) -> None:
    monkeypatch.setattr(engine.applying, "JOB_WAIT", 0.5)  # a stalled job is left to the next run
    clean = await Emulated.make(tmp_path / "clean", vendor, monkeypatch, None)
    faulted = await Emulated.make(tmp_path / "faulted", vendor, monkeypatch, seed)
    with stamina.set_testing(True, attempts=ATTEMPTS):
        for step in ("first sync", "after changes on both sides"):
            assert await clean.converge() == 1, clean.errors
            await faulted.converge()
            assert await faulted.dumps() == await clean.dumps(), step
            clean.change()
            faulted.change()
    injected = faulted.account.app.state.control.report()["injected"]
    print(f"faults injected: {injected} in {faulted.exposed} calls; runs that gave up: {faulted.errors}")
    assert sum(injected.values()) > 0.1 * faulted.exposed and faulted.exposed > 15
