"""A small world on disk for end-to-end tests: rule file, CRM and ESP JSON Lines files, campaigns."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from adapters.files import jsonl
from engine.applying import ApplyReport, apply_plan
from engine.planning import make_plan
from engine.plans import Plan
from engine.rules_loading import LoadedRules, load_rules
from engine.ruleset import ProcessName
from engine.session import Sync, open_sync

RULES = """
name = "world"
state = "state.sqlite3"

[crm]
adapter = "files"
settings = {{ path = "crm.jsonl", campaigns = "campaigns.jsonl", delta = "crm-delta.jsonl" }}

[esp]
adapter = "files"
settings = {{ path = "esp.jsonl", delta = "esp-delta.jsonl" }}

[[fields]]
crm = "first_name"
esp = "FIRSTNAME"

[[fields]]
crm = "city"
esp = "CITY"
direction = "both"

[[fields]]
crm = "score"
esp = "SCORE"
type = "numeric"
applies_to = "lead"

[consent]
resubscribe = "{resubscribe}"

[campaigns]
integrated = ["*"]

[lists]
template = "CRM {{name:.100}}"
master = "Everyone"

[safety]
max_remove_share = {max_remove_share}
max_opt_out_share = 0.5
min_list_size = {min_list_size}
"""


class World:
    """Files for both sides in one directory, and helpers to edit and sync them."""

    def __init__(self, root: Path, **rules: Any) -> None:
        self.root = root
        options = {"resubscribe": "never", "max_remove_share": 0.5, "min_list_size": 4, **rules}
        (root / "rules.toml").write_text(RULES.format(**options))
        self.write(
            "campaigns.jsonl",
            [
                {"key": "C1", "name": "Spring", "status": "open"},
                {"key": "C2", "name": "Autumn", "status": "closed"},
            ],
        )

    @property
    def rules(self) -> LoadedRules:
        return load_rules(self.root / "rules.toml")

    def write(self, name: str, records: list[dict[str, Any]]) -> None:
        jsonl.write_atomically(self.root / name, [jsonl.encode_object(r) for r in records])

    def read(self, name: str) -> dict[str, dict[str, Any]]:
        rows = [jsonl.decode_object(line) for line in jsonl.read_lines(self.root / name)]
        return {str(row["email"]).lower(): row for row in rows}

    def edit(self, name: str, email: str, **changes: Any) -> None:
        rows = list(self.read(name).values())
        for row in rows:
            if str(row["email"]).lower() == email:
                row.update(changes)
        self.write(name, rows)

    @asynccontextmanager
    async def sync(self) -> AsyncIterator[Sync]:
        async with open_sync(self.rules) as sync:
            yield sync

    async def plan(self, *, incremental: bool = False, process: ProcessName | None = None) -> Plan:
        async with self.sync() as sync:
            return await make_plan(sync, incremental=incremental, process=process)

    async def apply(
        self, *, override_safety: bool = False, incremental: bool = False, process: ProcessName | None = None
    ) -> ApplyReport:
        async with self.sync() as sync:
            plan = await make_plan(sync, incremental=incremental, process=process)
            return await apply_plan(sync, plan, override_safety=override_safety)


def crm_person(email: str, **extra: Any) -> dict[str, Any]:
    return {
        "email": email,
        "opted_out": False,
        "first_name": email.split("@")[0].title(),
        "city": "York",
        "lists": ["Spring"],
        **extra,
    }
