"""Constant Contact's OAuth2 tokens: granted at the token endpoint, refreshed before expiry and after a 401.

Constant Contact calls need a bearer access token that lives a day; the refresh token (granted with
the ``offline_access`` scope by `listsync auth constant-contact`, ``authorize.py``) buys new ones, and
each refresh answers a new refresh token that retires the old. ``TokenEndpoint`` is the one place that
asks the authorization server for a grant (a code exchange or a refresh) and reads its answer.
``TokenKeeper`` hands the client a live access token, refreshing it ``REFRESH_MARGIN`` before its
expiry or when the API answered 401 for it, one refresh at a time however many calls wait; every new
grant is saved to the store before it is used, so a crash never strands a rotated refresh token.

A refresh token refused as ``invalid_grant`` may have been rotated by another listsync process using
the same grant (a `listsync apply` beside the service): the keeper then takes the grant that process
saved, if the store holds a newer one. Otherwise (revoked, expired, unused for too long) it is a
``PermanentError`` that says to run `listsync auth constant-contact` again.

Where tokens live is the ``engine.contract.TokenStore`` the engine hands over (``AdapterContext.tokens``:
the rule set side's row in the state store). Tokens and the client secret never reach a repr, a log
line or an error message.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping

import httpx
import msgspec

from adapters.constantcontact.errors import AUTH_HINT, vendor_message
from adapters.constantcontact.wire import TokenGrant
from engine.contract import OAuthTokens, TokenStore
from engine.errors import PermanentError, TransientError

AUTH_URL = "https://authz.constantcontact.com/oauth2/default/v1"
AUTHORIZE_PATH = "/authorize"
TOKEN_PATH = "/token"
# A loopback URI, so `listsync auth constant-contact` can catch the browser's redirect itself
# (RFC 8252 section 7.3); the application must register it exactly, port and path included.
REDIRECT_URI = "http://localhost:8765/callback"
REFRESH_MARGIN = 300.0  # seconds before expiry a token is refreshed, so no call carries a dying one
NOT_AUTHORISED = f"no Constant Contact authorisation is stored for this rule set; {AUTH_HINT}"


class GrantRefused(PermanentError):
    """The authorization server refused a grant request; ``error`` is its RFC 6749 code."""

    def __init__(self, message: str, *, error: str | None) -> None:
        super().__init__(message)
        self.error = error


class TokenEndpoint:
    """The authorization server's ``/token`` for one application, reached through ``http`` (an
    AsyncClient on the authorization server's base URL); the client authenticates with HTTP Basic,
    as Constant Contact documents."""

    def __init__(
        self,
        http: httpx.AsyncClient,
        *,
        client_id: str,
        client_secret: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._http = http
        self._client = httpx.BasicAuth(client_id, client_secret)
        self.secret = client_secret
        self.clock = clock

    def __repr__(self) -> str:
        return f"TokenEndpoint({self._http.base_url!s})"

    async def grant(self, form: Mapping[str, str], *, asked: str, keep_refresh: str = "") -> OAuthTokens:
        """The grant the server answers ``form`` with. ``asked`` names what was presented, for the
        refusal's message; ``keep_refresh`` stands in when the answer carries no refresh token."""
        try:
            response = await self._http.post(TOKEN_PATH, data=dict(form), auth=self._client)
        except httpx.RequestError as lost:
            raise TransientError(
                f"Constant Contact's token endpoint could not be reached ({type(lost).__name__})"
            ) from None
        if response.status_code in (400, 401):
            error, said = vendor_message(response)
            for secret in (self.secret, *(form.get(k) for k in ("refresh_token", "code", "code_verifier"))):
                said = said.replace(secret, "***") if secret else said
            what = "the client id or secret" if error == "invalid_client" else asked
            raise GrantRefused(
                f"Constant Contact's authorization server refused {what} ({error}: {said}); {AUTH_HINT}",
                error=error,
            )
        if response.status_code != 200:
            raise TransientError(f"Constant Contact's token endpoint answered {response.status_code}")
        try:
            grant = msgspec.json.decode(response.content, type=TokenGrant)
        except (msgspec.DecodeError, msgspec.ValidationError):
            raise TransientError(
                "Constant Contact's token endpoint answered something that is not a token grant"
            ) from None
        refresh = grant.refresh_token or keep_refresh
        if not refresh:
            raise PermanentError(
                "Constant Contact granted no refresh token: the authorisation must ask for the "
                f"offline_access scope; {AUTH_HINT}"
            )
        return OAuthTokens(grant.access_token, refresh, self.clock() + grant.expires_in)


class TokenKeeper:
    """Live access tokens for one rule set's grant, from ``store``, refreshed at ``endpoint``."""

    def __init__(self, endpoint: TokenEndpoint, store: TokenStore) -> None:
        self._endpoint, self._store = endpoint, store
        self._tokens: OAuthTokens | None = None
        self._lock = asyncio.Lock()

    def __repr__(self) -> str:
        return f"TokenKeeper({self._store!r})"

    @property
    def secrets(self) -> tuple[str, ...]:
        """What must never appear in a message: the client secret and the current tokens."""
        tokens = self._tokens
        held = () if tokens is None else (tokens.access_token, tokens.refresh_token)
        return (self._endpoint.secret, *held)

    async def access_token(self) -> str:
        async with self._lock:
            tokens = await self._current()
            if self._expiring(tokens):
                tokens = await self._refresh(tokens)
            self._tokens = tokens
            return tokens.access_token

    async def refreshed(self, rejected: str) -> str:
        """A new access token after the API refused ``rejected`` (unless another call refreshed already)."""
        async with self._lock:
            tokens = await self._current()
            if tokens.access_token == rejected:
                tokens = await self._refresh(tokens)
            self._tokens = tokens
            return tokens.access_token

    async def _current(self) -> OAuthTokens:
        tokens = self._tokens or await self._store.load()
        if tokens is None:
            raise PermanentError(NOT_AUTHORISED)
        return tokens

    def _expiring(self, tokens: OAuthTokens) -> bool:
        return tokens.expires_at - REFRESH_MARGIN <= self._endpoint.clock()

    async def _refresh(self, tokens: OAuthTokens) -> OAuthTokens:
        try:
            return await self._renew(tokens)
        except GrantRefused as refused:
            if refused.error != "invalid_grant":
                raise
            stored = await self._store.load()
            if stored is None or stored.refresh_token == tokens.refresh_token:
                raise
        # Another process rotated the grant and saved it: that one is live.
        return await self._renew(stored) if self._expiring(stored) else stored

    async def _renew(self, tokens: OAuthTokens) -> OAuthTokens:
        form = {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}
        renewed = await self._endpoint.grant(
            form, asked="the stored refresh token", keep_refresh=tokens.refresh_token
        )
        await self._store.save(renewed)
        return renewed
