"""`listsync run` as an operator runs it: a subprocess, emulators on real sockets, SIGTERM, a restart.

The emulators serve the test's own states from a thread (uvicorn on loopback), so the test can
look at what the service did on the vendors' side. Checked: /healthz and /metrics answer while it
runs; SIGTERM ends it with exit 0 after "service stopped", with no import job left open; and the
account budget's level is in the state store and still spent after a restart.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
import uvicorn

from adapters.dotdigital.emulator import create_app as dotdigital_app
from adapters.workbooks.emulator import create_app as workbooks_app
from engine.emulating import loopback_socket
from engine.store import StateStore
from tests.test_service import FAST
from tests.test_workbooks_dotdigital_sync import World

ESP_ACCOUNT = "dotdigital"


@contextmanager
def served(app: Any) -> Iterator[str]:
    listener = loopback_socket("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(10)
        listener.close()


@contextmanager
def service(rules: Path, env: dict[str, str]) -> Iterator[subprocess.Popen[str]]:
    command = [sys.executable, "-m", "engine.cli", "run", str(rules), "--log-format", "json"]
    process = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def wait_for(url: str, check: Any, limit: float = 40) -> Any:
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            answer = httpx.get(url, timeout=5)
            if check(answer):
                return answer
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered as expected")


def members_synced(answer: httpx.Response) -> bool:
    found = answer.json().get("processes", {}).get("workbooks-dotdigital/members", {})
    return answer.status_code == 200 and found.get("last_success") is not None


def test_the_service_reports_its_health_and_metrics_stops_on_sigterm_and_keeps_its_budget(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(tmp_path, monkeypatch)
    port = loopback_socket("127.0.0.1", 0)
    metrics_port = port.getsockname()[1]
    port.close()
    with served(workbooks_app(world.crm)) as crm_url, served(dotdigital_app(world.esp)) as esp_url:
        world.esp.tune(api_endpoint=esp_url, import_polls=0)  # imports end at their first poll
        text = world.rules.path.read_text() + FAST.replace('job_wait = "1s"', 'job_wait = "30s"')
        text = text.replace('base_url = "https://secure.workbooks.com"', f'base_url = "{crm_url}"')
        text = text.replace("address_book_limit = 100", f'address_book_limit = 100\nendpoint = "{esp_url}"')
        # A bucket of 5,000 leaking one call an hour: what a run spends is still spent after a restart.
        text = re.sub(r"calls = 2000 .*", "calls = 5001", text).replace("burst = 20\n", "burst = 5000\n")
        text += f"port = {metrics_port}\n"
        rules = tmp_path / "service.toml"
        rules.write_text(text)
        env = dict(os.environ)
        base = f"http://127.0.0.1:{metrics_port}"

        with service(rules, env) as running:
            wait_for(f"{base}/healthz", members_synced)
            metrics = httpx.get(f"{base}/metrics", timeout=5).text
            running.send_signal(signal.SIGTERM)
            assert running.wait(timeout=30) == 0
            assert running.stderr is not None
            log = [json.loads(line) for line in running.stderr.read().splitlines()]
        assert re.search(
            r'listsync_runs_total\{outcome="ok",process="members",rule_set="workbooks-dotdigital"\} [1-9]',
            metrics,
        )
        assert re.search(r'listsync_budget_remaining\{account="dotdigital"\} \d', metrics)
        assert "listsync_last_success_timestamp_seconds" in metrics
        events = [entry["event"] for entry in log]
        assert events[0] == "service started" and events[-1] == "service stopped"
        # After the stop only the runs already in flight end: no new one starts.
        stopping = events.index("service stopping")
        assert len(events[stopping:]) <= 1 + 4 + 1
        spent = anyio.run(_levels_and_open_jobs, world)
        assert spent[0] > 10 and spent[1] == 0  # calls counted; every import job ended

        with service(rules, env) as running:
            sample = 'listsync_budget_remaining{account="dotdigital"}'
            answer = wait_for(f"{base}/metrics", lambda a: sample in a.text)
            running.send_signal(signal.SIGTERM)
            assert running.wait(timeout=30) == 0
        remaining = float(
            re.findall(r'listsync_budget_remaining\{account="dotdigital"\} (\S+)', answer.text)[0]
        )
        assert remaining <= 5000 - spent[0] + 1  # the restart did not refill the bucket


async def _levels_and_open_jobs(world: World) -> tuple[float, int]:
    async with await StateStore.open(world.rules.state_path) as store:
        levels = await store.budget_levels()
        jobs = await store.open_jobs()
    return levels[ESP_ACCOUNT][0], len(jobs)
