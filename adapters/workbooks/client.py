"""A thin typed client for the Workbooks CRM API: authentication, paged reads, batched writes, errors.

It exists so the Workbooks adapter never touches HTTP: it calls `read_all`, `people_since` or `write`
and gets Structs back (`adapters.workbooks.wire`), or one of the errors of `engine.errors`, mapped in
one place (`raise_for`). It follows `shared/reference/workbooks-api.md`. Decisions:
- Reads are sent as POST with `_method=GET` and a form body, as the official PHP binding does: the API
  key never appears in a URL (and so in no access log), and long column lists fit. Writes are real PUTs.
- Redirects are followed here, not by httpx's `follow_redirects`, so the number of hops is capped
  (`MAX_HOPS`) whatever the injected client is configured to do; each hop uses httpx's own redirect
  request (`response.next_request`). A chain longer than the cap is a `TransientError` (rate limiting).
- With a username and password, the first call logs in; the `Workbooks-Session` cookie lives in the
  injected client's cookie jar. A lost session (`session_expired`, `no_session_found`, or a refused
  authenticity token) logs in again once and repeats the call. Nothing sleeps and no change is
  repeated: transient errors go to the engine, which retries honouring `retry_after`. Reads alone
  are repeated here, page by page, when `retry_reads` is given (the adapter gives it), so that one
  failed page does not end a snapshot of hundreds.
- Secrets (API key, password) are removed from every message built from a server's text.
"""

from __future__ import annotations

import email.utils
import math
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

import httpx
import msgspec

from adapters.common import idempotent
from adapters.workbooks.wire import (
    MAX_BATCH,
    LoginSession,
    MetadataType,
    Page,
    Pairs,
    Value,
    WriteObject,
    WriteResult,
    encode_value,
    write_pairs,
    write_results,
)
from engine.errors import PermanentError, TransientError

MAX_HOPS = 10
USER_AGENT = "listsync/0.1 (Workbooks API client; python-httpx)"
FORM = "application/x-www-form-urlencoded"
Filter = tuple[str, str, Value]  # (field, operator, value); None for operators that take no value
Sort = Sequence[tuple[str, str]]  # (field, "ASC" | "DESC")

RELOGIN = frozenset({"session_expired", "no_session_found", "invalid_authenticity_token"})
TRANSIENT_403 = frozenset({"database_being_migrated", "database_unavailable"})
FORBIDDEN = {
    "user_agent_required": "Workbooks requires a User-Agent header (a bug in this client: report it)",
    "no_permission_for_api": "this Workbooks user may not use the API: ask a Workbooks administrator",
    "no_database_selection_made": "the login has several databases: choose one (logical_database_id)",
    "login_disabled": "this Workbooks login is disabled: ask a Workbooks administrator",
}


class SessionLost(PermanentError):
    """The Workbooks session ended or never existed. The client logs in again once before giving up."""


def retry_after(response: httpx.Response) -> float | None:
    """The `Retry-After` header in seconds (a number, or an HTTP date measured from `Date`), if usable."""
    text = response.headers.get("retry-after")
    if text is None:
        return None
    try:
        seconds = float(text)
    except ValueError:
        try:
            sent = email.utils.parsedate_to_datetime(response.headers["date"])
            seconds = (email.utils.parsedate_to_datetime(text) - sent).total_seconds()
        except (KeyError, TypeError, ValueError, IndexError, OverflowError):
            return None
    return seconds if math.isfinite(seconds) and seconds >= 0 else None


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` without any of `secrets`; withheld entirely if a secret would survive the replacement."""
    for secret in filter(None, secrets):
        text = text.replace(secret, "***")
    if any(secret in text for secret in secrets if secret):
        return "(withheld: it contained a credential)"
    return text[:300]


def call_of(response: httpx.Response) -> str:
    """The call a response answers, as its controller (``crm/people``), for messages."""
    try:
        path = response.request.url.path
    except RuntimeError:  # a Response built without a request, as in tests
        return "a call"
    return path.removeprefix("/").removesuffix(".api") or "/"


def raise_for(response: httpx.Response, *, secrets: Sequence[str] = ()) -> dict[str, Any]:
    """The JSON object of a successful answer, or the `engine.errors` error the answer stands for.

    Every message names the call (its controller). The only place the client reads status codes:
    - 2xx with a JSON object: returned (a write's per-object failures are in it, not raised).
      2xx with anything else (a body cut short): `TransientError`.
    - 3xx left after `MAX_HOPS` redirects: `TransientError` (rate limited by a delaying URL).
    - 401 `session_expired` / `no_session_found`: `SessionLost`; any other 401: `PermanentError` asking to
      check the API key or the credentials (which are never echoed).
    - 403: `invalid_authenticity_token` is `SessionLost`; `database_being_migrated` is `TransientError`;
      `user_agent_required`, `no_permission_for_api`, `no_database_selection_made` and any other reason
      are `PermanentError` saying what to do.
    - 406: `PermanentError` naming the refused parameter as the body does. 404, 405, 501 and other 4xx:
      `PermanentError`.
    - 408, 429 and 5xx (but 501), or any other status: `TransientError`, with `retry_after` from the header.
    """
    status, call = response.status_code, call_of(response)
    try:
        body: Any = msgspec.json.decode(response.content)
    except msgspec.DecodeError:
        body = None
    if 200 <= status < 300:
        if not isinstance(body, dict):
            raise TransientError(
                f"Workbooks answered {call} with HTTP {status} and malformed JSON (cut short?)"
            )
        return body
    fields = body if isinstance(body, dict) else {}
    reason = fields.get("failure_reason")
    reason = redact(reason, secrets) if isinstance(reason, str) else ""
    message = fields.get("failure_message") or fields.get("flash")
    detail = redact(message, secrets) if isinstance(message, str) and message else reason or "no details"
    after = retry_after(response)
    if 300 <= status < 400:
        raise TransientError(
            f"Workbooks kept redirecting {call} (HTTP {status}, more than {MAX_HOPS} hops): rate limited",
            retry_after=after,
        )
    if status == 401 or (status == 403 and reason in RELOGIN):
        if reason in RELOGIN:
            raise SessionLost(f"the Workbooks session is over ({reason} on {call}): log in again")
        raise PermanentError(
            f"Workbooks refused the credentials on {call} ({reason or 'HTTP 401'}): check the API key, "
            "or the username and password"
        )
    if status == 403:
        if reason in TRANSIENT_403:
            raise TransientError(
                f"the Workbooks database is unavailable ({reason} on {call})", retry_after=after
            )
        advice = FORBIDDEN.get(reason, "Workbooks refused access to the database")
        raise PermanentError(f"{advice} (HTTP 403 on {call}, {reason or 'without a reason'}: {detail})")
    if status == 406:
        raise PermanentError(f"Workbooks refused the parameters of {call} ({reason or 'HTTP 406'}): {detail}")
    if status == 404:
        raise PermanentError(
            f"Workbooks found no such endpoint or record, or denies access to it, on {call}: {detail}"
        )
    if status in (405, 501):
        raise PermanentError(f"Workbooks does not allow this method on {call} (HTTP {status}): {detail}")
    if 400 <= status < 500 and status not in (408, 429):
        raise PermanentError(f"Workbooks refused {call} (HTTP {status}): {detail}")
    raise TransientError(f"Workbooks failed on {call} (HTTP {status}): {detail}", retry_after=after)


class WorkbooksClient:
    """Workbooks over an injected `httpx.AsyncClient` that carries the base URL and the transport.

    Give either `api_key` (sent on every request, no session) or `username` and `password` (a session).
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        api_key: str | None = None,
        username: str | None = None,
        password: str | None = None,
        application_name: str = "listsync",
        retry_reads: bool = False,
    ) -> None:
        if (api_key is None) == (username is None or password is None):
            raise ValueError("give either api_key, or username and password")
        self._http, self._api_key = http, api_key
        self._username, self._password = username, password
        self._application_name = application_name
        self._retry_reads = retry_reads
        self._secrets = tuple(s for s in (api_key, password) if s)
        self.session: LoginSession | None = None

    # -- authentication --
    async def login(self) -> LoginSession:
        """Open a session with the username and password; the cookie goes to the injected client's jar."""
        if self._username is None or self._password is None:
            raise ValueError("login() needs a username and password; an API key needs no session")
        pairs = [("username", self._username), ("password", self._password), ("client", "api")]
        pairs += [("api_version", "1"), ("_application_name", self._application_name)]
        pairs += [("_strict_attribute_checking", "true"), ("_per_object_transactions", "true")]
        pairs += [("_fast_login", "true")]
        body = await self._send("POST", "login", pairs)
        try:
            self.session = msgspec.convert(body, LoginSession)
        except msgspec.ValidationError as exc:
            raise TransientError(f"Workbooks answered login with an unexpected body: {exc}") from exc
        return self.session

    async def logout(self) -> None:
        """End the session, if there is one."""
        if self.session is not None:
            token, self.session = self.session.authenticity_token, None
            await self._send("POST", "logout", [("_authenticity_token", token)])

    # -- reads --
    async def read(
        self,
        controller: str,
        *,
        select: Sequence[str] = (),
        filters: Sequence[Filter] = (),
        match: str = "and",
        sort: Sort | None = None,
        start: int = 0,
        limit: int = 100,
    ) -> Page:
        """One page of `controller`; `match` is `and`, `or` or an expression over 1-based filter indices."""
        pairs: Pairs = [("_select_columns[]", column) for column in select]
        for name, op, value in filters:
            pairs += [("_ff[]", name), ("_ft[]", op), ("_fc[]", _filter_value(value))]
        if match.strip().lower() != "and":
            pairs.append(("_fm", match))
        for name, direction in sort or ():
            pairs += [("_sort[]", name), ("_dir[]", direction.upper())]
        pairs += [("_start", str(start)), ("_limit", str(limit))]  # _limit is ignored without _start

        async def page() -> Page:
            body = await self._call(controller, "GET", pairs)
            if body.get("success") is False:
                detail = redact(str(body.get("errors") or body.get("flash") or "no details"), self._secrets)
                raise PermanentError(f"Workbooks refused to read {controller}: {detail}")
            try:
                return msgspec.convert(body, Page)
            except msgspec.ValidationError as exc:
                raise TransientError(
                    f"Workbooks answered a read of {controller} with an odd body: {exc}"
                ) from exc

        return await idempotent(page, retry=self._retry_reads)

    async def read_all(
        self,
        controller: str,
        *,
        select: Sequence[str] = (),
        filters: Sequence[Filter] = (),
        match: str = "and",
        sort: Sort | None = None,
        page_size: int = 100,
    ) -> AsyncIterator[dict[str, Any]]:
        """Every row, page by page with `_start`/`_limit` until `total` rows are read; sorted by id last."""
        order = list(sort or ())
        if not any(name == "id" for name, _ in order):
            order.append(("id", "ASC"))  # a stable order, or offsets would skip and repeat rows
        start = 0
        while True:
            page = await self.read(
                controller,
                select=select,
                filters=filters,
                match=match,
                sort=order,
                start=start,
                limit=page_size,
            )
            for row in page.data:
                yield row
            start += len(page.data)
            if not page.data or start >= page.total:
                return

    def changed_since(
        self,
        controller: str,
        updated_at: datetime | None,
        columns: Sequence[str],
        *,
        deleted: bool = True,
        page_size: int = 100,
    ) -> AsyncIterator[dict[str, Any]]:
        """Rows updated at or after `updated_at` (all when None), in order of id, tombstones included.

        Paging is by offset, so the order is by id, which no edit changes: in order of `updated_at`, a
        record edited during the read would jump to the end and move every later one up a place, and
        one would fall between two pages unseen. By id, an edit only ever adds a row to the filtered
        set (`updated_at` grows; tombstones stay), so a row may be read twice (dedupe by id) but none
        is missed. A record edited after its page was read carries its old values: the cursor for the
        next read must therefore be no later than the moment this one began (reference §8, Deltas).
        """
        filters: list[Filter] = [] if updated_at is None else [("updated_at", "ge", updated_at)]
        match = "and"
        if deleted:  # deleted records are hidden unless a filter names is_deleted
            filters += [("is_deleted", "eq", False), ("is_deleted", "eq", True)]
            match = f"{len(filters) - 1} OR {len(filters)}"
            match = match if updated_at is None else f"1 AND ({match})"
        select = list(dict.fromkeys([*columns, "updated_at", "is_deleted"])) if columns else []
        return self.read_all(
            controller, select=select, filters=filters, match=match, sort=[("id", "ASC")], page_size=page_size
        )

    def people_since(
        self, updated_at: datetime | None, columns: Sequence[str]
    ) -> AsyncIterator[dict[str, Any]]:
        return self.changed_since("crm/people", updated_at, columns)

    def leads_since(
        self, updated_at: datetime | None, columns: Sequence[str]
    ) -> AsyncIterator[dict[str, Any]]:
        return self.changed_since("crm/sales_leads", updated_at, columns)

    def memberships_since(
        self, updated_at: datetime | None, columns: Sequence[str], *, page_size: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        return self.changed_since("crm/campaign_membership", updated_at, columns, page_size=page_size)

    async def campaigns(self, columns: Sequence[str]) -> list[dict[str, Any]]:
        """Every live campaign (there are few)."""
        return [row async for row in self.read_all("crm/campaigns", select=columns)]

    async def metadata_types(self, class_names: Sequence[str] = ()) -> dict[str, tuple[str, ...]]:
        """Field names per type, keyed by controller path (`crm/people`), from `metadata/types.api`."""
        pairs: Pairs = [("class_names[]", name) for name in class_names]
        pairs += [("_select_columns[]", c) for c in ("class_name", "controller_path", "fields")]

        async def types() -> list[MetadataType]:
            body = await self._call("metadata/types", "GET", pairs)
            try:
                return msgspec.convert(body.get("data"), list[MetadataType])
            except msgspec.ValidationError as exc:
                raise TransientError(f"Workbooks answered metadata/types with an odd body: {exc}") from exc

        found = await idempotent(types, retry=self._retry_reads)
        return {t.controller_path or t.class_name: tuple(f.name for f in t.fields) for t in found}

    # -- writes --
    async def write(self, controller: str, objects: Sequence[WriteObject]) -> list[WriteResult]:
        """Create, update and delete `objects`, at most `MAX_BATCH` per PUT, each in its own transaction.

        Results come in the order of `objects`. If a call fails, the batches before it were saved.
        """
        results: list[WriteResult] = []
        for first in range(0, len(objects), MAX_BATCH):
            batch = objects[first : first + MAX_BATCH]
            pairs = [("_per_object_transactions", "true"), ("_strict_attribute_checking", "true")]
            body = await self._call(controller, "PUT", [*pairs, *write_pairs(batch)])
            results += write_results(body, batch)
        return results

    # -- transport --
    async def _call(self, controller: str, verb: str, pairs: Pairs) -> dict[str, Any]:
        """One API call with credentials; in session mode, logs in first and once more if the session ends."""
        if self._api_key is not None:
            return await self._authenticated(controller, verb, pairs)
        if self.session is None:
            await self.login()
        used = self.session
        try:
            return await self._authenticated(controller, verb, pairs)
        except SessionLost:
            if self.session is used:  # another call may have logged in again already
                await self.login()
        return await self._authenticated(controller, verb, pairs)

    async def _authenticated(self, controller: str, verb: str, pairs: Pairs) -> dict[str, Any]:
        auth: Pairs = [("client", "api")]
        if self._api_key is not None:
            auth += [("api_key", self._api_key), ("_api_version", "1")]
            auth.append(("_application_name", self._application_name))
        elif verb != "GET" and self.session is not None:
            auth.append(("_authenticity_token", self.session.authenticity_token))
        if verb == "GET":
            return await self._send("POST", controller, [("_method", "GET"), *auth, *pairs])
        return await self._send(verb, controller, [*auth, *pairs])

    async def _send(self, method: str, controller: str, pairs: Pairs) -> dict[str, Any]:
        headers = {"User-Agent": USER_AGENT, "Content-Type": FORM}
        request = self._http.build_request(
            method, f"/{controller}.api", content=urlencode(pairs).encode(), headers=headers
        )
        try:
            response = await self._http.send(request, follow_redirects=False)
            for _ in range(MAX_HOPS):
                if response.next_request is None:
                    break
                response.next_request.headers["User-Agent"] = USER_AGENT
                response = await self._http.send(response.next_request, follow_redirects=False)
        except httpx.RequestError as exc:
            detail = redact(f"{type(exc).__name__}: {exc}", self._secrets)
            raise TransientError(f"could not reach Workbooks for {controller} ({detail})") from exc
        except httpx.InvalidURL as exc:  # a redirect to a Location httpx cannot read
            detail = redact(str(exc), self._secrets)
            raise PermanentError(f"Workbooks redirected {controller} to an unusable URL ({detail})") from exc
        return raise_for(response, secrets=self._secrets)


def _filter_value(value: Value) -> str:
    """A filter value: booleans are 0/1 with eq/ne, operators without a value still send `_fc[]`."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "1" if value else "0"
    return encode_value(value)


__all__ = [
    "MAX_HOPS",
    "Filter",
    "SessionLost",
    "WorkbooksClient",
    "call_of",
    "raise_for",
    "redact",
    "retry_after",
]
