"""A whole sync over both emulators never spends more of the Dotdigital account than its budget.

Fake time in the looptime sense is ruled out here (the SQLite state store's thread makes it jump),
so time is compressed instead: the rules give the account 30 calls a second and the emulator,
whose clock runs 3,600 times fast, enforces Dotdigital's flat scheme at 30 calls an hour. One
emulated hour is one real second, and a single call over the budget would be refused with
ERROR_APIUSAGE_EXCEEDED and fail the sync. The request stamps are also checked over every sliding
second, and the sync must span several of them for the test to mean anything.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from adapters.demos.workbooks_dotdigital import emulator_transports
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from engine.applying import apply_plan
from engine.budgets import Budgets
from engine.planning import make_plan
from engine.rules_loading import load_rules
from engine.session import open_sync
from tests.support import Stamped, most_in_a_window
from tests.test_workbooks_dotdigital_sync import World

pytestmark = pytest.mark.asyncio
CALLS = 30


async def test_a_first_and_a_second_sync_stay_within_the_account_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path, monkeypatch)
    path = world.rules.path
    text = (
        path.read_text().replace("calls = 2000", f"calls = {CALLS}").replace('period = "1h"', 'period = "1s"')
    )
    path.write_text(text.replace("burst = 20", "burst = 5"))
    knobs = Knobs(rate_scheme="flat", flat_calls_per_hour=CALLS)
    world.esp = DotdigitalState(
        knobs, seed=5, clock=lambda: time.monotonic() * 3600, started_at=datetime.now(UTC)
    )
    transports = emulator_transports(world.crm, world.esp)
    esp = Stamped(transports["esp_transport"])
    budgets = Budgets()  # the rules' budget, enforced
    for round_ in range(2):
        async with open_sync(
            load_rules(path), budgets=budgets, extras={**transports, "esp_transport": esp}
        ) as sync:
            report = await apply_plan(sync, await make_plan(sync))
        assert sum(report.rejected.values()) == 0, report.reasons
        if round_ == 0:
            world.esp.unsubscribe(next(iter(world.esp.by_email)))
    refused = [call for call in world.esp.calls if call[2] >= 400]
    assert refused == []
    assert esp.stamps[-1] - esp.stamps[0] > 2  # the budget, not the work, set the pace
    assert most_in_a_window(esp.stamps, 1.0) <= CALLS
