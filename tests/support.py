"""Shared helpers for tests: rule sets built in code, records, and plan application in memory."""

from __future__ import annotations

from typing import Any

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
