"""OAuth grants in the state store, as the engine hands them to the Constant Contact adapter.

The store keeps one grant per rule set side (`SideTokens`); the session gives every adapter its side's.
Through a real session and store: an access token close to its expiry is refreshed before a call, one
the API refuses (401) is refreshed and the call repeated, and each refreshed grant is in the state store
at once; a refused refresh token stops the run with the command that fixes it; a grant another process
rotated meanwhile is taken from the store instead of failing; no token reaches a log line or an error.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import httpx
import pytest

from adapters.constantcontact.emulator import create_app
from adapters.constantcontact.emulator_state import ConstantContactState
from adapters.constantcontact.oauth import TokenEndpoint, TokenKeeper
from engine.budgets import Budget
from engine.contract import OAuthTokens
from engine.errors import PermanentError
from engine.http import budgeted_client
from engine.planning import make_plan
from engine.rules_loading import load_rules
from engine.session import open_sync
from engine.store import SideTokens, StateStore
from tests.adapters.test_constantcontact_contract import SCOPES, account
from tests.test_auth_constantcontact import RULES, STATE

AUTH = "http://emulator/oauth2/default/v1"


def issued(state: ConstantContactState, *, lives: float) -> OAuthTokens:
    grant = state.grants.issue(SCOPES)
    return OAuthTokens(str(grant["access_token"]), str(grant["refresh_token"]), time.time() + lives)


def prepared(root: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[ConstantContactState, Path]:
    """An emulated account, and a rule set "cc" syncing files to it, its state in ``root/STATE``."""
    state = account()
    monkeypatch.setenv("CC_CLIENT_SECRET", state.knobs.client_secret)
    (root / "crm.jsonl").write_text("")
    (root / "campaigns.jsonl").write_text('{"key": "C1", "name": "Spring", "status": "open"}\n')
    rules = root / "rules.toml"
    rules.write_text(RULES.format(url="http://emulator", redirect="http://127.0.0.1:8765/callback"))
    return state, rules


async def plan_once(rules: Path, state: ConstantContactState) -> None:
    extras = {"esp_transport": httpx.ASGITransport(app=create_app(state))}
    async with open_sync(load_rules(rules), extras=extras) as sync:
        await make_plan(sync)


async def saved(root: Path, rule_set: str = "cc") -> OAuthTokens | None:
    async with await StateStore.open(root / STATE) as store:
        return await store.load_tokens(rule_set, "esp", "constant-contact")


async def save(root: Path, tokens: OAuthTokens, rule_set: str = "cc") -> None:
    async with await StateStore.open(root / STATE) as store:
        await SideTokens(store, rule_set, "esp", "constant-contact").save(tokens)


@pytest.mark.asyncio
async def test_grants_are_kept_per_rule_set_side_and_adapter_and_outlive_the_store(tmp_path: Path) -> None:
    a, b = OAuthTokens("a-access", "a-refresh", 1.0), OAuthTokens("b-access", "b-refresh", 2.0)
    async with await StateStore.open(tmp_path / STATE) as store:
        first = SideTokens(store, "first", "esp", "constant-contact")
        assert await first.load() is None
        await first.save(a)
        await SideTokens(store, "second", "esp", "constant-contact").save(b)
        await first.save(OAuthTokens("a-access-2", "a-refresh-2", 3.0))  # a refresh replaces the row
        assert "a-access" not in repr(first)
    async with await StateStore.open(tmp_path / STATE) as store:
        assert await store.load_tokens("first", "esp", "constant-contact") == OAuthTokens(
            "a-access-2", "a-refresh-2", 3.0
        )
        assert await store.load_tokens("second", "esp", "constant-contact") == b
        assert await store.load_tokens("first", "crm", "constant-contact") is None
        assert await store.load_tokens("first", "esp", "mailchimp") is None


@pytest.mark.asyncio
async def test_a_grant_near_its_expiry_and_one_refused_with_401_are_refreshed_into_the_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, rules = prepared(tmp_path, monkeypatch)
    old = issued(state, lives=60)  # inside the five-minute margin
    await save(tmp_path, old)

    await plan_once(rules, state)
    first = await saved(tmp_path)
    assert first is not None and first.access_token != old.access_token
    assert state.grants.valid(first.access_token) and first.expires_at > time.time() + 86_000
    assert old.refresh_token not in state.grants.refresh and first.refresh_token in state.grants.refresh

    state.grants.expire_access()  # the store still thinks it has a day: only the 401 tells
    await plan_once(rules, state)  # it completes: the refused call was repeated with the new token
    second = await saved(tmp_path)
    assert second is not None and second.access_token != first.access_token
    assert state.grants.valid(second.access_token) and second.refresh_token in state.grants.refresh


@pytest.mark.asyncio
async def test_a_revoked_grant_stops_the_run_with_the_command_to_run_and_no_token_anywhere(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    state, rules = prepared(tmp_path, monkeypatch)
    tokens = issued(state, lives=86_400)
    await save(tmp_path, tokens)
    state.grants.revoke_all()
    with pytest.raises(PermanentError) as raised:
        await plan_once(rules, state)
    message = str(raised.value)
    assert "invalid_grant" in message and "the stored refresh token" in message
    assert "run `listsync auth constant-contact RULES` with this rule file" in message
    shown = message + caplog.text
    for secret in (tokens.access_token, tokens.refresh_token, state.knobs.client_secret):
        assert secret not in shown
    assert await saved(tmp_path) == tokens  # nothing better to keep


@pytest.mark.asyncio
async def test_no_stored_grant_says_to_run_listsync_auth(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state, rules = prepared(tmp_path, monkeypatch)
    await save(tmp_path, issued(state, lives=86_400), rule_set="another")  # not this rule set's
    with pytest.raises(PermanentError, match="no Constant Contact authorisation is stored for this rule set"):
        await plan_once(rules, state)


@pytest.mark.asyncio
async def test_a_grant_rotated_by_another_process_is_taken_from_the_store(tmp_path: Path) -> None:
    state = account()
    async with await StateStore.open(tmp_path / STATE) as store:
        tokens = SideTokens(store, "cc", "esp", "constant-contact")
        await tokens.save(issued(state, lives=86_400))
        auth = budgeted_client(
            "http://emulator/oauth2/default/v1",
            Budget("cc"),
            transport=httpx.ASGITransport(app=create_app(state)),
        )
        async with auth:
            endpoint = TokenEndpoint(
                auth, client_id=state.knobs.client_id, client_secret=state.knobs.client_secret
            )
            service, apply = TokenKeeper(endpoint, tokens), TokenKeeper(endpoint, tokens)
            first = await service.access_token()
            assert await apply.access_token() == first  # both hold the same grant
            state.grants.expire_access()
            renewed = await service.refreshed(first)  # rotates: the grant's refresh token is spent
            assert await apply.refreshed(first) == renewed  # refused, then found in the store
            state.grants.revoke_all()
            with pytest.raises(PermanentError, match="listsync auth constant-contact"):
                await apply.refreshed(renewed)
