"""The Dotdigital emulator with generated data, for `listsync emulate dotdigital`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters.dotdigital.emulator import create_app
from adapters.dotdigital.emulator_data import generate
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from adapters.emulation.faults import Faults
from adapters.emulation.layer import apply_spec, control_lines


def sandbox(
    *,
    base_url: str,
    seed: int,
    faults: str | None = None,
    contacts: int | None = None,
    unlimited: bool = False,
) -> tuple[Any, list[str]]:
    """An account of a few thousand contacts (or `contacts`) in address books, some suppressed, with
    activity, behind the faults of the spec `faults`, limited to the flat 2,000 calls an hour unless
    `unlimited`. Its clock starts now, so the adapter's cursors (local time) and the account's dates
    agree."""
    knobs = Knobs(api_endpoint=base_url, rate_scheme="none" if unlimited else "flat")
    state = DotdigitalState(knobs, seed=seed, started_at=datetime.now(UTC))
    if contacts != 0:
        generate(state, seed=seed, contacts=3000 if contacts is None else contacts, address_books=4)
    app = create_app(state, knobs=knobs, faults=Faults(seed=seed))
    apply_spec(app.state.control, faults)
    return app, [
        f"API user: {knobs.api_user}",
        f"password: {knobs.api_password}",
        f"{len(state.contacts)} contacts, {len(state.address_books)} address books, "
        f"{len(state.suppressions)} suppressed, {len(state.campaigns)} campaigns",
        *control_lines(base_url, app.state.control),
    ]
