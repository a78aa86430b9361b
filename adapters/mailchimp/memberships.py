"""List membership in Mailchimp: a tag per engine list, written as tags through /batches or as a static
segment's members, by the adapter's ``membership`` setting.

Mailchimp keeps tags as static segments, so both ways land in the same place (a member's ``tags``, which
the snapshot reads); they differ in how they are written:

- ``"tag"`` (the default): one ``POST /lists/{id}/members/{hash}/tags`` per op, all of a write in one
  batch operation (``/batches``). The write answers ``Outcome(job="batch:<id>")`` for each op and ``poll``
  follows the batch to ``finished``, then reads its results archive and gives each op its own
  operation's outcome (``operation_id`` is the op's index in the job). Tagging an address the audience
  does not have answers 404 and the op is refused; untagging it is done (it holds no tag).
- ``"segment"``: ``POST /lists/{id}/segments/{id}`` with up to 500 addresses to add or remove per call,
  answered at once. Mailchimp ignores addresses the audience does not have, so an added address that
  comes back neither added nor refused is refused here as "not in the audience".
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence

from adapters.mailchimp import wire
from adapters.mailchimp.client import MAX_BATCH_MEMBERS, MailchimpClient, concurrently
from adapters.mailchimp.errors import describe, problem_of
from engine.contract import JobStatus, Outcome
from engine.plans import Op, OpKind

BATCH = "batch:"
NOT_IN_AUDIENCE = "the address is not in the Mailchimp audience (upsert the contact first)"


def refused(kind: OpKind, op: Op) -> Outcome | None:
    """The outcome of an op that cannot be written as asked, or None."""
    return None if op.email and op.list else Outcome(False, f"a {kind} op needs an email and a list")


async def tag_through_batch(
    api: MailchimpClient, list_id: str, kind: OpKind, ops: Sequence[Op]
) -> list[Outcome]:
    """All ops of a write as one batch of tag calls; each submitted op answers the batch as its job."""
    outcomes: list[Outcome | None] = [refused(kind, op) for op in ops]
    status = "active" if kind == "add_member" else "inactive"
    operations = [
        {
            "method": "POST",
            "path": f"/lists/{list_id}/members/{wire.subscriber_hash(str(op.email))}/tags",
            "body": json.dumps({"tags": [{"name": op.list, "status": status}]}),
            "operation_id": str(number),
        }
        for number, op in enumerate(op for op, outcome in zip(ops, outcomes, strict=True) if outcome is None)
    ]
    if operations:
        job = Outcome(True, job=BATCH + (await api.start_batch(operations)).id)
        outcomes = [outcome or job for outcome in outcomes]
    return [outcome or Outcome(False, "not written") for outcome in outcomes]


async def poll_batch(api: MailchimpClient, job: str, ops: Sequence[Op]) -> JobStatus:
    """A tag batch's state; once finished, one outcome per op from its operation's result."""
    batch = await api.batch(job.removeprefix(BATCH))
    if batch.status != "finished":
        return JobStatus(batch.status, False)
    results = {r.operation_id: r for r in await api.batch_results(batch.response_body_url)}
    outcomes = []
    for number, op in enumerate(ops):
        result = results.get(str(number))
        if result is None:
            outcomes.append(Outcome(False, "the batch's results hold no answer for this op"))
        elif 200 <= result.status_code < 300 or (result.status_code == 404 and op.kind == "remove_member"):
            outcomes.append(Outcome(True))
        elif result.status_code == 404:
            outcomes.append(Outcome(False, NOT_IN_AUDIENCE))
        else:
            said = describe(problem_of(result.response)) or result.response[:200]
            outcomes.append(Outcome(False, f"{result.status_code}: {said}"))
    failed = f"{batch.errored_operations} of {batch.total_operations} operations failed"
    return JobStatus(batch.status, True, tuple(outcomes), detail=failed if batch.errored_operations else None)


async def through_segments(
    api: MailchimpClient,
    list_id: str,
    kind: OpKind,
    ops: Sequence[Op],
    segment_id: Callable[[str], Awaitable[int | None]],
) -> list[Outcome]:
    """Ops grouped by list, written as a static segment's members, 500 addresses a call, at once."""
    adding = kind == "add_member"
    outcomes: list[Outcome | None] = [refused(kind, op) for op in ops]
    groups: dict[str, list[int]] = {}
    for index, op in enumerate(ops):
        if outcomes[index] is None:
            groups.setdefault(str(op.list), []).append(index)
    calls = []
    for name, indexes in groups.items():
        segment = await segment_id(name)
        if segment is None:  # no such tag: nobody can be removed from it, nobody added to it
            missing = (
                Outcome(False, f"no tag named {name!r} (create_list first)") if adding else Outcome(True)
            )
            for index in indexes:
                outcomes[index] = missing
            continue
        for start in range(0, len(indexes), MAX_BATCH_MEMBERS):
            calls.append((segment, indexes[start : start + MAX_BATCH_MEMBERS]))

    async def call(segment: int, indexes: list[int]) -> None:
        emails = [str(ops[i].email) for i in indexes]
        answer = await api.update_segment(list_id, segment, **{"add" if adding else "remove": emails})
        done = {m.email_address.lower() for m in (answer.members_added if adding else answer.members_removed)}
        errors = {e.lower(): error.error for error in answer.errors for e in error.email_addresses}
        for index, email in zip(indexes, emails, strict=True):
            key = email.strip().lower()
            if key in errors:
                outcomes[index] = Outcome(False, errors[key] or "refused by Mailchimp")
            else:
                outcomes[index] = (
                    Outcome(True) if key in done or not adding else Outcome(False, NOT_IN_AUDIENCE)
                )

    await concurrently(call(segment, indexes) for segment, indexes in calls)
    return [outcome or Outcome(False, "not written") for outcome in outcomes]
