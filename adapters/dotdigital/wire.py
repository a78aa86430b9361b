"""The Dotdigital v2 API's bodies as typed msgspec Structs: what ``client.py`` decodes answers into.

They exist so the client hands the adapter typed values instead of dicts, and so a change in the vendor's
JSON fails loudly in one decode (with a path such as ``$[3].dataFields[0].key``) rather than as a
``KeyError`` deep in the adapter. Names follow the published OpenAPI document
(``shared/vendor-specs/dotdigital/dotdigital-v2-api-swagger.json``); fields are camelCase on the wire, so
the Structs use ``rename="camel"``. Unknown fields are ignored on purpose: vendors add fields, and an
extra field must never break a sync. Fields the vendor may leave out have defaults; only the ones a
record cannot mean anything without (ids, emails, statuses) are required. The bulk import's CSV files
(the upload and the fault report) are wire bodies too, so writing and reading them lives here.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping, Sequence
from datetime import datetime

import msgspec

# Largest CSV per import file: a choice, as the v2 reference publishes no number. 5 MB (about 50 000
# rows of a dozen fields) uploads well within v2's 121 s call timeout even on a slow link.
MAX_IMPORT_BYTES = 5 * 1024 * 1024
EMAIL_COLUMN = "Email"

# A data field's value as v2 sends it: String, Numeric, Date (an ISO string) or Boolean, or null.
FieldValue = str | int | float | bool | None


class ApiAccountProperty(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    name: str
    type: str = "String"
    value: str | None = None


class ApiAccountInfo(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    """``GET /v2/account-info``: the account id and named properties such as ``ApiEndpoint``."""

    id: int
    properties: list[ApiAccountProperty] = []

    def property_value(self, name: str) -> str | None:
        """The value of the property called ``name`` (case-insensitive), or None when absent."""
        wanted = name.lower()
        return next((p.value for p in self.properties if p.name.lower() == wanted), None)


class ApiAddressBook(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    """An address book, v2's name for a list."""

    id: int
    name: str
    visibility: str = "Private"
    contacts: int = 0


class ApiContactData(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    """One ``{"key": "FIRSTNAME", "value": "Jo"}`` pair of a contact's data fields."""

    key: str
    value: FieldValue = None


class ApiContact(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    """A contact; ``dataFields`` is null unless the call asked for ``withFullData``."""

    id: int
    email: str
    opt_in_type: str = "Unknown"
    email_type: str = "Html"
    data_fields: list[ApiContactData] | None = None
    status: str = "Subscribed"

    def fields(self) -> dict[str, FieldValue]:
        """The data fields as a dict keyed by field name (empty when they were not requested)."""
        return {pair.key: pair.value for pair in self.data_fields or ()}


class ApiContactSuppression(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    """A suppressed (or unsubscribed) contact, when it was removed and why (an ApiContactStatuses)."""

    suppressed_contact: ApiContact
    date_removed: datetime | None = None
    reason: str = "Suppressed"


class ApiContactIdAndEmail(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    id: int = 0
    email: str | None = None


class ApiBulkSuppressResponse(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    """``PUT /v2/contacts/suppress-contacts``: who was suppressed and who was not found."""

    suppressed: list[ApiContactIdAndEmail] = []
    not_found: list[ApiContactIdAndEmail] = []


class ApiResubscribeResult(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    """``POST /v2/contacts/resubscribe``: ContactAdded, ContactChallenged or ContactCannotBeUnsuppressed."""

    status: str
    contact: ApiContact | None = None


class ApiDataField(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    name: str
    type: str = "String"
    visibility: str = "Private"
    default_value: FieldValue = None


class ApiImport(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    """A bulk import's state: ``NotFinished`` until terminal (Finished, Failed, RejectedByWatchdog...)."""

    id: str
    status: str


class V3ImportAccepted(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    """``PUT /contacts/v3/import`` accepted the job."""

    import_id: str


class V3FailureReason(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    failure_code: str
    description: str = ""


class V3ImportFailure(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    """One contact a v3 import did not import, and why."""

    identifiers: dict[str, str] = {}
    failures: list[V3FailureReason] = []


class V3ImportStatus(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    """``GET /contacts/v3/import/{id}``: the state, and once Finished the failures inline."""

    import_id: str
    status: str
    summary: dict[str, int] = {}
    failures: list[V3ImportFailure] = []


class ApiBulkContactDeletion(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    """A bulk removal from an address book: Started, then Completed or Failed."""

    id: str
    status: str


class ApiImportReport(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    """``GET /v2/contacts/import/{id}/report``: what a finished import did, as counts.

    ``newContacts`` and ``updatedContacts`` count the rows imported; every other count names rows with
    a problem or a breakdown of them (``unsubscribed``, ``hardBounced``... of ``globallySuppressed``).
    """

    new_contacts: int = 0
    updated_contacts: int = 0
    globally_suppressed: int = 0
    invalid_entries: int = 0
    duplicate_emails: int = 0
    blocked: int = 0
    unsubscribed: int = 0
    hard_bounced: int = 0
    soft_bounced: int = 0
    isp_complaints: int = 0
    mail_blocked: int = 0
    domain_suppressed: int = 0
    pending_double_optin: int = 0
    failures: int = 0
    suppressed_contacts: int = 0

    def imported_all(self, rows: int) -> bool:
        """Whether the counts show each of ``rows`` rows imported without a problem: all of them new
        or updated, and every other count zero. Any other count, even one that may be harmless
        (``softBounced``), says the fault report has something to read."""
        counts = msgspec.structs.asdict(self)
        imported = counts.pop("new_contacts") + counts.pop("updated_contacts")
        return imported == rows and not any(counts.values())

    def summary(self) -> str:
        """The counts that are not zero, in the vendor's words: ``newContacts 3, invalidEntries 1``."""
        named = [(f.encode_name, getattr(self, f.name)) for f in msgspec.structs.fields(self)]
        return ", ".join(f"{name} {count:,}" for name, count in named if count) or "no rows"


class ApiCampaign(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    id: int
    name: str = ""
    subject: str = ""
    from_name: str = ""
    status: str = ""


class ApiCampaignContactSummary(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    """One recipient's activity on one campaign; v2's only per-campaign bounce and opt-out source."""

    contact_id: int
    email: str
    num_opens: int = 0
    num_page_views: int = 0
    num_clicks: int = 0
    num_forwards: int = 0
    num_estimated_forwards: int = 0
    num_replies: int = 0
    date_sent: datetime | None = None
    date_first_opened: datetime | None = None
    date_last_opened: datetime | None = None
    first_open_ip: str = ""
    unsubscribed: bool = False
    soft_bounced: bool = False
    hard_bounced: bool = False


class ApiCampaignOpen(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    contact_id: int
    email: str
    mail_client: str = ""
    ip_address: str = ""
    user_agent: str = ""
    is_html: bool = True
    is_forward: bool = False
    date_opened: datetime | None = None


class ApiCampaignClick(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    contact_id: int
    email: str
    url: str = ""
    ip_address: str = ""
    user_agent: str = ""
    date_clicked: datetime | None = None
    keyword: str = ""


class ApiCampaignSummary(msgspec.Struct, rename="camel", frozen=True, kw_only=True):
    """A sent campaign's totals (the main counters; the many percentages are left to the vendor's UI).

    v2 counts each twice over: ``numX`` is the HTML version's, ``numTextX`` the plain-text version's, and
    ``numTotalX`` both together (Dotdigital's own SDK documents them so).
    """

    date_sent: datetime | None = None
    num_sent: int = 0
    num_delivered: int = 0
    num_opens: int = 0
    num_unique_opens: int = 0
    num_clicks: int = 0
    num_recipients_clicked: int = 0
    num_hard_bounces: int = 0
    num_soft_bounces: int = 0
    num_unsubscribes: int = 0
    num_isp_complaints: int = 0
    num_total_sent: int = 0
    num_total_opens: int = 0
    num_total_clicks: int = 0
    num_total_hard_bounces: int = 0
    num_total_soft_bounces: int = 0
    num_total_unsubscribes: int = 0


# -- the bulk import's CSV files -----------------------------------------------------------------------------
def import_csv(rows: Sequence[Mapping[str, str]], columns: Sequence[str]) -> bytes:
    """The CSV of an import: ``Email`` first, then ``columns`` (data-field names); UTF-8, CRLF."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([EMAIL_COLUMN, *columns])
    writer.writerows([row[EMAIL_COLUMN], *(row.get(c, "") for c in columns)] for row in rows)
    return out.getvalue().encode("utf-8")


def split_for_import(
    rows: Sequence[Mapping[str, str]], columns: Sequence[str], *, max_bytes: int = MAX_IMPORT_BYTES
) -> list[list[Mapping[str, str]]]:
    """Cut ``rows`` into runs whose import file stays within ``max_bytes`` (a row too big alone is
    still a run of its own, which ``import_contacts`` then refuses)."""
    header = len(import_csv((), columns))
    runs: list[list[Mapping[str, str]]] = []
    size = header
    for row in rows:
        line = len(import_csv((row,), columns)) - header
        if not runs or size + line > max_bytes:
            runs.append([])
            size = header
        runs[-1].append(row)
        size += line
    return runs


def read_faults(payload: bytes) -> list[dict[str, str]]:
    """The rows of an import's fault report (``Reason``, ``email``, data fields...), whatever media type
    it came as; an empty payload has none. Raises UnicodeDecodeError or csv.Error when the payload is
    not UTF-8 CSV, and ValueError when its header has no email column (an error page, say, which
    must not read as "no faults")."""
    text = payload.decode("utf-8-sig")
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = reader.fieldnames or []
    if header and not any(name.strip().lower() == "email" for name in header):
        raise ValueError(f"no email column in the header {','.join(header)[:80]!r}")
    return [dict(row) for row in reader]
