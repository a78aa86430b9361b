"""Constant Contact's OAuth2 tokens: kept in a token store, refreshed before they expire and after a 401.

Constant Contact calls need a bearer access token that lives a day; the refresh token (granted with
the ``offline_access`` scope by `listsync auth constant-contact`) buys new ones, and each refresh
answers a new refresh token that replaces the old. ``TokenKeeper`` hands the client a live access
token, refreshing it ``REFRESH_MARGIN`` before its expiry or when the API answered 401 for it, one
refresh at a time however many calls wait; every new grant is saved to the store before it is used,
so a crash never strands a rotated refresh token. A refused refresh token (revoked, expired, or
rotated by another process) is a ``PermanentError`` that says to run `listsync auth constant-contact`.

Where tokens live is the ``engine.contract.TokenStore`` the engine hands over (``AdapterContext.tokens``),
else ``FileTokenStore``: a JSON file readable by its owner only. Tokens and the client secret never
reach a repr, a log line or an error message.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import msgspec

from adapters.constantcontact.errors import AUTH_HINT, vendor_message
from adapters.constantcontact.wire import TokenGrant
from engine.contract import OAuthTokens, TokenStore
from engine.errors import PermanentError, TransientError

AUTH_URL = "https://authz.constantcontact.com/oauth2/default/v1"
TOKEN_PATH = "/token"
REFRESH_MARGIN = 300.0  # seconds before expiry a token is refreshed, so no call carries a dying one


class _Stored(msgspec.Struct, frozen=True):
    access_token: str
    refresh_token: str
    expires_at: float


class FileTokenStore:
    """A token store in one JSON file, written atomically with mode 0600."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __repr__(self) -> str:
        return f"FileTokenStore({str(self.path)!r})"

    async def load(self) -> OAuthTokens | None:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            stored = msgspec.json.decode(data, type=_Stored)
        except msgspec.DecodeError:
            raise PermanentError(f"the token file {self.path} is not readable; {AUTH_HINT}") from None
        return OAuthTokens(stored.access_token, stored.refresh_token, stored.expires_at)

    async def save(self, tokens: OAuthTokens) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        temporary = self.path.with_suffix(".tmp")
        body = msgspec.json.encode(_Stored(tokens.access_token, tokens.refresh_token, tokens.expires_at))
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "wb") as out:
            out.write(body)
        temporary.replace(self.path)


class TokenKeeper:
    """Live access tokens for one application's grant, from ``store``, refreshed through ``http``
    (an AsyncClient on the authorization server's base URL)."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        store: TokenStore,
        *,
        client_id: str,
        client_secret: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http, self._store = http, store
        self._client = httpx.BasicAuth(client_id, client_secret)
        self._secret = client_secret
        self._clock = clock
        self._tokens: OAuthTokens | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"TokenKeeper({self._store!r})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never appear in a message: the client secret and the current tokens."""
        tokens = self._tokens
        return (self._secret,) + (() if tokens is None else (tokens.access_token, tokens.refresh_token))

    async def access_token(self) -> str:
        async with self._lock:
            tokens = self._tokens or await self._store.load()
            if tokens is None:
                raise PermanentError(f"no Constant Contact authorisation is stored; {AUTH_HINT}")
            if tokens.expires_at - REFRESH_MARGIN <= self._clock():
                tokens = await self._refresh(tokens)
            self._tokens = tokens
            return tokens.access_token

    async def refreshed(self, rejected: str) -> str:
        """A new access token after the API refused ``rejected`` (unless another call refreshed already)."""
        async with self._lock:
            tokens = self._tokens or await self._store.load()
            if tokens is None:
                raise PermanentError(f"no Constant Contact authorisation is stored; {AUTH_HINT}")
            if tokens.access_token == rejected:
                tokens = await self._refresh(tokens)
            self._tokens = tokens
            return tokens.access_token

    async def _refresh(self, tokens: OAuthTokens) -> OAuthTokens:
        form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
        where = f"POST {self._http.base_url.path.rstrip('/')}{TOKEN_PATH}"
        try:
            response = await self._http.post(TOKEN_PATH, data=form, auth=self._client)
        except httpx.InvalidURL:  # a redirect to a Location httpx cannot read
            raise PermanentError(
                f"Constant Contact's authorization server redirected {where} to an unusable URL; "
                "check the adapter's auth_url"
            ) from None
        except httpx.RequestError as lost:
            raise TransientError(
                f"refreshing the Constant Contact token ({where}) failed in transit ({type(lost).__name__})"
            ) from None
        if response.status_code in (400, 401):
            error, said = vendor_message(response)
            what = "the client id or secret" if error == "invalid_client" else "the stored refresh token"
            raise PermanentError(
                f"Constant Contact's authorization server refused {what} on {where} ({error}: {said}); "
                f"{AUTH_HINT}"
            )
        if response.status_code != 200:
            raise TransientError(
                f"refreshing the Constant Contact token answered {response.status_code} on {where}"
            )
        try:
            grant = msgspec.json.decode(response.content, type=TokenGrant)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise TransientError(
                f"the Constant Contact token endpoint's answer to {where} was not a token grant"
            ) from None
        renewed = OAuthTokens(
            grant.access_token, grant.refresh_token or tokens.refresh_token, self._clock() + grant.expires_in
        )
        await self._store.save(renewed)
        return renewed
