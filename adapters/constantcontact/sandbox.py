"""The Constant Contact emulator with generated data, for `listsync emulate constant-contact`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters.constantcontact.emulator import create_app
from adapters.constantcontact.emulator_generate import generate
from adapters.constantcontact.emulator_state import ConstantContactState, Knobs
from adapters.emulation.faults import Faults
from adapters.emulation.layer import apply_spec, control_lines

SCOPES = "contact_data campaign_data offline_access"


def sandbox(
    *,
    base_url: str,
    seed: int,
    faults: str | None = None,
    contacts: int | None = None,
    unlimited: bool = False,
) -> tuple[Any, list[str]]:
    """An account of a few thousand contacts (or `contacts`; 0 for an empty account, without lists or
    custom fields) in a few lists, some opted out, with campaign activity, behind the faults of the
    spec `faults`; and a grant issued already so that calls can be made at once. Its clock starts
    now, so the adapter's cursors (local time) and the account's dates agree."""
    knobs = Knobs(rate_limited=not unlimited)
    state = ConstantContactState(knobs, seed=seed, started_at=datetime.now(UTC))
    if contacts != 0:
        generate(state, seed=seed, contacts=3000 if contacts is None else contacts, lists=4)
    grant = state.grants.issue(SCOPES)
    app = create_app(state, knobs=knobs, faults=Faults(seed=seed))
    apply_spec(app.state.control, faults)
    unsubscribed = sum(1 for c in state.contacts.values() if c.permission == "unsubscribed")
    return app, [
        f"API base URL: {base_url}/v3; authorization server: {base_url}/oauth2/default/v1",
        f"client id: {knobs.client_id}",
        f"client secret: {knobs.client_secret}",
        f"access token: {grant['access_token']}",
        f"refresh token: {grant['refresh_token']}",
        f"{len(state.contacts)} contacts ({unsubscribed} unsubscribed), {len(state.lists)} lists, "
        f"{len(state.custom_fields)} custom fields, {len(state.campaigns)} campaigns",
        *control_lines(base_url, app.state.control),
    ]
