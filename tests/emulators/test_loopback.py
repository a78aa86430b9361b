"""`listsync emulate` serves the emulators over real loopback sockets, with generated data."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from engine.emulating import loopback_socket
from engine.errors import PermanentError


@contextmanager
def emulator(name: str) -> Iterator[str]:
    process = subprocess.Popen(
        [sys.executable, "-m", "engine.cli", "emulate", name, "--port", "0", "--seed", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        first = process.stdout.readline()
        match = re.search(r"listening on (http://\S+)", first)
        assert match, first + (process.stderr.read() if process.stderr else "")
        yield match.group(1)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def test_the_dotdigital_emulator_answers_over_a_real_socket() -> None:
    with emulator("dotdigital") as url, httpx.Client(base_url=url, timeout=10) as client:
        auth = ("apiuser-emulator@apiconnector.com", "emulator-password")
        info = client.get("/v2/account-info", auth=auth)
        assert info.status_code == 200
        properties = {p["name"]: p["value"] for p in info.json()["properties"]}
        assert properties["ApiEndpoint"] == url
        books = client.get("/v2/address-books", auth=auth).json()
        assert len(books) == 6  # the Workbooks sandbox's four open campaigns', and two of its own
        assert client.get("/v2/address-books").status_code == 401


def test_the_workbooks_emulator_answers_over_a_real_socket() -> None:
    with emulator("workbooks") as url, httpx.Client(base_url=url, timeout=10) as client:
        params = {
            "api_key": "12345-12345-12345-12345-12345-12345-12345-12345",
            "_api_version": "1",
            "_start": "0",
            "_limit": "5",
        }
        people = client.get("/crm/people.api", params=params, headers={"User-Agent": "listsync-test"})
        assert people.status_code == 200
        body = people.json()
        assert body["success"] is True and len(body["data"]) == 5


def test_the_constant_contact_emulator_answers_over_a_real_socket() -> None:
    with emulator("constant-contact") as url, httpx.Client(base_url=url, timeout=10) as client:
        refused = client.get("/v3/contact_lists")
        grant = client.post(
            "/oauth2/default/v1/token",
            data={"grant_type": "refresh_token", "refresh_token": "unknown"},
            auth=("emulator-client-id", "emulator-client-secret"),
        )
    assert refused.status_code == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    assert grant.status_code == 400 and grant.json()["error"] == "invalid_grant"


def test_the_mailchimp_emulator_answers_over_a_real_socket() -> None:
    with emulator("mailchimp") as url, httpx.Client(base_url=url, timeout=10) as client:
        lists = client.get("/3.0/lists", auth=("any", "0123456789abcdef0123456789abcdef-us21"))
        assert client.get("/3.0/ping").status_code == 401
    assert lists.status_code == 200 and lists.json()["lists"][0]["stats"]["member_count"] > 1000


def test_only_loopback_addresses_are_served() -> None:
    with pytest.raises(PermanentError, match="loopback"):
        loopback_socket("0.0.0.0", 0)


def test_unlimited_lifts_the_vendors_call_rates_only() -> None:
    from adapters.constantcontact.sandbox import sandbox as constantcontact
    from adapters.dotdigital.sandbox import sandbox as dotdigital

    for unlimited, scheme in ((False, "flat"), (True, "none")):
        app, _ = dotdigital(base_url="http://127.0.0.1:1", seed=1, contacts=0, unlimited=unlimited)
        assert app.state.dotdigital.knobs.rate_scheme == scheme
        app, _ = constantcontact(base_url="http://127.0.0.1:1", seed=1, contacts=0, unlimited=unlimited)
        assert app.state.constantcontact.knobs.rate_limited is not unlimited
