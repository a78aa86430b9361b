"""The Mailchimp emulator with generated data, for `listsync emulate mailchimp`."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters.emulation.faults import Faults
from adapters.emulation.layer import apply_spec, control_lines
from adapters.mailchimp.emulator import create_app
from adapters.mailchimp.emulator_seeding import generate
from adapters.mailchimp.emulator_state import MailchimpState


def sandbox(
    *,
    base_url: str,
    seed: int,
    faults: str | None = None,
    contacts: int | None = None,
    unlimited: bool = False,
) -> tuple[Any, list[str]]:
    """An audience of a few thousand members (or `contacts`) in a few tags, some unsubscribed, cleaned
        or archived, with campaign activity, behind the faults of the spec `faults`. With no contacts the
        audience is there, empty, with neither tags nor campaigns: the adapter needs one audience to sync
        into. Its clock starts now, so the adapter's cursors and the account's dates agree. Mailchimp limits
    connections, not calls, so `unlimited` changes nothing: the 10-connection cap stays."""
    state = MailchimpState(seed=seed, started_at=datetime.now(UTC))
    if contacts == 0:
        audience = generate(state, seed=seed, members=0, tags=0, campaigns=0)
    else:
        audience = generate(state, seed=seed, members=3000 if contacts is None else contacts)
    app = create_app(state, faults=Faults(seed=seed))
    apply_spec(app.state.control, faults)
    statuses = [m.status for m in audience.members.values()]
    tags = ", ".join(s.name for s in audience.segments.values()) or "none"
    return app, [
        f"API key: {state.knobs.api_key} (HTTP Basic, any user name; base URL {base_url}/3.0)",
        f"audience {audience.name!r}, id {audience.id}: {len(statuses)} members, "
        f"{statuses.count('unsubscribed')} unsubscribed, {statuses.count('cleaned')} cleaned, "
        f"{statuses.count('archived')} archived; tags: {tags}",
        f"{len(state.campaigns)} sent campaigns with activity",
        *control_lines(base_url, app.state.control),
    ]
