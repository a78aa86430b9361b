"""The Dotdigital emulator with generated data, for `listsync emulate dotdigital`.

The account is one that an earlier sync of `rules/workbooks-dotdigital.toml` filled from the CRM
`listsync emulate workbooks` serves with the same `--seed` and `--contacts`
(`adapters.demos.earlier_sync`), so that pointing those rules at both sandboxes carries its opt-outs,
bounces and activity back to CRM people.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from adapters.demos import REPO
from adapters.demos.earlier_sync import earlier_sync
from adapters.dotdigital.emulator import create_app
from adapters.dotdigital.emulator_data import generate
from adapters.dotdigital.emulator_state import DotdigitalState, Knobs
from adapters.emulation.faults import Faults
from adapters.emulation.layer import apply_spec, control_lines
from adapters.workbooks.sandbox import generated_crm

RULES = REPO / "rules" / "workbooks-dotdigital.toml"
CONTACTS = 3000
CRM_SHARE = 0.85  # of the account's contacts, the most that came from the CRM; the rest are its own


def sandbox(
    *,
    base_url: str,
    seed: int,
    faults: str | None = None,
    contacts: int | None = None,
    unlimited: bool = False,
) -> tuple[Any, list[str]]:
    """An account of 3,000 contacts (or `contacts`; 0: an empty account), most of them the Workbooks
    sandbox's people and leads (in address books named after its open campaigns, some suppressed
    here since) and the rest its own, with campaigns sent to those books and activity; behind the
    faults of the spec `faults`, limited to the flat 2,000 calls an hour unless `unlimited`. Its
    clock starts now, so the adapter's cursors (local time) and the account's dates agree."""
    knobs = Knobs(api_endpoint=base_url, rate_scheme="none" if unlimited else "flat")
    started = datetime.now(UTC)
    state = DotdigitalState(knobs, seed=seed, started_at=started)
    carried = 0
    if contacts != 0:
        total = CONTACTS if contacts is None else contacts
        crm = generated_crm(seed, contacts)
        synced = earlier_sync(RULES, crm, seed=seed, carried=round(total * CRM_SHARE))
        # Its history ends at midnight (UTC), so two sandboxes started the same day hold the same
        # account to the second: the same activity, at the same times, reaches both their CRMs.
        midnight = started.replace(hour=0, minute=0, second=0, microsecond=0)
        generate(state, seed=seed, contacts=total, address_books=2, campaigns=1, synced=synced, now=midnight)
        carried = len(synced.contacts)
    app = create_app(state, knobs=knobs, faults=Faults(seed=seed))
    apply_spec(app.state.control, faults)
    return app, [
        f"API user: {knobs.api_user}",
        f"password: {knobs.api_password}",
        f"{len(state.contacts)} contacts, {len(state.address_books)} address books, "
        f"{len(state.suppressions)} suppressed, {len(state.campaigns)} campaigns",
        f"{carried} contacts are people and leads of `listsync emulate workbooks --seed {seed}"
        + ("`" if contacts is None else f" --contacts {contacts}`")
        + f", synced by {RULES.name} before",
        *control_lines(base_url, app.state.control),
    ]
