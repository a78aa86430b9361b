"""`listsync plan` and `apply` keep each account's budget level in the state store, as the service
does, so commands run one after another (by hand, or from cron) spend one budget per account."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.session import open_command_sync
from tests.workbooks_world import dotdigital_rules


@pytest.mark.asyncio
async def test_commands_run_one_after_another_spend_one_budget_per_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    loaded = dotdigital_rules(tmp_path, monkeypatch)
    async with open_command_sync(loaded) as sync:
        for _ in range(15):
            await sync.esp_budget.acquire()
        spent = sync.esp_budget.level
    assert spent > 14  # Dotdigital's 2,000 an hour leak about one call in two seconds
    async with open_command_sync(loaded) as sync:
        assert spent - 1 < sync.esp_budget.level <= spent
        assert sync.crm_budget.level < 1  # Workbooks' budget is its own
