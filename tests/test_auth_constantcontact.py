"""`listsync auth constant-contact RULES` end to end, over real loopback sockets.

The Constant Contact emulator (its authorization server and API) is served on one loopback port; the
command listens for the redirect on another, as it would on a person's machine. The "browser" is
httpx in a thread, started where the command would open a real one (``webbrowser.open``, under
``--open``) or, with ``--paste``, fed to the command's stdin: it follows the authorize URL to the
emulator's consent, which redirects back with ``code`` and ``state``. Then: what was stored (the
grant, in the state store, mode 0600), what was printed and logged (never a token or the code), that
a sync runs on the stored grant, and every way the command refuses, storing nothing.
"""

from __future__ import annotations

import logging
import os
import queue
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import anyio
import httpx
import pytest

from adapters.constantcontact.emulator import create_app
from adapters.constantcontact.emulator_state import ConstantContactState
from engine.applying import apply_plan
from engine.cli import main
from engine.contract import OAuthTokens
from engine.emulating import loopback_socket
from engine.planning import make_plan
from engine.rules_loading import load_rules
from engine.session import open_sync
from engine.store import StateStore
from tests.adapters.test_constantcontact_contract import account
from tests.emulators.serving import served
from tests.files_world import World, crm_person

STATE = Path("state/cc.sqlite3")  # the state store RULES names, relative to the rule file
RULES = """
name = "cc"
state = "state/cc.sqlite3"

[crm]
adapter = "files"
settings = {{ path = "crm.jsonl", campaigns = "campaigns.jsonl" }}

[esp]
adapter = "constant-contact"

[esp.settings]
client_id = "emulator-client-id"
client_secret = {{ env = "CC_CLIENT_SECRET" }}
api_url = "{url}"
auth_url = "{url}/oauth2/default/v1"
redirect_uri = "{redirect}"

[esp.limits]
calls = 100

[[fields]]
crm = "first_name"
esp = "first_name"

[campaigns]
integrated = ["*"]
"""


BROWSER = "browser"  # the name of the browser's threads, whose own log lines are not listsync's


@dataclass
class Browser:
    """Plays the person's browser: follows the authorize URL the command shows, in a thread.

    ``tamper`` may rewrite the redirect the emulator answers before the browser follows it;
    ``deliver`` receives that redirect instead of following it (the person copying it to paste)."""

    tamper: Callable[[str], str] = lambda location: location
    deliver: Callable[[str], None] | None = None
    visited: list[str] = field(default_factory=list)
    pages: list[httpx.Response] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def open(self, url: str) -> bool:
        thread = threading.Thread(target=self._visit, args=(url,), name=BROWSER, daemon=True)
        self.threads.append(thread)
        thread.start()
        return True

    def _visit(self, url: str) -> None:
        try:
            self.visited.append(url)
            with httpx.Client(timeout=10) as http:
                consent = http.get(url)
                assert consent.status_code == 302, consent.text
                location = self.tamper(consent.headers["location"])
                if self.deliver is not None:
                    self.deliver(location)
                else:
                    self.pages.append(http.get(location))
        except (httpx.HTTPError, AssertionError, KeyError) as failed:  # reported by join, not lost
            self.errors.append(failed)

    def join(self) -> None:
        for thread in self.threads:
            thread.join(timeout=10)
        assert not self.errors, self.errors


class Stdin:
    """A stdin a test pastes lines into; ``readline`` waits for the next one (EOF after ``close``)."""

    def __init__(self) -> None:
        self._lines: queue.Queue[str] = queue.Queue()

    def paste(self, text: str) -> None:
        self._lines.put(text + "\n")

    def close(self) -> None:
        self._lines.put("")

    def readline(self) -> str:
        try:
            return self._lines.get(timeout=30)
        except queue.Empty:
            return ""


def free_port() -> int:
    listener = loopback_socket("127.0.0.1", 0)
    try:
        return int(listener.getsockname()[1])
    finally:
        listener.close()


@contextmanager
def emulated(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, *, redirect: str | None = None
) -> Iterator[tuple[ConstantContactState, Path]]:
    """The emulator served on loopback, and a rule file pointing at it (redirect on a free port)."""
    state = account(activity_polls=0)  # imports finish at once: the sync below waits for none
    monkeypatch.setenv("CC_CLIENT_SECRET", state.knobs.client_secret)
    with served(create_app(state)) as url:
        world = World(tmp_path)
        world.write("crm.jsonl", [crm_person(f"p{n}@example.com") for n in range(3)])
        redirect = redirect or f"http://127.0.0.1:{free_port()}/callback"
        rules = tmp_path / "rules.toml"
        rules.write_text(RULES.format(url=url, redirect=redirect))
        yield state, rules


def stored(rules: Path) -> OAuthTokens | None:
    async def load() -> OAuthTokens | None:
        async with await StateStore.open(load_rules(rules).state_path) as store:
            return await store.load_tokens("cc", "esp", "constant-contact")

    return anyio.run(load, backend="asyncio")


def secrets_of(state: ConstantContactState, browser: Browser) -> list[str]:
    """Every token the emulator issued, the client secret, and the codes the browser carried."""
    codes = [
        code
        for url in browser.visited + [p.request.url.__str__() for p in browser.pages]
        for code in parse_qs(urlsplit(url).query).get("code", [])
    ]
    return [*state.grants.access, *state.grants.refresh, state.knobs.client_secret, *codes]


def test_the_loopback_flow_stores_the_grant_prints_no_secret_and_a_sync_runs_on_it(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    browser = Browser()
    monkeypatch.setattr("webbrowser.open", browser.open)
    with emulated(tmp_path, monkeypatch) as (state, rules):
        assert main(["auth", "constant-contact", str(rules), "--open"]) == 0
        browser.join()
        out, err = capsys.readouterr()

        [authorize] = browser.visited
        asked = {k: v[0] for k, v in parse_qs(urlsplit(authorize).query).items()}
        assert asked["response_type"] == "code" and asked["client_id"] == state.knobs.client_id
        assert asked["scope"].split() == ["contact_data", "campaign_data", "offline_access"]
        assert asked["code_challenge_method"] == "S256" and len(asked["state"]) >= 32
        assert asked["redirect_uri"].startswith("http://127.0.0.1:") and asked["redirect_uri"] in out
        assert authorize in out.replace("\n", "")
        [page] = browser.pages
        assert page.status_code == 200 and "close this tab" in page.text
        assert parse_qs(urlsplit(str(page.request.url)).query)["state"] == [asked["state"]]

        grant = stored(rules)
        assert grant is not None and state.grants.valid(grant.access_token)
        assert grant.refresh_token in state.grants.refresh
        assert os.stat(tmp_path / STATE).st_mode & 0o077 == 0
        logged = "\n".join(r.getMessage() for r in caplog.records if r.threadName != BROWSER)
        assert "POST" in logged  # the logs were captured: the token exchange is among them
        shown = out + err + logged + repr(grant)
        for secret in secrets_of(state, browser):
            assert secret not in shown
        assert "Authorised" in out

        async def sync() -> None:
            async with open_sync(load_rules(rules)) as opened:
                report = await apply_plan(opened, await make_plan(opened))
            assert not report.rejected and not report.pending, report.reasons

        anyio.run(sync, backend="asyncio")
    assert state.contact_by_email("p1@example.com") is not None
    assert stored(rules) == grant  # a day-long token: no refresh was needed


def test_a_redirect_with_another_state_is_refused_and_nothing_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def forged(location: str) -> str:
        parts = urlsplit(location)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()} | {
            "state": "someone-élse"
        }  # not even ASCII
        return parts._replace(query=urlencode(query)).geturl()

    browser = Browser(tamper=forged)
    monkeypatch.setattr("webbrowser.open", browser.open)
    with emulated(tmp_path, monkeypatch) as (state, rules):
        assert main(["auth", "constant-contact", str(rules), "--open"]) == 1
        browser.join()
    err = capsys.readouterr().err
    assert "state is not this request's" in err and "nothing was stored" in err
    assert stored(rules) is None
    assert not state.grants.refresh  # the code was never exchanged


def test_a_person_who_denies_access_gets_the_vendors_reason_and_nothing_is_stored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    browser = Browser()
    monkeypatch.setattr("webbrowser.open", browser.open)
    with emulated(tmp_path, monkeypatch) as (state, rules):
        state.grants.consent = False
        assert main(["auth", "constant-contact", str(rules), "--open"]) == 1
        browser.join()
    err = capsys.readouterr().err
    assert "did not authorise listsync (access_denied: The resource owner" in err
    assert stored(rules) is None


@pytest.mark.parametrize("pasted", ["url", "bare code"])
def test_a_redirect_uri_off_this_machine_is_pasted_whole_or_as_its_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], pasted: str
) -> None:
    stdin = Stdin()
    monkeypatch.setattr(sys, "stdin", stdin)

    def paste(location: str) -> None:
        stdin.paste(location if pasted == "url" else parse_qs(urlsplit(location).query)["code"][0])

    browser = Browser(deliver=paste)
    monkeypatch.setattr("webbrowser.open", browser.open)
    redirect = "https://listsync.example.com/constant-contact/callback"
    with emulated(tmp_path, monkeypatch, redirect=redirect) as (state, rules):
        state.grants.registered = frozenset({redirect})
        stdin.paste("")  # a blank line first: skipped
        assert main(["auth", "constant-contact", str(rules), "--open"]) == 0
        browser.join()
    out = capsys.readouterr().out
    assert "Then paste here the address the browser was sent to" in out
    grant = stored(rules)
    assert grant is not None and grant.refresh_token in state.grants.refresh
    for secret in secrets_of(state, browser):
        assert secret not in out


def test_paste_is_also_a_choice_for_a_loopback_redirect_and_a_pasted_state_is_checked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    stdin = Stdin()
    monkeypatch.setattr(sys, "stdin", stdin)
    browser = Browser(deliver=lambda location: stdin.paste(location.replace("state=", "state=x")))
    monkeypatch.setattr("webbrowser.open", browser.open)
    with emulated(tmp_path, monkeypatch) as (_, rules):
        assert main(["auth", "constant-contact", str(rules), "--open", "--paste"]) == 1
        browser.join()
    assert "state is not this request's" in capsys.readouterr().err
    assert stored(rules) is None


def test_waiting_ends_at_the_timeout_with_a_clear_message_and_frees_the_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with emulated(tmp_path, monkeypatch) as (_, rules):
        assert main(["auth", "constant-contact", str(rules), "--timeout", "0.5"]) == 1
        settings = load_rules(rules).esp_settings
        port = urlsplit(str(getattr(settings, "redirect_uri", ""))).port
    assert "no answer came back within 0.5 seconds (--timeout); nothing was stored" in capsys.readouterr().err
    assert port is not None
    loopback_socket("127.0.0.1", port).close()  # bound again at once: the listener let it go
    assert stored(rules) is None


def test_a_busy_redirect_port_fails_before_anyone_is_sent_to_the_browser(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    browser = Browser()
    monkeypatch.setattr("webbrowser.open", browser.open)
    busy = loopback_socket("127.0.0.1", 0)
    try:
        redirect = f"http://127.0.0.1:{busy.getsockname()[1]}/callback"
        with emulated(tmp_path, monkeypatch, redirect=redirect) as (_, rules):
            assert main(["auth", "constant-contact", str(rules), "--open"]) == 1
    finally:
        busy.close()
    assert "cannot listen on 127.0.0.1" in capsys.readouterr().err
    assert not browser.visited
