"""A thin typed client for the Dotdigital v2 API: endpoints, HTTP Basic auth, ``select``/``skip`` paging.

It exists so the Dotdigital adapter speaks in methods and wire Structs (``wire.py``) instead of URLs and
dicts, and so every answer the vendor can give is turned into the engine's error tree in exactly one
place, ``raise_for``. The client takes an injected ``httpx.AsyncClient`` that carries the base URL and
the transport (the emulator through ``httpx.ASGITransport`` in tests, the network in production). It
never sleeps and never repeats a change: it raises ``TransientError`` (with ``retry_after`` when it can
tell) and the engine decides when to call again. Only reads (GETs) are repeated here, and only with
``retry_reads`` (the adapter asks for it): each page of a list call on its own, so a snapshot of
hundreds of pages survives a failed one. Bulk imports are CSV files sent one per call (see
``wire.split_for_import``); the ``Import*`` polling is the caller's, at the caller's pace.

Every list is paged by ``select``/``skip`` (v2 has no seek paging, and its documents name no order and
no sort parameter), so each page overlaps the one before and a page that does not follow it starts
the read over (``adapters.offset_paging``): a record removed, suppressed or edited during a read can
no longer hide another one at a page boundary.

How each answer maps to an error, and the waits it carries, live in ``errors.py``; its names are
re-exported here so callers keep importing them from the client.
"""

from __future__ import annotations

import csv
from collections.abc import AsyncIterator, Callable, Hashable, Mapping, Sequence
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any, TypeVar

import httpx

from adapters.common import call_name, decode_answer, idempotent
from adapters.dotdigital import wire
from adapters.dotdigital.errors import (
    ACTIVE_IMPORTS_WAIT,
    FLAT_CAP_WAIT,
    MAX_WAIT,
    RECORD_CODES,
    DotdigitalBusy,
    DotdigitalError,
    raise_for,
)
from adapters.offset_paging import read_in_turn
from engine.errors import PermanentError, TransientError

T = TypeVar("T")

PAGE_SIZE = 1000  # v2's largest ``select``
# Since-dates: anything before the vendor existed, so "modified since" means "all contacts".
BEGINNING = datetime(2000, 1, 1, tzinfo=UTC)


def _user_agent() -> str:
    try:
        return f"listsync/{version('listsync')}"
    except PackageNotFoundError:
        return "listsync/0+unknown"


USER_AGENT = _user_agent()


def _decode(response: httpx.Response, type_: type[T]) -> T:
    return decode_answer("Dotdigital", response, type_)


def _since(when: datetime) -> str:
    """A path date in UTC, truncated to the second so a window never starts after ``when``."""
    moment = when if when.tzinfo else when.replace(tzinfo=UTC)
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class DotdigitalClient:
    """The Dotdigital v2 endpoints listsync uses, one method each; list calls page lazily."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        user: str,
        password: str,
        page_size: int = PAGE_SIZE,
        retry_reads: bool = False,
    ) -> None:
        if not 3 <= page_size <= PAGE_SIZE:  # pages overlap by at least two records
            raise ValueError(f"page_size must be 3 to {PAGE_SIZE}, not {page_size}")
        self._http = http
        self._auth = httpx.BasicAuth(user, password)
        self._password = password
        self._retry_reads = retry_reads
        self._page_size = page_size

    def __repr__(self) -> str:  # never show the password
        return f"DotdigitalClient({self._http.base_url!s})"

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = await self._http.request(
                method, path, auth=self._auth, headers={"User-Agent": USER_AGENT}, **kwargs
            )
        except (httpx.UnsupportedProtocol, httpx.TooManyRedirects, httpx.InvalidURL) as wrong:
            raise PermanentError(
                f"Dotdigital {method} {path} cannot be reached at {self._http.base_url} "
                f"({type(wrong).__name__}); check the account's API URL (discover_endpoint() gives it)."
            ) from None
        except httpx.RequestError as lost:  # connection, timeout, protocol, garbled content-encoding
            text = str(lost).replace(self._password, "***") if self._password else str(lost)
            raise TransientError(
                f"Dotdigital {method} {path} failed in transit ({type(lost).__name__}: {text})"
            ) from None
        raise_for(response, redact=(self._password,))
        return response

    async def _json(self, type_: type[T], method: str, path: str, **kwargs: Any) -> T:
        async def answer() -> T:
            return _decode(await self._call(method, path, **kwargs), type_)

        return await idempotent(answer, retry=self._retry_reads and method == "GET")

    def _paged(
        self, path: str, type_: type[list[T]], key: Callable[[T], Hashable], **params: Any
    ) -> AsyncIterator[T]:
        """Every item of a ``select``/``skip`` list, page by page, each page overlapping the one before
        (``adapters.offset_paging``: v2 names no order, so a record that leaves the list or moves to its
        end during the read would otherwise hide the one at the next page boundary). ``key`` names an
        item; one that moved may come twice, and callers keep one per key."""

        async def page(skip: int, select: int) -> list[T]:
            query = {**params, "select": select, "skip": skip}
            return await self._json(type_, "GET", path, params=query)

        return read_in_turn(page, key, page_size=self._page_size, what=f"Dotdigital GET {path}")

    # -- account ------------------------------------------------------------------------------------
    async def discover_endpoint(self) -> str:
        """The account's regional base URL (``ApiEndpoint``); rebase the AsyncClient on it."""
        info = await self._json(wire.ApiAccountInfo, "GET", "/v2/account-info")
        endpoint = info.property_value("ApiEndpoint")
        if not endpoint or not endpoint.startswith(("https://", "http://")):
            raise PermanentError(
                f"Dotdigital's answer to GET /v2/account-info names no usable ApiEndpoint for account "
                f"{info.id} ({endpoint!r}); set the account's API URL by hand."
            )
        return endpoint.rstrip("/")

    # -- address books ------------------------------------------------------------------------------
    def address_books(self) -> AsyncIterator[wire.ApiAddressBook]:
        return self._paged("/v2/address-books", list[wire.ApiAddressBook], _id)

    async def create_address_book(self, name: str, *, visibility: str = "Private") -> wire.ApiAddressBook:
        """A new address book; a taken or reserved name raises ERROR_ADDRESSBOOK_DUPLICATE."""
        body = {"name": name, "visibility": visibility}
        return await self._json(wire.ApiAddressBook, "POST", "/v2/address-books", json=body)

    def address_book_members(
        self, book_id: int, *, with_full_data: bool = True
    ) -> AsyncIterator[wire.ApiContact]:
        path = f"/v2/address-books/{book_id}/contacts"
        return self._paged(path, list[wire.ApiContact], _id, withFullData=with_full_data)

    def address_book_unsubscribed_since(
        self, book_id: int, when: datetime
    ) -> AsyncIterator[wire.ApiContactSuppression]:
        """Contacts who unsubscribed from this book alone (a list's own unsubscribe link) since ``when``;
        they may still be subscribed account-wide."""
        path = f"/v2/address-books/{book_id}/contacts/unsubscribed-since/{_since(when)}"
        return self._paged(path, list[wire.ApiContactSuppression], _suppressed_id)

    async def remove_from_address_book(self, book_id: int, contact_ids: Sequence[int]) -> str:
        """Start a bulk removal of contacts from a book (they stay in the account); returns its job id."""
        path = f"/v2/address-books/{book_id}/contacts/delete"
        return (await self._json(wire.ApiBulkContactDeletion, "POST", path, json=list(contact_ids))).id

    async def deletion_status(self, job_id: str) -> str:
        """``Started``, then ``Completed`` or ``Failed``."""
        path = f"/v2/contacts/deletion/{job_id}"
        return (await self._json(wire.ApiBulkContactDeletion, "GET", path)).status

    # -- contacts -----------------------------------------------------------------------------------
    def contacts(self, *, with_full_data: bool = True) -> AsyncIterator[wire.ApiContact]:
        """Every contact in the account, suppressed ones included (with their status).

        Read as "modified since 2000": the spec's ``GET /v2/contacts`` is not in the emulator, and the
        modified-since list carries the same ApiContact with data fields and status.
        """
        return self.contacts_modified_since(BEGINNING, with_full_data=with_full_data)

    def contacts_modified_since(
        self, when: datetime, *, with_full_data: bool = True
    ) -> AsyncIterator[wire.ApiContact]:
        path = f"/v2/contacts/modified-since/{_since(when)}"
        return self._paged(path, list[wire.ApiContact], _id, withFullData=with_full_data)

    def suppressed_since(self, when: datetime) -> AsyncIterator[wire.ApiContactSuppression]:
        """Account-wide suppressions (unsubscribes, bounces, complaints...) since ``when``."""
        path = f"/v2/contacts/suppressed-since/{_since(when)}"
        return self._paged(path, list[wire.ApiContactSuppression], _suppressed_id)

    async def suppress(self, emails: Sequence[str]) -> tuple[list[str], list[str]]:
        """Suppress contacts account-wide; returns (suppressed emails, emails not found)."""
        body = [{"email": e} for e in emails]
        path = "/v2/contacts/suppress-contacts"
        answer = await self._json(wire.ApiBulkSuppressResponse, "PUT", path, json=body)
        return [c.email or "" for c in answer.suppressed], [c.email or "" for c in answer.not_found]

    async def unsubscribe(self, email: str) -> wire.ApiContactSuppression:
        """Unsubscribe ``email`` account-wide (created as unsubscribed when unknown)."""
        body = {"email": email}
        return await self._json(wire.ApiContactSuppression, "POST", "/v2/contacts/unsubscribe", json=body)

    async def resubscribe(
        self, email: str, data_fields: Mapping[str, str], *, challenge: bool = True
    ) -> wire.ApiResubscribeResult:
        """Lift an unsubscribe. With ``challenge`` (the default) Dotdigital may email the contact to
        confirm (status ContactChallenged) rather than resubscribing on our word alone."""
        path = "/v2/contacts/resubscribe" if challenge else "/v2/contacts/resubscribe-with-no-challenge"
        pairs = [{"key": k, "value": v} for k, v in data_fields.items()]
        body = {"unsubscribedContact": {"email": email, "dataFields": pairs}}
        return await self._json(wire.ApiResubscribeResult, "POST", path, json=body)

    # -- data fields --------------------------------------------------------------------------------
    async def data_fields(self) -> list[wire.ApiDataField]:
        """All data fields; v2 does not page this list."""
        return await self._json(list[wire.ApiDataField], "GET", "/v2/data-fields")

    async def create_data_field(
        self,
        name: str,
        type: str,
        default: str | int | float | bool | None = None,
        *,
        visibility: str = "Private",
    ) -> wire.ApiDataField:
        """A new data field (type String, Numeric, Date or Boolean); a taken name raises
        ERROR_NON_UNIQUE_DATAFIELD."""
        body = {"name": name, "type": type, "visibility": visibility, "defaultValue": default}
        return await self._json(wire.ApiDataField, "POST", "/v2/data-fields", json=body)

    # -- bulk imports -------------------------------------------------------------------------------
    async def import_contacts(
        self,
        rows: Sequence[Mapping[str, str]],
        *,
        address_book_id: int | None,
        columns: Sequence[str],
        max_bytes: int = wire.MAX_IMPORT_BYTES,
    ) -> str:
        """Upload ONE import file (rows keyed ``Email`` plus ``columns``); returns the import id.

        Split first with ``wire.split_for_import`` and call once per run: a transient failure then repeats
        one file, not every file before it. A file over ``max_bytes`` raises ValueError (a caller bug).
        The upload is multipart field ``file``, as Dotdigital's own Magento client sends it.
        """
        payload = wire.import_csv(rows, columns)
        if len(payload) > max_bytes:
            raise ValueError(f"import file of {len(payload)} bytes exceeds {max_bytes}; use split_for_import")
        book = "" if address_book_id is None else f"/address-books/{address_book_id}"
        files = {"file": ("contacts.csv", payload, "text/csv")}
        return (await self._json(wire.ApiImport, "POST", f"/v2{book}/contacts/import", files=files)).id

    async def import_status(self, import_id: str) -> str:
        """``NotFinished`` while running; then Finished, Failed, RejectedByWatchdog, InvalidFileFormat..."""
        return (await self._json(wire.ApiImport, "GET", f"/v2/contacts/import/{import_id}")).status

    async def import_report(self, import_id: str) -> wire.ApiImportReport:
        """The counts of a finished import (before it finishes: ERROR_IMPORT_REPORT_NOT_FOUND)."""
        return await self._json(wire.ApiImportReport, "GET", f"/v2/contacts/import/{import_id}/report")

    async def import_faults(self, import_id: str) -> list[dict[str, str]]:
        """The rows an import rejected, from its CSV report: ``Reason``, ``email``, then the data fields.

        The v2 document declares the answer ``application/octet-stream``, the vendor's ReadMe CSV: the
        media type is not looked at, the body is read as CSV either way, and one whose header has no
        email column is refused rather than read as "no faults".
        """

        async def report() -> list[dict[str, str]]:
            response = await self._call("GET", f"/v2/contacts/import/{import_id}/report-faults")
            try:
                return wire.read_faults(response.content)
            except (UnicodeDecodeError, csv.Error):
                raise TransientError(
                    f"Dotdigital's answer to {call_name(response)}, the fault report of import "
                    f"{import_id}, is not readable UTF-8 CSV (garbled on the way, most likely); asking "
                    "again usually gives a whole one."
                ) from None
            except ValueError as wrong:
                said = str(wrong).replace(self._password, "***") if self._password else str(wrong)
                raise PermanentError(
                    f"Dotdigital's answer to {call_name(response)} is not the fault report of import "
                    f"{import_id} ({said}); the API may have changed: report it with this message."
                ) from None

        return await idempotent(report, retry=self._retry_reads)

    async def import_unsubscribed(self, emails: Sequence[str]) -> str:
        """One Contacts API v3 import creating (or updating) each address as unsubscribed; the import id.

        v2 can only create an unsubscribed contact one call at a time; v3's import sets the email
        channel's status with the contact, so nobody exists subscribed for even a moment.
        """
        contacts = [
            {
                "matchIdentifier": "email",
                "identifiers": {"email": email},
                "channelProperties": {"email": {"status": "unsubscribed"}},
            }
            for email in emails
        ]
        body = {"mergeOption": "overwrite", "contacts": contacts}
        return (await self._json(wire.V3ImportAccepted, "PUT", "/contacts/v3/import", json=body)).import_id

    async def v3_import_status(self, import_id: str) -> wire.V3ImportStatus:
        """``NotFinished`` while running; once ``Finished`` it lists the contacts that failed."""
        return await self._json(wire.V3ImportStatus, "GET", f"/contacts/v3/import/{import_id}")

    # -- campaigns ----------------------------------------------------------------------------------
    def campaigns_with_activity_since(self, when: datetime) -> AsyncIterator[wire.ApiCampaign]:
        path = f"/v2/campaigns/with-activity-since/{_since(when)}"
        return self._paged(path, list[wire.ApiCampaign], _id)

    def campaign_address_books(self, campaign_id: int) -> AsyncIterator[wire.ApiAddressBook]:
        """The address books the campaign has been sent to."""
        return self._paged(f"/v2/campaigns/{campaign_id}/address-books", list[wire.ApiAddressBook], _id)

    def campaign_activities(
        self, campaign_id: int, since: datetime | None = None
    ) -> AsyncIterator[wire.ApiCampaignContactSummary]:
        """Per-recipient activity, with the hardBounced/softBounced/unsubscribed flags."""
        path = _campaign_path(campaign_id, "activities", since)
        return self._paged(path, list[wire.ApiCampaignContactSummary], lambda a: a.contact_id)

    def campaign_opens(
        self, campaign_id: int, since: datetime | None = None
    ) -> AsyncIterator[wire.ApiCampaignOpen]:
        path = _campaign_path(campaign_id, "opens", since)
        return self._paged(path, list[wire.ApiCampaignOpen], lambda o: (o.contact_id, o.date_opened))

    def campaign_clicks(
        self, campaign_id: int, since: datetime | None = None
    ) -> AsyncIterator[wire.ApiCampaignClick]:
        path = _campaign_path(campaign_id, "clicks", since)
        return self._paged(path, list[wire.ApiCampaignClick], lambda c: (c.contact_id, c.url, c.date_clicked))

    async def campaign_summary(self, campaign_id: int) -> wire.ApiCampaignSummary:
        return await self._json(wire.ApiCampaignSummary, "GET", f"/v2/campaigns/{campaign_id}/summary")


def _id(item: wire.ApiAddressBook | wire.ApiContact | wire.ApiCampaign) -> int:
    return item.id


def _suppressed_id(entry: wire.ApiContactSuppression) -> int:
    return entry.suppressed_contact.id


def _campaign_path(campaign_id: int, feed: str, since: datetime | None) -> str:
    path = f"/v2/campaigns/{campaign_id}/{feed}"
    return path if since is None else f"{path}/since-date/{_since(since)}"


__all__ = [
    "ACTIVE_IMPORTS_WAIT",
    "BEGINNING",
    "FLAT_CAP_WAIT",
    "MAX_WAIT",
    "PAGE_SIZE",
    "RECORD_CODES",
    "USER_AGENT",
    "DotdigitalBusy",
    "DotdigitalClient",
    "DotdigitalError",
    "raise_for",
]
