"""The Constant Contact emulator with generated data, for `listsync emulate constant-contact`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters.constantcontact.emulator import create_app
from adapters.constantcontact.emulator_generate import generate
from adapters.constantcontact.emulator_state import ConstantContactState, Knobs

SCOPES = "contact_data campaign_data offline_access"


def sandbox(*, base_url: str, seed: int) -> tuple[Any, list[str]]:
    """An account of a few thousand contacts in a few lists, some opted out, with campaign activity,
    and a grant issued already so that calls can be made at once. Its clock starts now, so the
    adapter's cursors (local time) and the account's dates agree."""
    knobs = Knobs()
    state = ConstantContactState(knobs, seed=seed, started_at=datetime.now(UTC))
    generate(state, seed=seed, contacts=3000, lists=4)
    grant = state.grants.issue(SCOPES)
    unsubscribed = sum(1 for c in state.contacts.values() if c.permission == "unsubscribed")
    return create_app(state, knobs=knobs), [
        f"API base URL: {base_url}/v3; authorization server: {base_url}/oauth2/default/v1",
        f"client id: {knobs.client_id}",
        f"client secret: {knobs.client_secret}",
        f"access token: {grant['access_token']}",
        f"refresh token: {grant['refresh_token']}",
        f"{len(state.contacts)} contacts ({unsubscribed} unsubscribed), {len(state.lists)} lists, "
        f"{len(state.custom_fields)} custom fields, {len(state.campaigns)} campaigns",
    ]
