"""The Workbooks CRM API emulator as an ASGI app: transport, authentication, routing and rate limiting.

Workbooks publishes no OpenAPI document; this follows `shared/reference/workbooks-api.md`. Routes
stay thin: they parse parameters (query string and form body merged, `_method` honoured), check
credentials, and hand a `Query` or a batch of `WriteObject`s to `WorkbooksState`.
Choices where the reference is UNSURE:
- A missing `api_version`/`_api_version` with `api_key`, or `client=api`/`api_version=1` missing on
  login, is 406 (bad params). An unknown key is 401 `unrecognised_api_key`.
- A change in session mode without the right `_authenticity_token` is 403 `invalid_authenticity_token`.
- An unknown or expired session cookie gets 302 to `/login_required.api`, which answers 401 with
  `failure_reason` `no_session_found` or `session_expired`; no cookie and no key at all is that 401 at once.
- `logout.api` answers 302 to `/logout_complete.api` (200).
- Rate limiting answers 302 to `/delay.api?ticket=...` and runs the request only when that URL is
  fetched (a client that does not follow loses the call). Following turns a PUT into a GET, so the
  ticket carries the whole request. Login answers also carry `"success": true`.
Faults any HTTP API can have (500, 503, timeouts, drops, cut JSON, latency) come from the shared fault
layer in front of the app (`adapters.emulation`), with Workbooks' error bodies from `emulator_control`.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from adapters.emulation.faults import Faults
from adapters.emulation.layer import faulted_app
from adapters.workbooks.emulator_control import JSON_TYPE, failure, vendor
from adapters.workbooks.emulator_state import (
    Filter,
    Query,
    Session,
    WorkbooksError,
    WorkbooksState,
    WriteObject,
)

Params = list[tuple[str, str]]
COOKIE = "Workbooks-Session"
TRUTHY = ("true", "1", "yes", "t", "on", "y")


@dataclass
class Knobs:
    """Rate limiting, changeable while the app runs. Random choices come from `state.random`."""

    rate_limit_share: float = 0.0  # share of calls redirected to the delaying URL
    rate_limit_budget: int | None = None  # calls per period before every further call is redirected
    rate_limit_period: float = 1.0
    rate_limit_hops: int = 1  # 302s in a chain before the delaying URL answers for real
    rate_limit_delay: float = 0.0  # seconds the delaying URL waits before answering
    clock: Callable[[], float] = time.monotonic


def _json(body: Any, status: int = 200) -> Response:
    return Response(json.dumps(body), status_code=status, media_type=JSON_TYPE)


def _first(params: Params, *names: str) -> str | None:
    return next((value for key, value in params if key in names), None)


def _array(params: Params, name: str) -> list[str]:
    return [value for key, value in params if key in (f"{name}[]", name)]


def field_name(wire: str) -> str:
    """A write's wire key `org_lead_party[main_location][email]` as `org_lead_party[main_location[email]]`."""
    parts: list[str] = re.findall(r"[^\[\]]+", wire)
    return parts[0] + "".join(f"[{p}" for p in parts[1:]) + "]" * (len(parts) - 1)


def _int(text: str | None, name: str) -> int | None:
    try:
        return None if text in (None, "") else int(text)
    except ValueError as exc:
        raise WorkbooksError(406, "invalid_parameter", f"{name} must be an integer") from exc


def parse_filters(params: Params) -> list[Filter]:
    fields, ops, values = _array(params, "_ff"), _array(params, "_ft"), _array(params, "_fc")
    if not len(fields) == len(ops) == len(values):
        raise WorkbooksError(406, "invalid_filter", "_ff[], _ft[] and _fc[] must have one entry per filter")
    filters = [Filter(f, o, v) for f, o, v in zip(fields, ops, values, strict=True)]
    if (text := _first(params, "_filter_json")) is not None:
        try:
            filters += [Filter(str(f), str(o), "" if v is None else str(v)) for f, o, v in json.loads(text)]
        except (ValueError, TypeError) as exc:
            raise WorkbooksError(
                406, "invalid_filter", "_filter_json must be [[field, op, value], ...]"
            ) from exc
    return filters


def parse_query(params: Params) -> Query:
    sorts, dirs = _array(params, "_sort"), _array(params, "_dir")
    columns = _array(params, "_select_columns")
    skip = _first(params, "_skip_total_rows", "__skip_total_rows") or ""
    return Query(
        filters=parse_filters(params),
        match=_first(params, "_fm") or "and",
        start=_int(_first(params, "_start"), "_start"),
        limit=_int(_first(params, "_limit"), "_limit"),
        sort=[
            (name, (dirs[i] if i < len(dirs) else "ASC").upper() == "DESC") for i, name in enumerate(sorts)
        ],
        columns=columns or None,
        skip_total=skip.lower() in TRUTHY,
    )


def parse_objects(params: Params) -> list[WriteObject]:
    """The square arrays of a PUT: every `key[]` once per object, in the same order."""
    arrays: dict[str, list[str]] = {}
    for key, value in params:
        if key.endswith("[]") and (key == "__method[]" or not key.startswith("_")):
            arrays.setdefault(key, []).append(value)
    methods = arrays.pop("__method[]", [])
    ids, locks = arrays.pop("id[]", None), arrays.pop("lock_version[]", None)
    if not methods or ids is None or locks is None:
        raise WorkbooksError(406, "invalid_parameters", "A PUT needs __method[], id[] and lock_version[]")
    if any(len(values) != len(methods) for values in (ids, locks, *arrays.values())):
        raise WorkbooksError(406, "invalid_parameters", "Every key[] must appear once per object")
    objects = []
    for i, method in enumerate(methods):
        fields = {field_name(k[:-2]): None if v[i] == ":null_value:" else v[i] for k, v in arrays.items()}
        fields = {k: v for k, v in fields.items() if v != ":no_value:"}
        record_id, lock = _int(ids[i], "id[]") or 0, _int(locks[i], "lock_version[]") or 0
        objects.append(WriteObject(method.upper(), record_id, lock, fields))
    return objects


class _Emulator:
    def __init__(self, state: WorkbooksState, knobs: Knobs) -> None:
        self.state, self.knobs = state, knobs
        self.tickets: dict[str, tuple[int, Callable[[], Awaitable[Response]]]] = {}
        self.window_start, self.window_calls = knobs.clock(), 0

    async def endpoint(self, request: Request) -> Response:
        path = request.path_params["path"]
        if not path.endswith(".api"):
            return failure(WorkbooksError(404, "not_found", f"/{path} is not an API path"))
        controller = path.removesuffix(".api").strip("/")
        try:
            params = await self._params(request)
        except WorkbooksError as error:
            return failure(error)
        verb = request.method
        if verb == "POST" and (override := _first(params, "_method")):
            verb = override.upper()
        if controller == "delay":
            return await self._delayed(_first(params, "ticket") or "")
        if self._rate_limited():
            return self._defer(
                lambda: self._answer(request, controller, verb, params), self.knobs.rate_limit_hops
            )
        return await self._answer(request, controller, verb, params)

    async def _params(self, request: Request) -> Params:
        params: Params = list(request.query_params.multi_items())
        body = await request.body()
        if body:
            kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
            if kind != "application/x-www-form-urlencoded" and (kind or request.method != "GET"):
                raise WorkbooksError(
                    406, "unsupported_content_type", "Send application/x-www-form-urlencoded"
                )
            params += parse_qsl(body.decode(), keep_blank_values=True)
        return params

    def _rate_limited(self) -> bool:
        knobs = self.knobs
        if knobs.clock() - self.window_start >= knobs.rate_limit_period:
            self.window_start, self.window_calls = knobs.clock(), 0
        self.window_calls += 1
        if knobs.rate_limit_budget is not None and self.window_calls > knobs.rate_limit_budget:
            return True
        return bool(knobs.rate_limit_share) and self.state.random.random() < knobs.rate_limit_share

    def _defer(self, run: Callable[[], Awaitable[Response]], hops: int) -> Response:
        ticket = secrets.token_hex(8)
        self.tickets[ticket] = (hops, run)
        return RedirectResponse(f"/delay.api?ticket={ticket}", status_code=302)

    async def _delayed(self, ticket: str) -> Response:
        if ticket not in self.tickets:
            return failure(WorkbooksError(404, "not_found", "Unknown or used delay ticket"))
        hops, run = self.tickets.pop(ticket)
        if hops > 1:
            return self._defer(run, hops - 1)
        if self.knobs.rate_limit_delay:
            await asyncio.sleep(self.knobs.rate_limit_delay)
        return await run()

    async def _answer(self, request: Request, controller: str, verb: str, params: Params) -> Response:
        try:
            if controller == "login":
                return self._login(request, params)
            if controller == "logout":
                self.state.sessions.pop(request.cookies.get(COOKIE, ""), None)
                response: Response = RedirectResponse("/logout_complete.api", status_code=302)
                response.delete_cookie(COOKIE, path="/")
                return response
            if controller == "logout_complete":
                return _json({"success": True})
            if controller == "login_required":
                reason = _first(params, "failure_reason") or "no_session_found"
                raise WorkbooksError(401, reason, "Please log in again")
            session = self._authenticate(request, verb, params)
            if isinstance(session, Response):
                return session
            return self._dispatch(controller, verb, params, session)
        except WorkbooksError as error:
            return failure(error)

    def _login(self, request: Request, params: Params) -> Response:
        if not request.headers.get("user-agent", "").strip():
            raise WorkbooksError(403, "user_agent_required", "A User-Agent header is required")
        if _first(params, "client") != "api" or _first(params, "api_version", "_api_version") != "1":
            raise WorkbooksError(406, "invalid_parameters", "login needs client=api and api_version=1")
        session = self.state.login(
            username=_first(params, "username") or "",
            password=_first(params, "password") or "",
            api_key=_first(params, "api_key") or "",
        )
        db, user = self.state.database, session.user
        body: dict[str, Any] = {
            "success": True,
            "session_id": session.session_id,
            "authenticity_token": session.authenticity_token,
            "database_name": db["name"],
            "logical_database_id": db["id"],
            "default_database_id": db["id"],
            "databases": [db],
            "database_instance_id": 1,
            "user_id": user.user_id,
            "login_name": user.login_name,
            "person_name": user.person_name,
            "api_version": 1,
            "version": "7.4.0",
            "timezone": _first(params, "_time_zone") or "UTC",
        }
        if (_first(params, "_fast_login") or "").lower() not in TRUTHY:
            body["my_queues"] = {"Private::Crm::PersonQueue": 3}
        response = _json(body)
        response.headers.append("set-cookie", f"{COOKIE}={session.session_id}; path=/; secure; HttpOnly")
        return response

    def _authenticate(self, request: Request, verb: str, params: Params) -> Session | Response | None:
        if (api_key := _first(params, "api_key")) is not None:
            self.state.check_api_key(api_key)
            if _first(params, "api_version", "_api_version") is None:
                raise WorkbooksError(
                    406, "api_version_required", "Send api_version (or _api_version) with api_key"
                )
            return None
        cookie = request.cookies.get(COOKIE)
        if cookie is None:
            raise WorkbooksError(
                401, "no_session_found", "Send api_key, or log in and send the session cookie"
            )
        try:
            session = self.state.session(cookie)
        except WorkbooksError as error:
            return RedirectResponse(f"/login_required.api?failure_reason={error.reason}", status_code=302)
        if verb != "GET" and _first(params, "_authenticity_token") != session.authenticity_token:
            raise WorkbooksError(
                403, "invalid_authenticity_token", "Changes need the session's _authenticity_token"
            )
        return session

    def _dispatch(self, controller: str, verb: str, params: Params, session: Session | None) -> Response:
        if controller == "metadata/types" or controller.endswith("/metadata"):
            if verb != "GET":
                raise WorkbooksError(405, "method_not_allowed", "metadata is read-only")
            if controller == "metadata/types":
                types = self.state.describe_types(_array(params, "class_names"))
            else:
                types = [self.state.spec(controller.removesuffix("/metadata")).describe()]
            if columns := _array(params, "_select_columns"):
                types = [{k: v for k, v in t.items() if k in columns} for t in types]
            return _json({"success": True, "total": len(types), "data": types})
        if verb == "GET":
            return _json(self.state.read(controller, parse_query(params)))
        if verb == "PUT":
            self.state.spec(controller)
            per_object = (_first(params, "_per_object_transactions") or "").lower() in TRUTHY
            user = session.user.person_name if session else "Api User"
            objects = parse_objects(params)
            match = _first(params, "_fm") or "and"
            body = self.state.write(
                controller,
                objects,
                working_set=parse_filters(params),
                match=match,
                per_object=per_object,
                user=user,
            )
            return _json(body)
        raise WorkbooksError(405, "method_not_allowed", f"{verb} is not supported: use GET or PUT")


def create_app(
    state: WorkbooksState | None = None, *, knobs: Knobs | None = None, faults: Faults | None = None
) -> Starlette:
    """An ASGI app serving `state` (a fresh empty database if None) behind `faults` (none if None),
    exposed with the knobs on `app.state` as `workbooks`, `knobs`, `faults` and `control`."""
    emulator = _Emulator(state or WorkbooksState(), knobs or Knobs())
    methods = ["GET", "PUT", "POST", "DELETE", "PATCH"]
    routes = [Route("/{path:path}", emulator.endpoint, methods=methods)]
    return faulted_app(routes, vendor(emulator.state), faults, workbooks=emulator.state, knobs=emulator.knobs)
