"""The Mailchimp emulator with generated data, for `listsync emulate mailchimp`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters.mailchimp.emulator import create_app
from adapters.mailchimp.emulator_seeding import generate
from adapters.mailchimp.emulator_state import MailchimpState


def sandbox(*, base_url: str, seed: int) -> tuple[Any, list[str]]:
    """An audience of a few thousand members in a few tags, some unsubscribed, cleaned or archived,
    with campaign activity. Its clock starts now, so the adapter's cursors and the account's dates agree."""
    state = MailchimpState(seed=seed, started_at=datetime.now(UTC))
    audience = generate(state, seed=seed, members=3000)
    statuses = [m.status for m in audience.members.values()]
    tags = ", ".join(s.name for s in audience.segments.values())
    return create_app(state), [
        f"API key: {state.knobs.api_key} (HTTP Basic, any user name; base URL {base_url}/3.0)",
        f"audience {audience.name!r}, id {audience.id}: {len(statuses)} members, "
        f"{statuses.count('unsubscribed')} unsubscribed, {statuses.count('cleaned')} cleaned, "
        f"{statuses.count('archived')} archived; tags: {tags}",
        f"{len(state.campaigns)} sent campaigns with activity",
    ]
