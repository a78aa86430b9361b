"""Shared helpers for tests: rule sets built in code, records, and plan application in memory."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Sequence
from typing import Any

import httpx
import hypothesis
import msgspec

from engine.diffing import RecordDiff, diff_record
from engine.records import Record
from engine.ruleset import RuleSet
from engine.simulating import after_ops

LISTS = frozenset({"Spring", "Webinar", "All"})


class Clock:
    """A clock for emulators and stores that a test moves by hand (`clock.now += 60`)."""

    def __init__(self, now: float = 1_750_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def make_rules(**overrides: Any) -> RuleSet:
    """A rule set with three fields (one each way) and the given top-level overrides."""
    document: dict[str, Any] = {
        "name": "test",
        "state": "state.sqlite3",
        "crm": {"adapter": "files", "settings": {"path": "crm.jsonl"}},
        "esp": {"adapter": "files", "settings": {"path": "esp.jsonl"}},
        "fields": [
            {"crm": "first_name", "esp": "FIRSTNAME", "type": "text"},
            {"crm": "city", "esp": "CITY", "type": "text", "direction": "both", "owner": "crm"},
            {"crm": "score", "esp": "SCORE", "type": "numeric", "direction": "esp_to_crm"},
        ],
        "campaigns": {"integrated": ["*"]},
    }
    document.update(overrides)
    return msgspec.convert(document, RuleSet)


def record(email: str = "a@example.com", **changes: Any) -> Record:
    return Record(email, **changes)


def diff(crm: Record | None, esp: Record | None, base: Record | None, rules: RuleSet) -> RecordDiff:
    email = next(r.email for r in (crm, esp, base) if r is not None)
    return diff_record(email, crm, esp, base, rules, LISTS)


def applied(
    crm: Record | None, esp: Record | None, result: RecordDiff, email: str = "p@example.com"
) -> tuple[Record | None, Record | None]:
    """Both sides after the diff's ops are applied, as the adapters would apply them."""
    return after_ops(crm, email, result.ops, "crm"), after_ops(esp, email, result.ops, "esp")


def kinds(result: RecordDiff) -> list[str]:
    return [op.kind for op in result.ops]


class Stamped(httpx.AsyncBaseTransport):
    """Records the loop time of every request that reaches the vendor."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner, self.stamps = inner, list[float]()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.stamps.append(asyncio.get_running_loop().time())
        return await self.inner.handle_async_request(request)


def most_in_a_window(stamps: Sequence[float], window: float) -> int:
    """The most requests any half-open window of `window` seconds holds (stamps in order)."""
    most = left = 0
    for right, stamp in enumerate(stamps):
        while stamps[left] <= stamp - window:
            left += 1
        most = max(most, right - left + 1)
    return most


# -- fuzzing ------------------------------------------------------------------------------------------
# LISTSYNC_FUZZ=long (what bin/fuzz sets) runs every fuzz test with FUZZ_LONG_FACTOR times its
# default examples; the default run keeps each one to a few seconds.
FUZZ_LONG = os.environ.get("LISTSYNC_FUZZ", "").strip().lower() == "long"
FUZZ_LONG_FACTOR = 40


def fuzz_settings(examples: int) -> hypothesis.settings:
    """Hypothesis settings for a fuzz test: `examples` by default, many more with LISTSYNC_FUZZ=long.

    No deadline: an example's time depends on the generated size and on the machine, and a slow
    example is not a failure here. Failing examples are kept in `.hypothesis/` (ignored by git) and
    tried first on the next run."""
    return hypothesis.settings(
        max_examples=examples * FUZZ_LONG_FACTOR if FUZZ_LONG else examples,
        deadline=None,
        suppress_health_check=[
            hypothesis.HealthCheck.too_slow,
            hypothesis.HealthCheck.data_too_large,
            hypothesis.HealthCheck.large_base_example,
        ],
    )
