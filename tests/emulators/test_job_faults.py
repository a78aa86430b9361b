"""The ESP emulators' own faults, and their control API: bulk jobs that fail or stall by share.

Constant Contact's activities and Mailchimp's batches fail and stall by the shares set under the spec
names ``job_fail`` and ``job_stall`` (Dotdigital's imports: `test_faults.py`), and each adapter sees
them as the vendor shows them: a failed activity ends ``failed`` and every op of it is refused, a
failed batch finishes with every operation answering 500, and a stalled job never reaches a terminal
state. The control API reads and sets those shares with the layer's own, all or nothing, and dumps
the account. `listsync emulate constant-contact|mailchimp` serves both with faults, over a socket.
"""

from __future__ import annotations

import json
import re
import signal
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from adapters.constantcontact.emulator import create_app as constantcontact_app
from adapters.constantcontact.emulator_generate import generate as generate_constantcontact
from adapters.constantcontact.emulator_state import ConstantContactState
from adapters.constantcontact.emulator_state import Knobs as ConstantContactKnobs
from adapters.mailchimp.emulator import create_app as mailchimp_app
from adapters.mailchimp.emulator_seeding import generate as generate_mailchimp
from adapters.mailchimp.emulator_state import Knobs as MailchimpKnobs
from adapters.mailchimp.emulator_state import MailchimpState
from engine.contract import Adapter, JobStatus
from engine.plans import Change, Op
from tests.adapters import test_constantcontact_contract as cc
from tests.adapters import test_mailchimp_contract as mc
from tests.emulators.test_faults import emulate

SHARES = {"job_fail": 0.3, "job_stall": 0.2}
JOBS = 40


async def fates(adapter: Adapter, kind: str, ops: list[Op]) -> list[JobStatus]:
    """Write each op in a call of its own (one job each), then poll each job until it ends or has
    been polled five times; the last status of each."""
    last = []
    for op in ops:
        [outcome] = await adapter.write(kind, [op])  # type: ignore[arg-type]
        assert outcome.ok and outcome.job, outcome
        for _ in range(5):
            status = await adapter.poll(outcome.job, [op])
            if status.terminal:
                break
        last.append(status)
    return last


def within(count: int, share: float) -> bool:
    spread = 4 * (JOBS * share * (1 - share)) ** 0.5
    return abs(count - JOBS * share) < spread


@pytest.mark.asyncio
async def test_constant_contact_activities_fail_and_stall_by_share_as_the_adapter_sees_them() -> None:
    state = cc.account(activity_polls=1)
    state.tune_job_faults(SHARES)
    ops = [
        Op("upsert_contact", f"p{n}@example.com", changes={"FIRSTNAME": Change(None, "P")})
        for n in range(JOBS)
    ]
    async with cc.opened(state) as adapter:
        ends = await fates(adapter, "upsert_contact", ops)
    seen = Counter(status.state for status in ends)
    assert seen == {"completed": JOBS - sum(state.job_faults.values()), **rename(state.job_faults)}
    assert within(seen["failed"], SHARES["job_fail"]) and within(seen["processing"], SHARES["job_stall"])
    for status in ends:
        assert status.terminal == (status.state != "processing")
        assert not status.terminal or all(o.ok for o in status.outcomes) == (status.state == "completed")
    failed = next(status for status in ends if status.state == "failed")
    assert "ended failed" in str(failed.outcomes[0].reason)
    imported = sum(1 for op in ops if state.contact_by_email(str(op.email)) is not None)
    assert imported == seen["completed"]  # a failed or stalled import applied none of its rows


def rename(faults: Counter[str]) -> dict[str, int]:
    """Constant Contact's activity states for the job faults counted."""
    return {"failed": faults["job_fail"], "processing": faults["job_stall"]}


@pytest.mark.asyncio
async def test_mailchimp_batches_fail_and_stall_by_share_as_the_adapter_sees_them() -> None:
    seed = [{"email": f"p{n}@example.com", "lists": ["Spring"]} for n in range(JOBS)]
    state = mc.account(seed, batch_polls=1)
    state.tune_job_faults(SHARES)
    ops = [Op("add_member", row["email"], list="Autumn") for row in seed]
    async with mc.opened(state) as adapter:
        ends = await fates(adapter, "add_member", ops)
    failed = [s for s in ends if s.terminal and not s.outcomes[0].ok]
    stalled = [s for s in ends if not s.terminal]
    assert (len(failed), len(stalled)) == (state.job_faults["job_fail"], state.job_faults["job_stall"])
    assert within(len(failed), SHARES["job_fail"]) and within(len(stalled), SHARES["job_stall"])
    assert {s.state for s in stalled} == {"started"} and {s.state for s in failed} == {"finished"}
    assert all("500" in str(s.outcomes[0].reason) for s in failed)
    (audience,) = state.audiences.values()
    tagged = audience.segment_named("Autumn")
    assert tagged is not None and len(tagged.members) == JOBS - len(failed) - len(stalled)


def constantcontact() -> tuple[Starlette, Any]:
    state = ConstantContactState(ConstantContactKnobs(rate_limited=False), seed=2)
    generate_constantcontact(state, seed=2, contacts=12, campaigns=0)
    return constantcontact_app(state), state


def mailchimp() -> tuple[Starlette, Any]:
    state = MailchimpState(seed=2)
    generate_mailchimp(state, seed=2, members=12, campaigns=0)
    return mailchimp_app(state), state


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("make", "knob", "records"),
    [
        (constantcontact, "activity_fail_share", lambda dump: dump["contacts"]),
        (mailchimp, "batch_fail_share", lambda dump: dump["audiences"][0]["members"]),
    ],
)
async def test_the_control_api_sets_job_faults_with_the_layers_and_dumps_the_account(
    make: Any, knob: str, records: Any
) -> None:
    app, state = make()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://emulator") as http:
        report = (await http.get("/_emulator/faults")).json()
        changed = await http.put("/_emulator/faults", json={"500": 0.2, "job_fail": 0.5})
        too_much = await http.put("/_emulator/faults", json={"503": 0.1, "job_fail": 0.6, "job_stall": 0.6})
        dump = (await http.get("/_emulator/state")).json()
    assert report["settings"]["job_fail"] == report["settings"]["job_stall"] == 0.0
    assert changed.status_code == 200 and changed.json()["settings"]["job_fail"] == 0.5
    assert getattr(state.knobs, knob) == 0.5 and app.state.faults.error_500 == 0.2
    assert too_much.status_code == 400 and "add up to more than 1" in too_much.json()["error"]
    assert getattr(state.knobs, knob) == 0.5 and app.state.faults.error_503 == 0.0  # all or nothing
    emails = [r["email"] for r in records(dump)]
    assert len(emails) == 12 and emails == sorted(emails, key=str.lower)


@pytest.mark.parametrize(
    ("name", "path", "records"),
    [
        ("constant-contact", "/v3/contact_lists", lambda dump: dump["contacts"]),
        ("mailchimp", "/3.0/lists", lambda dump: dump["audiences"][0]["members"]),
    ],
)
def test_listsync_emulate_serves_the_esp_with_faults_and_saves_its_state(
    name: str, path: str, records: Any, tmp_path: Path
) -> None:
    saved = tmp_path / "state.json"
    spec = "500=0.5,drop=0.5,retry_after=0,job_stall=1"
    with emulate(name, "--contacts", "30", "--seed", "4", "--faults", spec, "--state-file", str(saved)) as (
        url,
        process,
    ):
        assert process.stdout is not None
        told = "".join(iter(process.stdout.readline, "Press Ctrl-C to stop.\n"))
        token = re.search(r"access token: (\S+)", told)
        headers = {"Authorization": f"Bearer {token[1]}"} if token else {}
        auth = ("any", MailchimpKnobs().api_key) if name == "mailchimp" else None
        with httpx.Client(base_url=url, timeout=10, headers=headers, auth=auth) as http:
            failed = 0
            for _ in range(20):
                try:
                    failed += http.get(path).status_code == 500
                except httpx.RemoteProtocolError:
                    failed += 1
            report = http.get("/_emulator/faults").json()
            http.put("/_emulator/faults", json={"500": 0, "drop": 0}).raise_for_status()
            answered = http.get(path)
            dump: dict[str, Any] = http.get("/_emulator/state").json()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    assert failed == 20 and report["calls"] == 20 and report["settings"]["job_stall"] == 1.0
    assert answered.status_code == 200 and len(records(dump)) == 30
    assert json.loads(saved.read_text()) == dump


@pytest.mark.parametrize("name", ["constant-contact", "mailchimp"])
def test_an_empty_esp_account_is_served_with_no_contacts(name: str, tmp_path: Path) -> None:
    saved = tmp_path / "state.json"
    with emulate(name, "--contacts", "0", "--state-file", str(saved)) as (url, process):
        with httpx.Client(base_url=url, timeout=10) as http:
            dump = http.get("/_emulator/state").json()
        process.send_signal(signal.SIGINT)
        process.wait(timeout=10)
    if name == "mailchimp":
        assert [(a["members"], a["tags"]) for a in dump["audiences"]] == [([], [])]  # the one audience
    else:
        assert dump == {"contacts": [], "lists": [], "custom_fields": [], "activities": []}
    assert json.loads(saved.read_text()) == dump
