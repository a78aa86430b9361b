"""A thin typed client for the Constant Contact v3 API: endpoints, bearer tokens, cursor paging.

It exists so the adapter speaks in methods and wire Structs (``wire.py``) instead of URLs and dicts, and
so every answer is turned into the engine's error tree in one place (``errors.raise_for``). It takes an
injected ``httpx.AsyncClient`` on the API host (``https://api.cc.email``; paths carry ``/v3``, as the
vendor's host-relative ``_links.next.href`` do) and a ``TokenKeeper`` for its bearer tokens: a call
answered 401 is repeated once with a refreshed token. Otherwise it never sleeps and never repeats a
change: it raises ``TransientError`` and the caller decides when to call again. Reads (GETs) alone are
repeated here, page by page, with ``retry_reads`` (the adapter asks for it), so one failed page does not
end a snapshot. Bulk activities are submitted one per call and polled at the caller's pace.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
import msgspec

from adapters.common import decode_answer, idempotent
from adapters.constantcontact import wire
from adapters.constantcontact.errors import ConstantContactBusy, ConstantContactError, raise_for
from adapters.constantcontact.oauth import TokenKeeper
from engine.errors import PermanentError, TransientError

T = TypeVar("T")
P = TypeVar("P", bound=msgspec.Struct)

API_URL = "https://api.cc.email"
CONTACTS_PAGE = 500  # the most GET /contacts gives a page
INCLUDE = "custom_fields,list_memberships"


def _decode(response: httpx.Response, type_: type[T]) -> T:
    return decode_answer("Constant Contact", response, type_)


def when(moment: datetime) -> str:
    """A query date-time in UTC with milliseconds, as the vendor's examples write them."""
    moment = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class ConstantContactClient:
    """The v3 endpoints listsync uses, one method each; collections page lazily."""

    def __init__(self, http: httpx.AsyncClient, tokens: TokenKeeper, *, retry_reads: bool = False) -> None:
        self._http = http
        self._tokens = tokens
        self._retry_reads = retry_reads

    def __repr__(self) -> str:  # never show a token
        return f"ConstantContactClient({self._http.base_url!s})"

    async def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        token = await self._tokens.access_token()
        response = await self._send(method, path, token, dict(kwargs))
        if response.status_code == 401:
            response = await self._send(method, path, await self._tokens.refreshed(token), dict(kwargs))
        raise_for(response, redact=self._tokens.secrets)
        return response

    async def _send(self, method: str, path: str, token: str, kwargs: dict[str, Any]) -> httpx.Response:
        headers = {
            "Authorization": f"Bearer {token}",
            "Accept": "application/json",
            **kwargs.pop("headers", {}),
        }
        try:
            return await self._http.request(method, path, headers=headers, **kwargs)
        except (httpx.UnsupportedProtocol, httpx.TooManyRedirects) as wrong:
            raise PermanentError(
                f"Constant Contact {method} {path} cannot be reached at {self._http.base_url} "
                f"({type(wrong).__name__}); check the adapter's api_url."
            ) from None
        except httpx.RequestError as lost:
            raise TransientError(
                f"Constant Contact {method} {path} failed in transit ({type(lost).__name__})"
            ) from None

    async def _json(self, type_: type[T], method: str, path: str, **kwargs: Any) -> T:
        async def answer() -> T:
            return _decode(await self._call(method, path, **kwargs), type_)

        return await idempotent(answer, retry=self._retry_reads and method == "GET")

    async def _paged(
        self, path: str, type_: type[P], items: Callable[[P], Sequence[T]], **params: Any
    ) -> AsyncGenerator[T, None]:
        """Every item of a collection, following ``_links.next.href`` until there is none."""
        next_path: str | None = path
        query: dict[str, Any] | None = params
        while next_path is not None:
            page = await self._json(type_, "GET", next_path, params=query)
            for item in items(page):
                yield item
            link = getattr(page, "links", None)
            next_path = link.next.href if link is not None and link.next is not None else None
            query = None  # the cursor in the link carries the query

    # -- contacts -----------------------------------------------------------------------------------
    def contacts(
        self,
        *,
        updated_after: datetime | None = None,
        optout_after: datetime | None = None,
        status: str | None = None,
        email: str | None = None,
    ) -> AsyncGenerator[wire.Contact, None]:
        """Contacts with their custom fields and list memberships (default: every one not deleted)."""
        params: dict[str, Any] = {"include": INCLUDE, "limit": CONTACTS_PAGE}
        for name, value in (("updated_after", updated_after), ("optout_after", optout_after)):
            if value is not None:
                params[name] = when(value)
        if status is not None:
            params["status"] = status
        if email is not None:
            params["email"] = email
        return self._paged("/v3/contacts", wire.ContactsPage, lambda p: p.contacts, **params)

    async def contact(self, contact_id: str) -> wire.Contact:
        return await self._json(
            wire.Contact, "GET", f"/v3/contacts/{contact_id}", params={"include": INCLUDE}
        )

    async def create_contact(self, body: Mapping[str, Any]) -> wire.Contact:
        """``POST /contacts``; an address that ever existed is a 409."""
        return await self._json(wire.Contact, "POST", "/v3/contacts", json=body)

    async def put_contact(self, contact_id: str, body: Mapping[str, Any]) -> wire.Contact:
        """``PUT /contacts/{id}``: scalars not given are cleared; sub-resources not given are kept."""
        return await self._json(wire.Contact, "PUT", f"/v3/contacts/{contact_id}", json=body)

    # -- lists and custom fields --------------------------------------------------------------------
    def lists(self, *, counts: bool = False) -> AsyncGenerator[wire.ContactList, None]:
        params: dict[str, Any] = {"limit": 1000}
        if counts:
            params["include_membership_count"] = "all"
        return self._paged("/v3/contact_lists", wire.ListsPage, lambda p: p.lists, **params)

    async def create_list(self, name: str) -> wire.ContactList:
        """A new contact list; a taken name is a 409."""
        body = {"name": name, "favorite": False, "description": "Synced by listsync"}
        return await self._json(wire.ContactList, "POST", "/v3/contact_lists", json=body)

    def custom_fields(self) -> AsyncGenerator[wire.CustomField, None]:
        return self._paged(
            "/v3/contact_custom_fields", wire.CustomFieldsPage, lambda p: p.custom_fields, limit=100
        )

    async def create_custom_field(self, label: str, type_: str) -> wire.CustomField:
        body = {"label": label, "type": type_}
        return await self._json(wire.CustomField, "POST", "/v3/contact_custom_fields", json=body)

    # -- bulk activities ----------------------------------------------------------------------------
    async def import_contacts(
        self,
        rows: Sequence[Mapping[str, str]],
        list_ids: Sequence[str],
        *,
        max_bytes: int = wire.MAX_IMPORT_BYTES,
    ) -> str:
        """Submit ONE ``contacts_json_import`` (split first with ``wire.split_for_import``); returns the
        activity id. A body over ``max_bytes`` raises ValueError (a caller bug: the vendor would drop
        the rows past 4 MB without a word)."""
        body = wire.import_body(rows, list_ids)
        if len(body) > max_bytes:
            raise ValueError(f"import body of {len(body)} bytes exceeds {max_bytes}; use split_for_import")
        headers = {"Content-Type": "application/json"}
        path = "/v3/activities/contacts_json_import"
        return (await self._json(wire.Activity, "POST", path, content=body, headers=headers)).activity_id

    async def add_to_lists(self, contact_ids: Sequence[str], list_ids: Sequence[str]) -> str:
        """Start adding up to 500 contacts to lists; returns the activity id."""
        body = {"source": {"contact_ids": list(contact_ids)}, "list_ids": list(list_ids)}
        path = "/v3/activities/add_list_memberships"
        return (await self._json(wire.Activity, "POST", path, json=body)).activity_id

    async def remove_from_lists(self, contact_ids: Sequence[str], list_ids: Sequence[str]) -> str:
        """Start removing up to 500 contacts from lists (they stay in the account); returns the
        activity id."""
        body = {"source": {"contact_ids": list(contact_ids)}, "list_ids": list(list_ids)}
        path = "/v3/activities/remove_list_memberships"
        return (await self._json(wire.Activity, "POST", path, json=body)).activity_id

    async def activity(self, activity_id: str) -> wire.Activity:
        return await self._json(wire.Activity, "GET", f"/v3/activities/{activity_id}")

    # -- email campaigns and reporting --------------------------------------------------------------
    def email_campaigns(self) -> AsyncGenerator[wire.EmailCampaign, None]:
        return self._paged("/v3/emails", wire.EmailCampaignsPage, lambda p: p.campaigns, limit=500)

    async def email_campaign(self, campaign_id: str) -> wire.EmailCampaign:
        return await self._json(wire.EmailCampaign, "GET", f"/v3/emails/{campaign_id}")

    async def campaign_activity(self, activity_id: str) -> wire.CampaignActivity:
        return await self._json(wire.CampaignActivity, "GET", f"/v3/emails/activities/{activity_id}")

    def tracking(self, activity_id: str, report: str) -> AsyncGenerator[wire.Tracking, None]:
        """An email activity's ``sends``, ``opens``, ``clicks``, ``bounces`` or ``optouts``, newest first."""
        path = f"/v3/reports/email_reports/{activity_id}/tracking/{report}"
        return self._paged(path, wire.TrackingPage, lambda p: p.tracking_activities, limit=500)

    async def campaign_stats(self, campaign_ids: Sequence[str]) -> list[wire.CampaignStats]:
        """Totals of up to ten campaigns."""
        path = f"/v3/reports/stats/email_campaigns/{','.join(campaign_ids)}"
        return (await self._json(wire.CampaignStatsResult, "GET", path)).results


__all__ = ["API_URL", "ConstantContactBusy", "ConstantContactClient", "ConstantContactError", "when"]
