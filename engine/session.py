"""Opening everything one rule set needs for a run: its state store, both adapters, their budgets.

Adapters are found through the registry and handed an `AdapterContext`; the budget for each side is
the shared bucket of that side's vendor account, so two rule sets on one account share one budget.
An OAuth adapter keeps its grant in the state store, under the rule set and side (`SideTokens`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager, suppress
from dataclasses import dataclass
from functools import partial
from typing import Any

import anyio

from engine.budgets import Budget, Budgets
from engine.contract import Adapter, AdapterContext, Capabilities
from engine.errors import ListsyncError, PermanentError
from engine.http import budgeted_client
from engine.registry import adapter_factory
from engine.rules_loading import LoadedRules, resolve_secret
from engine.ruleset import RuleSet, Side
from engine.store import SideTokens, StateStore

SIDES: tuple[Side, Side] = ("crm", "esp")


@dataclass
class Sync:
    """Everything open for one rule set."""

    loaded: LoadedRules
    store: StateStore
    crm: Adapter
    esp: Adapter
    crm_capabilities: Capabilities
    esp_capabilities: Capabilities
    crm_budget: Budget
    esp_budget: Budget
    # Budgets are per account and outlive a sync (a demo or service opens many): the counts at open.
    used_at_open: tuple[int, int] = (0, 0)

    def calls_used(self) -> dict[str, int]:
        """Vendor calls made on each side since this sync was opened: its plan's reads and its writes."""
        crm, esp = self.used_at_open
        return {"crm": self.crm_budget.used - crm, "esp": self.esp_budget.used - esp}

    @property
    def rules(self) -> RuleSet:
        return self.loaded.rules

    @property
    def name(self) -> str:
        return self.loaded.rules.name

    def adapter(self, side: Side) -> Adapter:
        return self.crm if side == "crm" else self.esp

    def capabilities(self, side: Side) -> Capabilities:
        return self.crm_capabilities if side == "crm" else self.esp_capabilities


def budget_for(budgets: Budgets, loaded: LoadedRules, side: Side) -> Budget:
    """The budget of the vendor account a rule set's `side` uses (created on first use)."""
    side_rules = loaded.rules.crm if side == "crm" else loaded.rules.esp
    capabilities = loaded.crm_capabilities if side == "crm" else loaded.esp_capabilities
    if capabilities is None:
        raise PermanentError("rules loaded without their adapters cannot be synced")
    return budgets.for_account(side_rules.account_key(), side_rules.limits, capabilities)


async def restore_budget_levels(store: StateStore, budgets: Budgets) -> None:
    """Take back into `budgets` the levels `store` kept of their accounts (leaked by the time since)."""
    accounts = budgets.all()
    for account, (level, saved_at) in (await store.budget_levels()).items():
        if account in accounts:
            accounts[account].restore(level, saved_at)


async def save_budget_levels(store: StateStore, budgets: Budgets) -> None:
    await store.save_budget_levels({account: budget.saved() for account, budget in budgets.all().items()})


@asynccontextmanager
async def open_command_sync(loaded: LoadedRules) -> AsyncIterator[Sync]:
    """`open_sync` for one command (`plan`, `apply`): the account budgets start from the levels the
    state store kept (the service's, or an earlier command's) and leave theirs there, so commands
    run one after another, by hand or from cron, spend one budget per account as the service's runs
    do. (Commands running at the same time each count their own.)"""
    budgets = Budgets()
    async with open_sync(loaded, budgets=budgets) as sync:
        await restore_budget_levels(sync.store, budgets)
        try:
            yield sync
        finally:
            # A level left unsaved (a busy store) only lets the next command start with more of the
            # budget than it should; the vendor's own limit still answers for it.
            with anyio.CancelScope(shield=True), suppress(ListsyncError):
                await save_budget_levels(sync.store, budgets)


@asynccontextmanager
async def open_sync(
    loaded: LoadedRules, *, budgets: Budgets | None = None, extras: dict[str, Any] | None = None
) -> AsyncIterator[Sync]:
    """Open the store and both adapters of a rule set; close them all on exit."""
    budgets = budgets if budgets is not None else Budgets()
    rules = loaded.rules
    async with AsyncExitStack() as stack:
        store = await StateStore.open(loaded.state_path)
        stack.push_async_callback(store.close)
        opened: dict[Side, tuple[Adapter, Capabilities, Budget]] = {}
        for side in SIDES:
            side_rules = rules.crm if side == "crm" else rules.esp
            settings = loaded.crm_settings if side == "crm" else loaded.esp_settings
            capabilities = loaded.crm_capabilities if side == "crm" else loaded.esp_capabilities
            if settings is None or capabilities is None:
                raise PermanentError("rules loaded without their adapters cannot be synced")
            budget = budget_for(budgets, loaded, side)
            # A transport handed in as extras["crm_transport"] / ["esp_transport"] routes the
            # side's HTTP to an emulator (tests, the demo); otherwise it goes to the network.
            transport = (extras or {}).get(f"{side}_transport")
            context = AdapterContext(
                side=side,
                base_dir=loaded.base_dir,
                budget=budget,
                secret=partial(resolve_secret, base_dir=loaded.base_dir),
                extras=dict(extras or {}),
                http=partial(budgeted_client, budget=budget, transport=transport),
                tokens=SideTokens(store, rules.name, side, side_rules.adapter),
                account_state=budget.adapter_state,
            )
            adapter = adapter_factory(side_rules.adapter)(settings, context)
            stack.push_async_callback(adapter.aclose)
            opened[side] = (adapter, capabilities, budget)
        crm, crm_caps, crm_budget = opened["crm"]
        esp, esp_caps, esp_budget = opened["esp"]
        used = (crm_budget.used, esp_budget.used)
        yield Sync(loaded, store, crm, esp, crm_caps, esp_caps, crm_budget, esp_budget, used)
