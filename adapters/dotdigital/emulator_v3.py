"""The one Contacts API v3 call pair the emulator serves: ``PUT /contacts/v3/import`` and its status.

listsync uses v3 for a single job v2 cannot do in bulk: creating contacts that are unsubscribed from
the start (``channelProperties.email.status``), so a CRM opt-out of someone Dotdigital has never seen
costs one import instead of one ``POST /v2/contacts/unsubscribe`` each. The shapes follow
``shared/vendor-specs/dotdigital/dotdigital-contacts-service.json``: the body ``v3_import_body``, the
answer ``{"importId"}``, the status ``inline_response_200_2`` with its failures inline, and v3's error
body ``{"errorCode", "description"}``. Like v2 imports, a v3 import applies its contacts only when a
poll finds it finished, and v2 and v3 imports share the account's limit of active imports.

Failure codes the document names are used as named (``invalidEmail``, ``duplicateIdentifier``); the
others (``invalidIdentifier``, ``invalidDataField``, ``contactSuppressed``) are this emulator's choice.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from adapters.dotdigital.emulator_data import SUPPRESSED, valid_email
from adapters.dotdigital.emulator_state import ApiError
from adapters.dotdigital.emulator_wire import ok, read_json

if TYPE_CHECKING:
    from adapters.dotdigital.emulator_state import DotdigitalState

EMAIL_STATUSES = frozenset({"subscribed", "unsubscribed", "suppressed"})


@dataclass
class ContactsImportV3:
    id: str
    contacts: list[Any]
    polls_needed: int
    outcome: str
    stalled: bool
    polls: int = 0
    status: str = "NotFinished"
    summary: dict[str, int] = field(default_factory=dict)
    created: list[dict[str, Any]] = field(default_factory=list)
    updated: list[dict[str, Any]] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)


def _refuse(status: int, code: str, description: str) -> ApiError:
    return ApiError(status, description, v3_code=code)


async def submit(state: DotdigitalState, request: Request) -> Response:
    body = await read_json(request)
    contacts = body.get("contacts") if isinstance(body, dict) else None
    if not isinstance(contacts, list) or not contacts:
        raise _refuse(400, "contacts:badJson", "The request JSON is badly formed")
    if body.get("mergeOption", "overwrite") not in ("overwrite", "overwriteIfNotEmpty", "overwriteIfEmpty"):
        raise _refuse(400, "contacts:badJson", "mergeOption is not one of the allowed values")
    if state.active_imports() >= state.knobs.max_active_imports:
        raise _refuse(
            429,
            "contacts:tooManyActiveImports",
            "Your import request cannot be accepted as too many imports are being processed for you "
            "account. Please wait for an import to complete and then resubmit.",
        )
    outcome, stalled = state.import_fate()
    job = ContactsImportV3(
        str(uuid.UUID(int=state.rng.getrandbits(128), version=4)),
        contacts,
        state.knobs.import_polls,
        outcome if outcome != "InvalidFileFormat" else "Failed",
        stalled,
    )
    state.v3_imports[job.id] = job
    return ok({"importId": job.id}, 202)


async def status(state: DotdigitalState, request: Request) -> Response:
    job = state.v3_imports.get(request.path_params["id"].lower())
    if job is None:
        raise _refuse(
            404,
            "contacts:importNotFound",
            f"The import request '{request.path_params['id']}' could not be found!",
        )
    job.polls += 1
    if job.status == "NotFinished" and not job.stalled and job.polls > job.polls_needed:
        _apply(state, job)
    answer: dict[str, Any] = {"importId": job.id, "status": job.status}
    if job.status == "Finished":
        answer |= {"summary": job.summary, "created": job.created, "updated": job.updated}
        answer["failures"] = job.failures
    return ok(answer)


def _apply(state: DotdigitalState, job: ContactsImportV3) -> None:
    if job.outcome != "Finished":
        job.status = job.outcome
        return
    limit = state.knobs.contact_limit
    if limit is not None and len(state.contacts) + len(job.contacts) > limit:
        job.status = "ExceedsAllowedContactLimit"
        return
    job.summary = dict.fromkeys(
        ("newContacts", "updatedContacts", "globallySuppressed", "invalidEntries", "duplicateIdentifiers"), 0
    )
    seen: set[str] = set()
    for entry in job.contacts:
        item: dict[str, Any] = entry if isinstance(entry, dict) else {}
        failure = _import_one(state, job, item, seen)
        if failure is not None:
            code, description = failure
            identifiers = item.get("identifiers")
            job.failures.append(
                {
                    "matchIdentifier": str(item.get("matchIdentifier") or "email")[:50],
                    "identifiers": identifiers if isinstance(identifiers, dict) else {},
                    "failures": [{"failureCode": code, "description": description}],
                }
            )
    job.status = "Finished"


def _import_one(
    state: DotdigitalState, job: ContactsImportV3, item: dict[str, Any], seen: set[str]
) -> tuple[str, str] | None:
    """Create or update one contact; the failure (code, description) when it was not imported."""
    summary = job.summary
    identifiers = item.get("identifiers")
    email = identifiers.get("email") if isinstance(identifiers, dict) else None
    if item.get("matchIdentifier") != "email":
        summary["invalidEntries"] += 1
        return "invalidIdentifier", "This emulator matches contacts by email only"
    if not isinstance(email, str) or not valid_email(email.strip()):
        summary["invalidEntries"] += 1
        return "invalidEmail", f"Invalid value for 'email': {email!r}"
    if email.lower() in seen:
        summary["duplicateIdentifiers"] += 1
        return "duplicateIdentifier", f"Duplicate identifier detected for email '{email}'"
    seen.add(email.lower())
    channels = item.get("channelProperties")
    channel = channels.get("email") if isinstance(channels, dict) else None
    wanted = channel.get("status") if isinstance(channel, dict) else None
    if wanted is not None and wanted not in EMAIL_STATUSES:
        summary["invalidEntries"] += 1
        return "invalidChannelStatus", f"Invalid email channel status {wanted!r}"
    existing = state.contact_by_email(email)
    if existing is not None and existing.status in SUPPRESSED and wanted in (None, "subscribed"):
        summary["globallySuppressed"] += 1
        return "contactSuppressed", "The contact is suppressed at the account level"
    data = item.get("dataFields") or {}
    try:
        values = state.typed_fields(data.items() if isinstance(data, dict) else [("", None)])
    except ApiError:
        summary["invalidEntries"] += 1
        return "invalidDataField", "A data field does not exist or its value has the wrong type"
    contact = existing or state.add_contact(email)
    contact.data.update(values)
    contact.modified = state.now()
    if wanted == "unsubscribed":
        state.suppress(contact, "Unsubscribed")
    elif wanted == "suppressed":
        state.suppress(contact, "Suppressed")
    summary["updatedContacts" if existing else "newContacts"] += 1
    reference = {"contactId": contact.id, "identifiers": {"email": contact.email}}
    (job.updated if existing else job.created).append(reference)
    return None


ROUTES = [
    ("PUT", "/contacts/v3/import", submit),
    ("GET", "/contacts/v3/import/{id}", status),
]
