"""The Workbooks emulator with generated data, for `listsync emulate workbooks`.

The Dotdigital sandbox starts from the same generated CRM (`generated_crm`), so that, run with the
same `--seed` and `--contacts`, its account holds this CRM's people and leads
(`adapters.demos.earlier_sync`).
"""

from __future__ import annotations

from typing import Any

from adapters.emulation.faults import Faults
from adapters.emulation.layer import apply_spec, control_lines
from adapters.workbooks.emulator import create_app
from adapters.workbooks.emulator_data import generate
from adapters.workbooks.emulator_state import DEFAULT_API_KEY, WorkbooksState


def generated_crm(seed: int, contacts: int | None = None) -> WorkbooksState:
    """The CRM `listsync emulate workbooks --seed SEED [--contacts N]` serves: 2,000 people and 800
    leads, or `contacts` people and leads (a quarter of them leads), in a handful of campaigns, some
    opted out. With no contacts it has no open campaigns either, but it has the custom fields the
    example rules map. The same seed and count give the same people, whatever the clock says."""
    state = WorkbooksState(seed=seed)
    if contacts is None:
        generate(state, seed=seed)
    else:
        leads = contacts // 4
        generate(state, seed=seed, people=contacts - leads, leads=leads, campaigns=4 if contacts else 0)
    return state


def sandbox(
    *,
    base_url: str,
    seed: int,
    faults: str | None = None,
    contacts: int | None = None,
    unlimited: bool = False,
) -> tuple[Any, list[str]]:
    """`generated_crm` behind the faults of the spec `faults`. It never rate-limits (its redirect
    knobs are off), so `unlimited` changes nothing."""
    state = generated_crm(seed, contacts)
    app = create_app(state, faults=Faults(seed=seed))
    apply_spec(app.state.control, faults)
    counts = {controller: len(records) for controller, records in state.records.items()}
    return app, [
        f"API key: {DEFAULT_API_KEY}",
        "user: api.user@example.com, password: secret (for login.api sessions)",
        ", ".join(f"{n} {controller}" for controller, n in sorted(counts.items())),
        "the Dotdigital emulator given the same --seed and --contacts holds these people and leads",
        *control_lines(base_url, app.state.control),
    ]
