"""Upserts and opt-outs through Mailchimp's batch subscribe: one outcome per op, answered at once.

Split from ``adapter.py`` because writing members is the adapter's one place that decides how a
contact's status may change, and that deserves to be read on its own:

- ``POST /lists/{id}`` takes 500 members a call and answers synchronously with the members it created,
  those it updated and a reason for each it refused, so an op's outcome is known at once (no job). A
  write is cut into calls of 500 that run concurrently (the client's connection slots bound them).
- An upsert sends ``status_if_new`` only: a new member gets the adapter's ``new_member_status``
  ("subscribed" by default: the CRM holds the person as opted in, else the engine would have planned an
  opt-out first), and an existing member's status is never touched, so no field update can subscribe
  someone who unsubscribed, was cleaned or is pending.
- A resubscribe the engine asks for (the rules allow it) is refused by default: Mailchimp lets no API
  call resubscribe a person who unsubscribed ("Member In Compliance State"). With ``resubscribe =
  "pending"`` the member is set pending, which makes Mailchimp email them a confirmation; a cleaned
  address is refused by Mailchimp either way.
- An opt-out sends ``status`` (and ``status_if_new``) "unsubscribed", so it sticks for an address
  Mailchimp has never seen too; a cleaned member stays cleaned, which is opted out as well.
- An archived member is left archived (``archived = "skip"``, the default: it is not billed and an admin
  put it away) and the upsert is refused saying so, or restored (``"restore"``) by the upsert itself.
  An opt-out is always written: it unarchives the member as unsubscribed, the one safe state for it.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from adapters.mailchimp import rows
from adapters.mailchimp.client import MAX_BATCH_MEMBERS, MailchimpClient, concurrently
from engine.consent import OPTED_OUT
from engine.contract import Outcome
from engine.plans import Op

NEVER_RESUBSCRIBED = (
    "Mailchimp lets no API call resubscribe someone who unsubscribed or was cleaned (Member In Compliance "
    'State); they can sign up again through a Mailchimp form, or set the adapter\'s resubscribe = "pending" '
    "to email them a confirmation"
)
ARCHIVED = (
    'archived in Mailchimp, and the adapter\'s archived = "skip" leaves archived contacts alone; set '
    '"restore" to bring them back, or unarchive the contact in Mailchimp'
)


async def upsert(
    api: MailchimpClient,
    list_id: str,
    ops: Sequence[Op],
    *,
    new_status: str,
    resubscribe: str,
    archived: Collection[str] = (),
) -> list[Outcome]:
    """``upsert_contact`` ops: merge fields written, status only for new members (and resubscribes)."""
    outcomes: list[Outcome | None] = [None] * len(ops)
    bodies: list[tuple[int, dict[str, Any]]] = []
    for index, op in enumerate(ops):
        opted = op.changes.get(OPTED_OUT)
        if not op.email:
            outcomes[index] = Outcome(False, "an upsert_contact op without an email")
        elif opted is not None and opted.new is not False:
            outcomes[index] = Outcome(False, "an opt-out is written by opt_out_esp, not by an upsert")
        elif opted is not None and resubscribe != "pending":
            outcomes[index] = Outcome(False, NEVER_RESUBSCRIBED)
        elif op.email.strip().lower() in archived:
            outcomes[index] = Outcome(False, ARCHIVED)
        else:
            body: dict[str, Any] = {"email_address": op.email, "status_if_new": new_status}
            if opted is not None:
                body["status"] = "pending"
            fields = {name: rows.merge_value(c.new) for name, c in op.changes.items() if name != OPTED_OUT}
            if fields:
                body["merge_fields"] = fields
            bodies.append((index, body))
    await _subscribe(api, list_id, bodies, outcomes, kept=None)
    return [outcome or Outcome(False, "not written") for outcome in outcomes]


async def opt_out(api: MailchimpClient, list_id: str, ops: Sequence[Op]) -> list[Outcome]:
    """``opt_out_esp`` ops: unsubscribed, created so when Mailchimp does not know the address."""
    outcomes: list[Outcome | None] = [None] * len(ops)
    bodies: list[tuple[int, dict[str, Any]]] = []
    for index, op in enumerate(ops):
        if not op.email:
            outcomes[index] = Outcome(False, "an opt-out without an email")
        else:
            body = {"email_address": op.email, "status": "unsubscribed", "status_if_new": "unsubscribed"}
            bodies.append((index, body))
    await _subscribe(api, list_id, bodies, outcomes, kept=rows.OPTED_OUT)
    return [outcome or Outcome(False, "not written") for outcome in outcomes]


async def _subscribe(
    api: MailchimpClient,
    list_id: str,
    bodies: Sequence[tuple[int, dict[str, Any]]],
    outcomes: list[Outcome | None],
    *,
    kept: frozenset[str] | None,
) -> None:
    """Send ``bodies`` in calls of 500 at once and fill ``outcomes``; with ``kept``, a member whose
    status did not end in it is a failure."""

    async def call(chunk: Sequence[tuple[int, dict[str, Any]]]) -> None:
        answer = await api.batch_subscribe(list_id, [body for _, body in chunk])
        done = {m.email_address.lower(): m.status for m in (*answer.new_members, *answer.updated_members)}
        refused = {e.email_address.lower(): e.error or e.error_code for e in answer.errors}
        for index, body in chunk:
            email = str(body["email_address"]).strip().lower()
            status = done.get(email)
            if email in refused:
                outcomes[index] = Outcome(False, refused[email] or "refused by Mailchimp")
            elif status is None:
                outcomes[index] = Outcome(False, "Mailchimp's answer does not mention the address")
            elif kept is not None and status not in kept:
                outcomes[index] = Outcome(False, f"Mailchimp left the member {status}")
            else:
                outcomes[index] = Outcome(True)

    await concurrently(
        call(bodies[s : s + MAX_BATCH_MEMBERS]) for s in range(0, len(bodies), MAX_BATCH_MEMBERS)
    )
