"""A generated Workbooks CRM and an emulated ESP, synced through the engine with a rule set of rules/:
what the Workbooks-to-ESP end-to-end tests share.

The CRM is the demos' (`adapters.demos.workbooks_crm`), smaller; the rule file is the shipped one,
written beside the state with the emulator's account names, its secrets in the environment. Both
sides are reached over `httpx.ASGITransport`. Budgets are off: these tests are about what the sync
does, and the rules' real budgets would pace them in real time (the state store rules out fake time).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

import engine.applying
from adapters.demos import rules_for_emulators
from adapters.demos.workbooks_crm import SECRETS, DemoCrm
from adapters.demos.workbooks_dotdigital import EMULATOR_SECRETS, emulator_rules
from engine.applying import ApplyReport, apply_plan
from engine.budgets import Budgets
from engine.planning import make_plan
from engine.plans import Plan
from engine.rules_loading import LoadedRules, load_rules
from engine.ruleset import ProcessName
from engine.session import Sync, open_sync

Transport = Callable[[], httpx.AsyncBaseTransport]


def dotdigital_rules(root: Path, monkeypatch: pytest.MonkeyPatch) -> LoadedRules:
    """The shipped rules/workbooks-dotdigital.toml written into `root` for the emulators, with the
    emulators' secrets in the environment."""
    for name, value in EMULATOR_SECRETS.items():
        monkeypatch.setenv(name, value)
    return load_rules(emulator_rules(root))


class WorkbooksWorld:
    """The CRM (`crm`), the rules (`rules`), and syncs of them with the ESP `esp_transport` reaches."""

    def __init__(
        self,
        root: Path,
        monkeypatch: pytest.MonkeyPatch,
        *,
        rules: Path,
        replacements: Mapping[str, str],
        secrets: Mapping[str, str],
        esp_transport: Transport,
    ) -> None:
        self.path = rules_for_emulators(rules, root, replacements)
        for name, value in {**SECRETS, **secrets}.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setattr(engine.applying, "POLL_FIRST", 0.01)
        self.crm = DemoCrm(5, people=120, leads=40)
        self.rules = load_rules(self.path)
        self._esp_transport = esp_transport

    def edit_rules(self, old: str, new: str) -> None:
        """Change the rule file (`old` must be in it) and load it again."""
        text = self.path.read_text(encoding="utf-8")
        assert old in text, old
        self.path.write_text(text.replace(old, new), encoding="utf-8")
        self.rules = load_rules(self.path)

    @asynccontextmanager
    async def sync(self) -> AsyncIterator[Sync]:
        extras = {"crm_transport": self.crm.transport(), "esp_transport": self._esp_transport()}
        async with open_sync(self.rules, budgets=Budgets(enabled=False), extras=extras) as sync:
            yield sync

    async def plan(self, process: ProcessName | None = None) -> Plan:
        async with self.sync() as sync:
            return await make_plan(sync, process=process)

    async def apply(
        self, process: ProcessName | None = None, *, override_safety: bool = False
    ) -> ApplyReport:
        async with self.sync() as sync:
            plan = await make_plan(sync, process=process)
            return await apply_plan(sync, plan, override_safety=override_safety)

    async def take_two_off_campaigns(
        self, candidates: list[str], lists_of: Callable[[str], set[str]]
    ) -> set[tuple[str, str]]:
        """Take one of `candidates` off a campaign and mark another's membership unsubscribed, then
        sync: each leaves that campaign's ESP list (as `lists_of` reads them) and no other. Returns
        the (email, list) pairs removed."""
        leaver, membership = self.crm.first_with_membership(candidates)
        quitter, unsubscribed = self.crm.first_with_membership([e for e in candidates if e != leaver])
        before = {email: lists_of(email) for email in (leaver, quitter)}
        self.crm.take_off_campaign(membership)
        self.crm.unsubscribe_from_campaign(unsubscribed)
        plan = await self.plan_and_apply()
        removed = {(str(op.email), str(op.list)) for op in plan.ops if op.kind == "remove_member"}
        assert removed == {
            (leaver, self.crm.campaign_list(membership)),
            (quitter, self.crm.campaign_list(unsubscribed)),
        }
        for email, name in removed:
            assert lists_of(email) == before[email] - {name}
        return removed

    async def plan_and_apply(self, process: ProcessName | None = None) -> Plan:
        """Plan and apply; every op must be done (none rejected, none left pending)."""
        async with self.sync() as sync:
            plan = await make_plan(sync, process=process)
            report = await apply_plan(sync, plan)
        assert not report.rejected and not report.pending, report.reasons
        return plan
