"""Syncing until a plan is empty while faults strike: what the convergence tests share.

Faults are on for whole runs, planning included (the adapters repeat each failed read); a run that
gives up is recorded and the next starts over, as the service's next interval would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.applying import apply_plan
from engine.budgets import Budgets
from engine.errors import ListsyncError
from engine.planning import make_plan
from engine.ruleset import RuleSet
from engine.session import open_sync

ROUNDS = 25


async def converge(
    rules: RuleSet,
    budgets: Budgets,
    extras: dict[str, Any],
    faulty: Callable[[bool], None],
    errors: list[str],
) -> int:
    """Plan and apply until a plan is empty, with `faulty(True)` for each whole run; the number of
    applies it took. Runs that gave up go into `errors`."""
    for applies in range(ROUNDS):
        try:
            faulty(True)
            async with open_sync(rules, budgets=budgets, extras=extras) as sync:
                plan = await make_plan(sync)
                if not plan.ops:
                    return applies
                await apply_plan(sync, plan)
        except ListsyncError as failed:  # a run that gave up; the next one starts over
            errors.append(f"{type(failed).__name__}: {failed}")
        finally:
            faulty(False)
    raise AssertionError(f"no empty plan after {ROUNDS} runs; errors: {errors}")
