"""The emulated authorization server's grants: codes, access tokens that expire, refresh tokens.

Constant Contact's OAuth2 server (``authz.constantcontact.com/oauth2/default/v1``) issues a code at
``/authorize`` (single use, five minutes), exchanges it at ``/token`` for an access token (a day) and,
with the ``offline_access`` scope, a refresh token; a refresh answers a new pair and retires the old
refresh token. Errors are the server's ``{"error", "error_description"}`` bodies. This module keeps
that bookkeeping for ``emulator_oauth.py``; through it tests revoke grants, expire tokens, register
redirect URIs and play a person who denies access.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from adapters.constantcontact.emulator_state import ConstantContactState

CODE_TTL = 300.0
SCOPES = frozenset(
    {"contact_data", "campaign_data", "account_read", "account_update", "billing_data", "offline_access"}
)
_LOOPBACK = frozenset({"localhost", "127.0.0.1", "::1"})


class GrantError(Exception):
    """An OAuth error: ``error`` is the RFC 6749 code, rendered with its HTTP status."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(description)
        self.status, self.error, self.description = status, error, description


@dataclass
class _Code:
    redirect_uri: str
    scope: str
    expires: float
    challenge: str | None


class Grants:
    def __init__(self, state: ConstantContactState) -> None:
        self._state = state
        self._codes: dict[str, _Code] = {}
        self.access: dict[str, float] = {}  # access token -> expiry (state clock)
        self.refresh: dict[str, str] = {}  # live refresh token -> its scope
        self.registered: frozenset[str] | None = None  # the app's redirect URIs; None: any loopback one
        self.consent = True  # whether the person at the consent page allows the application

    def registered_redirect(self, redirect_uri: str) -> bool:
        if self.registered is not None:
            return redirect_uri in self.registered
        return urlsplit(redirect_uri).hostname in _LOOPBACK

    def authorize(self, redirect_uri: str, scope: str, challenge: str | None) -> str:
        code = self._state.token()
        self._codes[code] = _Code(redirect_uri, scope, self._state.clock() + CODE_TTL, challenge)
        return code

    def exchange(self, code: str, redirect_uri: str, verifier: str | None) -> dict[str, object]:
        found = self._codes.pop(code, None)
        if found is None or found.expires < self._state.clock():
            raise GrantError(400, "invalid_grant", "The authorization code is invalid or has expired.")
        if found.redirect_uri != redirect_uri:
            raise GrantError(
                400, "invalid_grant", "The redirect_uri does not match the authorization request."
            )
        if found.challenge is not None and (verifier is None or _s256(verifier) != found.challenge):
            raise GrantError(
                400, "invalid_grant", "PKCE verification failed for code challenge method 'S256'."
            )
        return self.issue(found.scope)

    def refreshed(self, refresh_token: str) -> dict[str, object]:
        scope = self.refresh.pop(refresh_token, None)
        if scope is None:
            raise GrantError(400, "invalid_grant", "The refresh token is invalid or expired.")
        return self.issue(scope)

    def revoke_all(self) -> None:
        """What a user removing the app's access does: every token stops working."""
        self.access.clear()
        self.refresh.clear()

    def expire_access(self) -> None:
        for token in self.access:
            self.access[token] = self._state.clock() - 1

    def valid(self, access_token: str) -> bool:
        expires = self.access.get(access_token)
        return expires is not None and expires > self._state.clock()

    def issue(self, scope: str) -> dict[str, object]:
        ttl = self._state.knobs.access_ttl
        access = self._state.token()
        self.access[access] = self._state.clock() + ttl
        body: dict[str, object] = {
            "token_type": "Bearer",
            "expires_in": int(ttl),
            "access_token": access,
            "scope": scope,
        }
        if "offline_access" in scope.split():
            refresh = self._state.token()
            self.refresh[refresh] = scope
            body["refresh_token"] = refresh
        return body


def _s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode()).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
