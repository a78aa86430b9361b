"""A thin typed client for the Mailchimp Marketing API 3.0 endpoints listsync uses.

It takes an injected ``httpx.AsyncClient`` (the engine's budgeted client, or one over the emulator's
``ASGITransport`` in tests) whose base URL is the account's data centre, ``https://<dc>.api.mailchimp.com``,
and authenticates each call with HTTP Basic (any user name, the API key as password). It does three things
a caller should not have to remember:

- Mailchimp allows 10 simultaneous connections per user and answers the 11th with 429, so every call
  waits for one of ``max_connections`` slots (an ``asyncio.Semaphore``) first; callers may then run calls
  concurrently (a full member read fetches its pages ten at a time) without ever meeting that 429.
- Lists page by ``count`` (at most 1000) and ``offset``; ``_all`` reads the first page, then the rest of
  ``total_items`` concurrently. Mailchimp documents no default order, and its ``sort_field`` choices
  (``last_changed``, ``timestamp_opt``, ``timestamp_signup``) all move or tie, so a member archived
  or moved during a read could hide another at a page boundary: pages overlap, and a read whose pages
  do not follow one another is made again (``adapters.offset_paging``).
- A batch's results archive lives at a pre-signed URL on another host (S3): it is fetched without the API
  key, which must go to Mailchimp alone.

It never repeats a change: it raises ``TransientError`` and the engine decides when to call again. Reads
(GETs) alone are repeated here, page by page, with ``retry_reads`` (the adapter asks for it), so one
failed page does not end a snapshot. How each answer maps to an error lives in ``errors.py``.
"""

from __future__ import annotations

import asyncio
import tarfile
from collections.abc import Callable, Coroutine, Hashable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar

import httpx
import msgspec

from adapters.common import decode_answer, idempotent
from adapters.mailchimp import wire
from adapters.mailchimp.errors import MailchimpError, raise_for
from adapters.offset_paging import read_at_once
from engine.errors import PermanentError, TransientError

T = TypeVar("T")
P = TypeVar("P", bound="_Listing")

MAX_CONNECTIONS = 10  # Mailchimp's documented limit per user
PAGE_SIZE = 1000  # the largest ``count``
MAX_BATCH_MEMBERS = 500  # batch subscribe, and each array of a static segment's add/remove call
# Member fields a snapshot reads; the rest of each member (dozens of fields) is left on the server.
MEMBER_FIELDS = (
    ",".join(
        f"members.{name}"
        for name in (
            "id",
            "email_address",
            "status",
            "merge_fields",
            "tags",
            "last_changed",
            "unsubscribe_reason",
        )
    )
    + ",total_items"
)


class _Listing(Protocol):
    """A page of a list: every one says how many items the whole list holds."""

    @property
    def total_items(self) -> int: ...


def _id(item: wire.Audience | wire.Member | wire.Segment | wire.Campaign) -> str | int:
    return item.id


def _email_id(item: wire.EmailActivity | wire.Unsubscribe) -> str:
    return item.email_id


def data_centre(api_key: str) -> str:
    """The data centre a key belongs to: its suffix after the last ``-`` (``us21``)."""
    prefix, dash, dc = api_key.strip().rpartition("-")
    if not dash or not prefix or not dc.isalnum():
        raise PermanentError(
            "the Mailchimp API key has no data-centre suffix (such as -us21); copy the whole key from "
            "Profile > Extras > API keys"
        )
    return dc


def _decode(response: httpx.Response, type_: type[T]) -> T:
    return decode_answer("Mailchimp", response, type_)


async def concurrently(calls: Iterable[Coroutine[Any, Any, object]]) -> None:
    """Await ``calls`` at once; the first failure is raised as itself (not an ExceptionGroup), the
    engine's error tree being what callers handle, and the other calls are cancelled."""
    try:
        async with asyncio.TaskGroup() as group:
            for call in calls:
                group.create_task(call)
    except BaseExceptionGroup as failed:
        first: BaseException = failed
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        raise first from None


def _when(moment: datetime) -> str:
    """A query time in UTC ISO 8601, to the second, so a window never starts after ``moment``."""
    at = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return at.astimezone(UTC).replace(microsecond=0).isoformat()


class MailchimpClient:
    """The 3.0 endpoints listsync uses, one method each; list calls return every page."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_key: str,
        max_connections: int = MAX_CONNECTIONS,
        page_size: int = PAGE_SIZE,
        retry_reads: bool = False,
    ) -> None:
        if not 1 <= page_size <= PAGE_SIZE:
            raise ValueError(f"page_size must be 1 to {PAGE_SIZE}, not {page_size}")
        self._http = http
        self._auth = httpx.BasicAuth("listsync", api_key)
        self._key = api_key
        self._slots = asyncio.Semaphore(max_connections)
        self._page_size = page_size
        self._retry_reads = retry_reads

    def __repr__(self) -> str:  # never show the key
        return f"MailchimpClient({self._http.base_url!s})"

    async def _call(self, method: str, path: str, *, signed: bool = True, **kwargs: Any) -> httpx.Response:
        """One request in one connection slot; ``signed`` False sends no API key (pre-signed URLs)."""
        auth = self._auth if signed else None
        where = f"{method} {httpx.URL(path).path}"  # a pre-signed URL's query is its credential
        async with self._slots:
            try:
                response = await self._http.request(method, path, auth=auth, **kwargs)
            except (httpx.UnsupportedProtocol, httpx.TooManyRedirects, httpx.InvalidURL) as wrong:
                raise PermanentError(
                    f"Mailchimp {where} cannot be reached at {self._http.base_url} "
                    f"({type(wrong).__name__}); check the endpoint setting."
                ) from None
            except httpx.RequestError as lost:  # connection, timeout, protocol, garbled content-encoding
                text = str(lost).replace(self._key, "***")
                raise TransientError(
                    f"Mailchimp {where} failed in transit ({type(lost).__name__}: {text})"
                ) from None
        raise_for(response, redact=(self._key,))
        return response

    async def _json(self, type_: type[T], method: str, path: str, **kwargs: Any) -> T:
        async def answer() -> T:
            return _decode(await self._call(method, path, **kwargs), type_)

        return await idempotent(answer, retry=self._retry_reads and method == "GET")

    async def _all(
        self,
        path: str,
        type_: type[P],
        items: Callable[[P], list[T]],
        key: Callable[[T], Hashable],
        **params: Any,
    ) -> list[T]:
        """Every item of a ``count``/``offset`` list: the first page, then the others concurrently,
        each overlapping the one before (``adapters.offset_paging``: Mailchimp names no default order,
        so a record that leaves the list or moves during the read would otherwise hide the one at the
        next page boundary). ``key`` names an item; one that moved may come twice."""

        async def page(offset: int, count: int) -> tuple[list[T], int]:
            answer = await self._json(type_, "GET", path, params={**params, "count": count, "offset": offset})
            return items(answer), answer.total_items

        what = f"Mailchimp GET {path}"
        return await read_at_once(page, key, page_size=self._page_size, what=what, gather=concurrently)

    # -- account and audiences ----------------------------------------------------------------------
    async def ping(self) -> str:
        return (await self._json(wire.Ping, "GET", "/3.0/ping")).health_status

    async def audiences(self) -> list[wire.Audience]:
        return await self._all("/3.0/lists", wire.Audiences, lambda p: p.lists, _id)

    async def audience(self, list_id: str) -> wire.Audience:
        return await self._json(wire.Audience, "GET", f"/3.0/lists/{list_id}")

    # -- members ------------------------------------------------------------------------------------
    async def members(
        self, list_id: str, *, status: str | None = None, since: datetime | None = None
    ) -> list[wire.Member]:
        """Members (by default every status Mailchimp lists without one), optionally changed since."""
        params: dict[str, str] = {"fields": MEMBER_FIELDS}
        if status is not None:
            params["status"] = status
        if since is not None:
            params["since_last_changed"] = _when(since)
        path = f"/3.0/lists/{list_id}/members"
        return await self._all(path, wire.Members, lambda p: p.members, _id, **params)

    async def member(self, list_id: str, email: str) -> wire.Member:
        path = f"/3.0/lists/{list_id}/members/{wire.subscriber_hash(email)}"
        return await self._json(wire.Member, "GET", path)

    async def upsert_member(self, list_id: str, email: str, body: Mapping[str, Any]) -> wire.Member:
        """``PUT`` one member: created with ``status_if_new``, else updated (``status`` only if given)."""
        path = f"/3.0/lists/{list_id}/members/{wire.subscriber_hash(email)}"
        return await self._json(wire.Member, "PUT", path, json={"email_address": email, **body})

    async def set_tags(self, list_id: str, email: str, tags: Mapping[str, bool]) -> None:
        """Tag names to active (True) or inactive; an active tag that does not exist is created."""
        body = {"tags": [{"name": n, "status": "active" if on else "inactive"} for n, on in tags.items()]}
        await self._call(
            "POST", f"/3.0/lists/{list_id}/members/{wire.subscriber_hash(email)}/tags", json=body
        )

    async def batch_subscribe(
        self, list_id: str, members: Sequence[Mapping[str, Any]], *, update_existing: bool = True
    ) -> wire.BatchSubscribeResult:
        """Create or update at most 500 members in one call; per-member refusals come back as errors."""
        if len(members) > MAX_BATCH_MEMBERS:
            raise ValueError(f"batch subscribe takes at most {MAX_BATCH_MEMBERS} members, not {len(members)}")
        body = {"members": list(members), "update_existing": update_existing}
        return await self._json(wire.BatchSubscribeResult, "POST", f"/3.0/lists/{list_id}", json=body)

    # -- tags (static segments) ---------------------------------------------------------------------
    async def segments(self, list_id: str) -> list[wire.Segment]:
        """Every tag and static segment, ``member_count`` counting members of every status."""
        flags = {f"include_{s}": "true" for s in ("cleaned", "transactional", "unsubscribed")}
        path = f"/3.0/lists/{list_id}/segments"
        return await self._all(path, wire.Segments, lambda p: p.segments, _id, type="static", **flags)

    async def create_segment(self, list_id: str, name: str) -> wire.Segment:
        body = {"name": name, "static_segment": []}
        return await self._json(wire.Segment, "POST", f"/3.0/lists/{list_id}/segments", json=body)

    async def update_segment(
        self, list_id: str, segment_id: int, *, add: Sequence[str] = (), remove: Sequence[str] = ()
    ) -> wire.SegmentMembersResult:
        """Add and remove at most 500 addresses each; addresses not in the audience are ignored."""
        if len(add) > MAX_BATCH_MEMBERS or len(remove) > MAX_BATCH_MEMBERS:
            raise ValueError(
                f"a static segment takes at most {MAX_BATCH_MEMBERS} addresses each way per call"
            )
        body = {"members_to_add": list(add), "members_to_remove": list(remove)}
        path = f"/3.0/lists/{list_id}/segments/{segment_id}"
        return await self._json(wire.SegmentMembersResult, "POST", path, json=body)

    # -- merge fields -------------------------------------------------------------------------------
    async def merge_fields(self, list_id: str) -> tuple[list[wire.MergeField], int | None]:
        """Every merge field of the audience, and the audience's limit on them when Mailchimp says it."""
        path = f"/3.0/lists/{list_id}/merge-fields"
        page = await self._json(wire.MergeFields, "GET", path, params={"count": PAGE_SIZE})
        return page.merge_fields, page.merge_field_limit

    async def create_merge_field(
        self, list_id: str, tag: str, type_: str, *, name: str | None = None, choices: Sequence[str] = ()
    ) -> wire.MergeField:
        body: dict[str, Any] = {
            "tag": tag,
            "name": name or tag,
            "type": type_,
            "required": False,
            "public": False,
        }
        if choices:
            body["options"] = {"choices": list(choices)}
        return await self._json(wire.MergeField, "POST", f"/3.0/lists/{list_id}/merge-fields", json=body)

    # -- batch operations ---------------------------------------------------------------------------
    async def start_batch(self, operations: Sequence[Mapping[str, Any]]) -> wire.Batch:
        return await self._json(wire.Batch, "POST", "/3.0/batches", json={"operations": list(operations)})

    async def batch(self, batch_id: str) -> wire.Batch:
        return await self._json(wire.Batch, "GET", f"/3.0/batches/{batch_id}")

    async def batch_results(self, url: str) -> list[wire.OperationResult]:
        """The per-operation results of a finished batch, from its pre-signed archive (no API key)."""
        # The path of the call as made (a URL that is not absolute goes to the API host), never the
        # query: it holds the URL's signature.
        where = f"GET {self._http.build_request('GET', url).url.path}"

        async def results() -> list[wire.OperationResult]:
            try:
                response = await self._call("GET", url, signed=False)
            except MailchimpError as refused:
                raise PermanentError(
                    f"the results archive of a Mailchimp batch could not be read ({where}: "
                    f"{refused.status}); a finished batch's archive expires after a while, so its operations "
                    "must be written again"
                ) from None
            try:
                return wire.read_batch_results(response.content)
            except (tarfile.TarError, OSError, EOFError, msgspec.DecodeError, msgspec.ValidationError):
                raise TransientError(
                    f"a Mailchimp batch's results archive ({where}) is not a whole .tar.gz of JSON (cut on "
                    "the way, most likely); fetching it again usually gives a whole one"
                ) from None

        return await idempotent(results, retry=self._retry_reads)

    # -- campaigns and reports ----------------------------------------------------------------------
    async def campaigns(self, list_id: str, *, sent_since: datetime) -> list[wire.Campaign]:
        params = {"list_id": list_id, "status": "sent", "since_send_time": _when(sent_since)}
        return await self._all("/3.0/campaigns", wire.Campaigns, lambda p: p.campaigns, _id, **params)

    async def report(self, campaign_id: str) -> wire.Report:
        return await self._json(wire.Report, "GET", f"/3.0/reports/{campaign_id}")

    async def email_activity(
        self, campaign_id: str, *, since: datetime | None = None
    ) -> list[wire.EmailActivity]:
        """Each recipient's opens, clicks and bounces (since ``since``: only those events)."""
        params = {} if since is None else {"since": _when(since)}
        path = f"/3.0/reports/{campaign_id}/email-activity"
        return await self._all(path, wire.EmailActivities, lambda p: p.emails, _email_id, **params)

    async def unsubscribes(self, campaign_id: str) -> list[wire.Unsubscribe]:
        path = f"/3.0/reports/{campaign_id}/unsubscribed"
        return await self._all(path, wire.Unsubscribes, lambda p: p.unsubscribes, _email_id)
