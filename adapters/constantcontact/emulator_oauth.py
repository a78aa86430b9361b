"""The emulated authorization server: ``/oauth2/default/v1/authorize`` and ``/oauth2/default/v1/token``.

The authorize endpoint consents at once (there is no person to ask; ``grants.consent = False`` plays
one who denies) and redirects to ``redirect_uri`` with ``code`` and ``state``, so a loopback
authorization flow can be tested end to end. As the real server does, it answers an unknown client or
an unregistered redirect URI with a page (never a redirect), and sends the browser back with an
``error`` for a request without ``state``, with a scope it does not know, or with a PKCE method other
than S256. Registered redirect URIs are any loopback one (as a desktop client registers them) unless
a test sets ``grants.registered``. The token endpoint takes the client's
credentials as HTTP Basic (``client_secret_basic``, as Constant Contact documents) or in the form, and
answers the grant of ``emulator_grants.py`` or an RFC 6749 error body.
"""

from __future__ import annotations

import base64
import binascii
from urllib.parse import parse_qsl, urlencode, urlsplit

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, RedirectResponse, Response

from adapters.constantcontact.emulator_grants import SCOPES, GrantError
from adapters.constantcontact.emulator_state import ConstantContactState

AUTHORIZE = "/oauth2/default/v1/authorize"
TOKEN = "/oauth2/default/v1/token"


async def authorize(state: ConstantContactState, request: Request) -> Response:
    params = request.query_params
    redirect = params.get("redirect_uri", "")
    if params.get("client_id") != state.knobs.client_id:
        return PlainTextResponse("Invalid client_id: the application is not known.", 400)
    if not state.grants.registered_redirect(redirect):
        return PlainTextResponse("The redirect_uri is not registered for this application.", 400)
    back = {"state": params.get("state", "")}
    refusal = _refusal(state, params)
    if refusal is not None:
        back |= {"error": refusal[0], "error_description": refusal[1]}
    else:
        challenge = params.get("code_challenge")
        back["code"] = state.grants.authorize(redirect, params.get("scope", ""), challenge)
    joiner = "&" if urlsplit(redirect).query else "?"
    return RedirectResponse(redirect + joiner + urlencode(back), 302)


def _refusal(state: ConstantContactState, params: QueryParams) -> tuple[str, str] | None:
    """Why the authorization server sends the browser back without a code, as (error, description)."""
    if params.get("response_type") != "code":
        return "unsupported_response_type", "response_type must be code."
    if not params.get("state"):
        return "invalid_request", "The authorization request must contain a 'state' parameter."
    scopes = set(params.get("scope", "").split())
    if not scopes or scopes - SCOPES:
        return "invalid_scope", "One or more scopes are not configured for the authorization server resource."
    if params.get("code_challenge") and params.get("code_challenge_method") != "S256":
        return "invalid_request", "The code_challenge_method must be S256."
    if not state.grants.consent:
        return "access_denied", "The resource owner or authorization server denied the request."
    return None


async def token(state: ConstantContactState, request: Request) -> Response:
    form = dict(parse_qsl((await request.body()).decode("utf-8", "replace")))
    client = _basic(request.headers.get("authorization", "")) or (
        form.get("client_id", ""),
        form.get("client_secret", ""),
    )
    if client != (state.knobs.client_id, state.knobs.client_secret):
        return _error(GrantError(401, "invalid_client", "Client authentication failed."))
    try:
        grant = form.get("grant_type")
        if grant == "authorization_code":
            body = state.grants.exchange(
                form.get("code", ""), form.get("redirect_uri", ""), form.get("code_verifier")
            )
        elif grant == "refresh_token":
            body = state.grants.refreshed(form.get("refresh_token", ""))
        else:
            raise GrantError(400, "unsupported_grant_type", f"The grant type {grant!r} is not supported.")
    except GrantError as refused:
        return _error(refused)
    return JSONResponse(body, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})


def _basic(header: str) -> tuple[str, str] | None:
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        user, _, password = base64.b64decode(encoded, validate=True).decode().partition(":")
    except (binascii.Error, UnicodeDecodeError):
        return None
    return user, password


def _error(refused: GrantError) -> Response:
    body = {"error": refused.error, "error_description": refused.description}
    return JSONResponse(body, refused.status, headers={"Cache-Control": "no-store"})
