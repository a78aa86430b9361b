"""The Workbooks emulator with generated data, for `listsync emulate workbooks`."""

from __future__ import annotations

from typing import Any

from adapters.workbooks.emulator import create_app
from adapters.workbooks.emulator_data import generate
from adapters.workbooks.emulator_state import DEFAULT_API_KEY, WorkbooksState


def sandbox(*, base_url: str, seed: int) -> tuple[Any, list[str]]:
    """A CRM of a few thousand people and leads in a handful of campaigns, some opted out."""
    state = WorkbooksState(seed=seed)
    generate(state, seed=seed)
    counts = {controller: len(records) for controller, records in state.records.items()}
    return create_app(state), [
        f"API key: {DEFAULT_API_KEY}",
        "user: api.user@example.com, password: secret (for login.api sessions)",
        ", ".join(f"{n} {controller}" for controller, n in sorted(counts.items())),
    ]
