"""`listsync auth NAME RULES` beyond one vendor: which adapters need it, and reading redirects.

The Constant Contact flow itself is tested end to end in `test_auth_constantcontact.py`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.cli import main
from engine.oauth_redirects import Loopback, loopback, parse_pasted
from tests.files_world import World


def test_an_adapter_that_signs_in_with_its_settings_needs_no_auth(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["auth", "mailchimp", str(tmp_path / "any.toml")]) == 0
    out = capsys.readouterr().out
    assert "The mailchimp adapter needs no `listsync auth`" in out and "credentials" in out


def test_an_unknown_adapter_is_an_error_that_names_the_nearest(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["auth", "constant-contakt", "rules.toml"]) == 1
    assert "unknown adapter 'constant-contakt'; did you mean 'constant-contact'?" in capsys.readouterr().err


def test_rules_without_a_side_on_the_adapter_have_nothing_to_authorise(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    World(tmp_path)
    rules = str(tmp_path / "rules.toml")
    assert main(["auth", "constant-contact", rules]) == 1
    assert "neither side uses the 'constant-contact' adapter; nothing to authorise" in capsys.readouterr().err
    assert not (tmp_path / "state.sqlite3").exists()  # refused before the state store was opened


@pytest.mark.parametrize(
    ("uri", "expected"),
    [
        ("http://localhost:8765/callback", Loopback("localhost", 8765, "/callback")),
        ("http://127.0.0.1/cb", Loopback("127.0.0.1", 80, "/cb")),
        ("http://[::1]:9000", Loopback("::1", 9000, "/")),
        ("https://localhost:8765/callback", None),  # no certificate a browser trusts: pasted
        ("http://listsync.example.com:8765/callback", None),  # another machine
        ("http://localhost:99999/callback", None),  # no such port
    ],
)
def test_only_plain_http_on_a_loopback_address_is_caught(uri: str, expected: Loopback | None) -> None:
    assert loopback(uri) == expected


@pytest.mark.parametrize(
    ("pasted", "params", "bare"),
    [
        ("https://x.example/cb?code=abc&state=s1\n", {"code": "abc", "state": "s1"}, False),
        ("  ?code=abc&state=s1 ", {"code": "abc", "state": "s1"}, False),
        ("code=abc&state=s1", {"code": "abc", "state": "s1"}, False),
        (
            "https://x.example/cb?error=access_denied&state=s1",
            {"error": "access_denied", "state": "s1"},
            False,
        ),
        ("abc-123_XYZ\n", {"code": "abc-123_XYZ"}, True),
    ],
)
def test_a_pasted_redirect_is_a_url_its_query_or_a_bare_code(
    pasted: str, params: dict[str, str], bare: bool
) -> None:
    redirect = parse_pasted(pasted)
    assert redirect.params == params and redirect.bare is bare
    assert "abc" not in repr(redirect)
