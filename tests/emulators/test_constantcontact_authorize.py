"""The emulated authorization server's consent endpoint refuses what Constant Contact's refuses.

Who may not be redirected at all (an unknown client, an unregistered redirect URI) gets a page; a
request it can answer but not grant is sent back to the redirect URI with an RFC 6749 ``error`` and
the request's ``state``, and no code.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from adapters.constantcontact.emulator import create_app
from adapters.constantcontact.emulator_oauth import AUTHORIZE
from adapters.constantcontact.emulator_state import ConstantContactState, Knobs

REDIRECT = "http://127.0.0.1:8765/callback"
GOOD = {
    "client_id": Knobs().client_id,
    "redirect_uri": REDIRECT,
    "response_type": "code",
    "scope": "contact_data campaign_data offline_access",
    "state": "s-1",
}


async def consent(account: ConstantContactState, **changes: str | None) -> httpx.Response:
    params = {k: v for k, v in (GOOD | changes).items() if v is not None}
    transport = httpx.ASGITransport(app=create_app(account))
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as http:
        return await http.get(AUTHORIZE, params=params)


def answered(response: httpx.Response) -> dict[str, str]:
    assert response.status_code == 302
    where = urlsplit(response.headers["location"])
    assert f"{where.scheme}://{where.netloc}{where.path}" == REDIRECT
    return {k: v[0] for k, v in parse_qs(where.query).items()}


@pytest.mark.parametrize(
    ("changes", "error"),
    [
        ({"state": None}, "invalid_request"),
        ({"scope": "contact_data everything"}, "invalid_scope"),
        ({"scope": None}, "invalid_scope"),
        ({"code_challenge": "abc", "code_challenge_method": "plain"}, "invalid_request"),
        ({"response_type": "token"}, "unsupported_response_type"),
    ],
)
@pytest.mark.asyncio
async def test_a_request_it_cannot_grant_goes_back_with_an_error_and_no_code(
    changes: dict[str, str | None], error: str
) -> None:
    back = answered(await consent(ConstantContactState(), **changes))
    assert back["error"] == error and back["error_description"] and "code" not in back
    assert back.get("state", "") == ("" if "state" in changes else "s-1")


@pytest.mark.asyncio
async def test_a_person_who_denies_sends_access_denied_back() -> None:
    state = ConstantContactState()
    state.grants.consent = False
    back = answered(await consent(state))
    assert back["error"] == "access_denied" and back["state"] == "s-1" and "code" not in back


@pytest.mark.asyncio
async def test_only_registered_redirect_uris_are_redirected_to() -> None:
    state = ConstantContactState()
    assert "code" in answered(await consent(state))  # any loopback URI, until some are registered
    state.grants.registered = frozenset({"https://listsync.example.com/cb"})
    refused = await consent(state)
    assert refused.status_code == 400 and "not registered" in refused.text
    assert (await consent(state, redirect_uri="https://listsync.example.com/cb")).status_code == 302
    unknown = await consent(state, client_id="someone-else")
    assert unknown.status_code == 400 and "client_id" in unknown.text
