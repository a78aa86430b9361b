"""The crash test's processes, each started as an operator would start it: `listsync emulate NAME`
for each vendor, and `listsync run RULES --log-format json`, whose log lines a reader thread
collects so the harness can kill the service at a moment it chose.
"""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[2]
FAULT_KINDS = ("500", "503", "429", "timeout", "drop", "malformed")


def listsync(*args: str) -> list[str]:
    return [sys.executable, "-m", "engine.cli", *args]


@dataclass
class Emulator:
    """A `listsync emulate` process and its loopback URL; its control API answers the harness."""

    name: str
    process: subprocess.Popen[str]
    url: str
    printed: list[str]  # what it printed on starting: its credentials, among other things
    readers: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def start(cls, name: str, *, seed: int, contacts: int, faults: str | None = None) -> Emulator:
        command = listsync("emulate", name, "--seed", str(seed), "--contacts", str(contacts), "--unlimited")
        if faults:
            command += ["--faults", faults]
        process = subprocess.Popen(
            command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        assert process.stdout is not None
        first = process.stdout.readline()
        found = re.search(r"listening on (http://\S+)", first)
        if not found:
            process.kill()
            detail = process.stderr.read() if process.stderr else ""
            raise RuntimeError(f"listsync emulate {name} did not start: {first}{detail}")
        printed: list[str] = []
        for line in iter(process.stdout.readline, ""):  # up to "Press Ctrl-C to stop."
            if line.startswith("Press"):
                break
            printed.append(line.strip())
        emulator = cls(name, process, found.group(1), printed)
        for stream in (process.stdout, process.stderr):  # keep the pipes drained
            reader = threading.Thread(target=stream.read, daemon=True) if stream else None
            if reader is not None:
                reader.start()
                emulator.readers.append(reader)
        return emulator

    def said(self, label: str) -> str:
        """The value it printed on starting after `label` (such as "client secret"), to the first space."""
        for line in self.printed:
            if line.startswith(f"{label}: "):
                return line.removeprefix(f"{label}: ").split()[0]
        raise RuntimeError(f"listsync emulate {self.name} printed no {label!r}: {self.printed}")

    def control(self, what: str) -> Any:
        return httpx.get(f"{self.url}/_emulator/{what}", timeout=30).json()

    @contextmanager
    def without_faults(self) -> Iterator[None]:
        """No faults while the block runs (the harness's own edits), then the spec as it was."""
        shares = {k: v for k, v in self.control("faults")["settings"].items() if k in FAULT_KINDS}
        httpx.put(f"{self.url}/_emulator/faults", json=dict.fromkeys(shares, 0.0), timeout=30)
        try:
            yield
        finally:
            httpx.put(f"{self.url}/_emulator/faults", json=shares, timeout=30)

    def calls(self) -> int:
        return int(self.control("faults")["calls"])

    def injected(self) -> dict[str, int]:
        return dict(self.control("faults")["injected"])

    def stop(self) -> None:
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        _close(self.process, self.readers)


@dataclass
class Service:
    """A `listsync run` process; `events` are its JSON log lines as they come."""

    process: subprocess.Popen[str]
    events: queue.Queue[dict[str, Any]] = field(default_factory=queue.Queue)
    seen: list[dict[str, Any]] = field(default_factory=list)
    readers: list[threading.Thread] = field(default_factory=list)

    @classmethod
    def start(cls, rules: Path, env: dict[str, str]) -> Service:
        process = subprocess.Popen(
            listsync("run", str(rules), "--log-format", "json"),
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **env},
        )
        service = cls(process)
        service.readers.append(threading.Thread(target=service._read, daemon=True))
        service.readers[0].start()
        return service

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            try:
                self.events.put(json.loads(line))
            except json.JSONDecodeError:  # a traceback would be a finding: keep it as an event
                self.events.put({"event": "unparsed", "line": line.rstrip()})

    def next_event(self, deadline: float) -> dict[str, Any] | None:
        """The next log event before `deadline` (a monotonic time), or None."""
        try:
            event = self.events.get(timeout=max(0.0, deadline - time.monotonic()))
        except queue.Empty:
            return None
        self.seen.append(event)
        return event

    def applying(self) -> set[str]:
        """The processes whose apply began and has not ended, by the events seen so far."""
        busy: set[str] = set()
        for event in self.seen:
            if event.get("event") == "run applying":
                busy.add(event["process"])
            elif event.get("event") in ("run", "run failed"):
                busy.discard(event.get("process", ""))
        return busy

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no handler runs, nothing is flushed
        self.process.wait()
        self._drain()

    def stop(self, grace: float = 60) -> int:
        self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            self.process.kill()
            code = self.process.wait()
        self._drain()
        return code

    def _drain(self) -> None:
        _close(self.process, self.readers)
        while True:
            try:
                self.seen.append(self.events.get(timeout=0.2))
            except queue.Empty:
                return


def _close(process: subprocess.Popen[str], readers: list[threading.Thread]) -> None:
    """Once `process` ended: its pipes read to their end, then closed."""
    for reader in readers:
        reader.join(timeout=10)
    for stream in (process.stdout, process.stderr):
        if stream is not None:
            stream.close()


def plan_has_changes(rules: Path, env: dict[str, str]) -> bool:
    """Whether `listsync plan` (a fresh process, reading both sides whole) finds anything to do."""
    done = subprocess.run(
        listsync("plan", str(rules), "--detailed-exitcode"),
        cwd=REPO,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=300,
    )
    if done.returncode not in (0, 2):
        raise RuntimeError(f"listsync plan failed ({done.returncode}): {done.stderr[-2000:]}")
    return done.returncode == 2
