"""Applying a finished Dotdigital bulk import to the emulator's account: CSV rows, report and faults.

Split from ``emulator_state.py`` because applying an import is a job of its own: parse the uploaded CSV,
pick the terminal status (``InvalidFileFormat``, ``ExceedsAllowedContactLimit`` or a forced outcome),
apply the good rows (create or update contacts, coerce data fields, join the address book), count the
v2 import report (``ApiContactImportReport``) and record one fault row per rejected or partial row for
``GET /v2/contacts/import/{id}/report-faults``. ``DotdigitalState.poll_import`` calls it.

The report and the faults agree: each fault row is counted once among ``invalidEntries``,
``duplicateEmails``, ``globallySuppressed`` (with its reason's breakdown: ``unsubscribed``,
``hardBounced``..., else ``blocked``) and ``failures``, and each other row as ``newContacts`` or
``updatedContacts``. A row imported without its cells under columns that are not data fields is both:
imported (new or updated) and, for its ``UnknownDataField`` fault row, an invalid entry. So a report
whose counts are all new or updated rows has an empty fault report.

One fault is counted otherwise: a row for an address book its contact unsubscribed from alone
(``emulator_book_unsubscribes.py``) is a fault ``Unsubscribed`` counted as ``unsubscribed`` only, since
the contact is not suppressed account-wide; nothing of that row is applied.

``ExceedsAllowedContactLimit``: the import would take the account past ``Knobs.contact_limit`` with the
valid addresses it does not hold yet; nothing of it is applied.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from adapters.dotdigital.emulator_book_unsubscribes import unsubscribed_from
from adapters.dotdigital.emulator_data import (
    REPORT_KEY_BY_REASON,
    REPORT_KEYS,
    SUPPRESSED,
    ContactImport,
    DataField,
    coerce,
    read_csv,
    valid_email,
)

if TYPE_CHECKING:
    from adapters.dotdigital.emulator_state import DotdigitalState


def apply_import(state: DotdigitalState, job: ContactImport) -> None:
    """Finish an import: parse its file, apply the good rows, count and record the faults."""
    parsed = read_csv(job.file)
    if job.outcome != "Finished" or parsed is None:
        job.status = job.outcome if job.outcome != "Finished" else "InvalidFileFormat"
        return
    header, rows = parsed
    at = [h.lower() for h in header].index("email")
    limit = state.knobs.contact_limit
    if limit is not None and len(state.contacts) + _new_addresses(state, rows, at) > limit:
        job.status = "ExceedsAllowedContactLimit"
        return
    columns = {i: state.data_fields.get(h.upper()) for i, h in enumerate(header) if i != at}
    report = dict.fromkeys(REPORT_KEYS, 0)
    job.faults = [["Reason", "email", *(h for i, h in enumerate(header) if i != at)]]
    seen: set[str] = set()
    for row in rows:
        email = row[at].strip()
        reason = _import_row(state, job, email, row, columns, seen, report)
        if reason:
            job.faults.append([reason, email, *(v for i, v in enumerate(row) if i != at)])
    job.report, job.status = report, "Finished"


def _import_row(
    state: DotdigitalState,
    job: ContactImport,
    email: str,
    row: list[str],
    columns: Mapping[int, DataField | None],
    seen: set[str],
    report: dict[str, int],
) -> str | None:
    """Apply one import row; return the fault reason when the row (or part of it) was not imported."""
    if not valid_email(email):
        report["invalidEntries"] += 1
        return "InvalidEmail"
    if email.lower() in seen:
        report["duplicateEmails"] += 1
        return "Duplicate"
    seen.add(email.lower())
    existing = state.contact_by_email(email)
    if existing is not None and existing.status in SUPPRESSED:
        report["globallySuppressed"] += 1
        report[REPORT_KEY_BY_REASON.get(existing.status, "blocked")] += 1
        return existing.status
    if unsubscribed_from(state, job.book_id, existing):  # the book's own unsubscribe: kept out of it
        report["unsubscribed"] += 1
        return "Unsubscribed"
    if state.rng.random() < state.knobs.row_fault_share:
        report["failures"] += 1
        return "Failed"
    try:
        values = {
            f.name: coerce(f.type, row[i]) for i, f in columns.items() if f is not None and row[i] != ""
        }
    except ValueError:
        report["invalidEntries"] += 1
        return "InvalidDataFieldValue"
    contact = existing or state.add_contact(email)
    report["updatedContacts" if existing else "newContacts"] += 1
    contact.data.update(values)
    contact.modified = state.now()
    if job.book_id is not None and job.book_id in state.address_books:
        state.add_member(job.book_id, contact)
    # The row is imported, but values under columns that are not data fields are dropped.
    if any(f is None and row[i].strip() for i, f in columns.items()):
        report["invalidEntries"] += 1
        return "UnknownDataField"
    return None


def _new_addresses(state: DotdigitalState, rows: list[list[str]], at: int) -> int:
    """How many contacts the rows would add: valid addresses, each once, that the account lacks."""
    emails = {row[at].strip().lower() for row in rows if valid_email(row[at].strip())}
    return sum(1 for email in emails if state.contact_by_email(email) is None)
