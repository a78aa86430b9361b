"""`listsync auth constant-contact`: what Constant Contact's authorization code flow asks for.

The engine (`engine.auth_commands`) runs the flow: the ``state``, the browser, catching the redirect,
storing the grant. This module is the vendor's half, registered in the ``listsync.authorizers``
entry-point group: the consent URL, ``{auth_url}/authorize`` with the API key as ``client_id``, the
settings' ``redirect_uri``, ``response_type=code`` and the scopes listsync's calls need
(``contact_data``, ``campaign_data``) plus ``offline_access``, without which no refresh token is
granted; and the code's exchange at ``{auth_url}/token``, the client authenticated with its secret
(HTTP Basic), as Constant Contact's server flow documents.

PKCE: Constant Contact documents PKCE (``code_challenge``, S256) on these same endpoints, for public
clients. listsync holds its secret, and sends a challenge as well, as the OAuth 2.0 security best
practice (RFC 9700) advises every client: a code taken on its way back (another program on the
loopback port, a pasted address someone saw) is worth nothing without the verifier, which never
leaves this process.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from adapters.common import settings_of
from adapters.constantcontact.adapter import ConstantContactSettings
from adapters.constantcontact.oauth import AUTHORIZE_PATH, TokenEndpoint
from engine.contract import AdapterContext, OAuthTokens

SCOPES = ("contact_data", "campaign_data", "offline_access")


class ConstantContactAuthorizer:
    """The authorization code flow for one rule set's ``[esp.settings]``."""

    def __init__(self, settings: ConstantContactSettings | Any, context: AdapterContext) -> None:
        self._settings = settings_of(settings, ConstantContactSettings)
        self._context = context
        # Read now, so a missing secret stops the command before anyone signs in.
        self._secret = context.secret(self._settings.client_secret)
        self._verifier = secrets.token_urlsafe(64)  # 86 characters; PKCE allows 43 to 128
        self._http: httpx.AsyncClient | None = None

    def __repr__(self) -> str:
        return f"ConstantContactAuthorizer({self._settings.auth_url!r})"

    @property
    def redirect_uri(self) -> str:
        return self._settings.redirect_uri

    def authorization_url(self, state: str) -> str:
        digest = hashlib.sha256(self._verifier.encode()).digest()
        query = {
            "client_id": self._settings.client_id,
            "redirect_uri": self.redirect_uri,
            "response_type": "code",
            "scope": " ".join(SCOPES),
            "state": state,
            "code_challenge": base64.urlsafe_b64encode(digest).rstrip(b"=").decode(),
            "code_challenge_method": "S256",
        }
        return f"{self._settings.auth_url.rstrip('/')}{AUTHORIZE_PATH}?{urlencode(query, quote_via=quote)}"

    async def exchange(self, code: str) -> OAuthTokens:
        factory = self._context.http
        if factory is None:
            raise RuntimeError("the engine hands authorizers an HTTP client factory (AdapterContext.http)")
        if self._http is None:
            self._http = factory(self._settings.auth_url.rstrip("/"))
        endpoint = TokenEndpoint(self._http, client_id=self._settings.client_id, client_secret=self._secret)
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self.redirect_uri,
            "code_verifier": self._verifier,
        }
        return await endpoint.grant(form, asked="the authorization code (it works once, for 5 minutes)")

    async def aclose(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.aclose()
