"""The Dotdigital emulator with generated data, for `listsync emulate dotdigital`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters.dotdigital.emulator import create_app
from adapters.dotdigital.emulator_data import generate
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs


def sandbox(*, base_url: str, seed: int) -> tuple[Any, list[str]]:
    """An account of a few thousand contacts in address books, some suppressed, with activity.
    Its clock starts now, so the adapter's cursors (local time) and the account's dates agree."""
    knobs = Knobs(api_endpoint=base_url)
    state = DotdigitalState(knobs, seed=seed, started_at=datetime.now(UTC))
    generate(state, seed=seed, contacts=3000, address_books=4)
    return create_app(state, knobs=knobs), [
        f"API user: {knobs.api_user}",
        f"password: {knobs.api_password}",
        f"{len(state.contacts)} contacts, {len(state.address_books)} address books, "
        f"{len(state.suppressions)} suppressed, {len(state.campaigns)} campaigns",
    ]
