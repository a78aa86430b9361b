"""Which faults an emulator injects, drawn call by call from one seeded random source.

Every emulator can fail a chosen share of calls in the same ways a real API and the network between
fail: a 500, a 503 or a 429 with ``Retry-After``, a request held past the client's deadline, a
connection dropped before a whole answer, a 2xx JSON body cut short. ``Faults`` holds those shares,
draws at most one fault per call and counts what it injected, so a test (or the crash test, over the
control API) can say how many faults a run survived. The fault kinds are vendor-neutral; how an error
body looks is the emulator's business (``layer.Vendor``), and faults only some vendors have (import
jobs that fail or stall) are the emulator's own knobs, reached through the same spec names.

The spec, for ``listsync emulate --faults`` and ``PUT /_emulator/faults``, is ``NAME=NUMBER`` pairs:
``500=0.1,503=0.05,429=0.05,timeout=0.05,drop=0.05,malformed=0.05`` plus the settings ``latency``,
``retry_after``, ``timeout_after`` (seconds) and ``after_run`` (a share), and the vendor's own names.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from engine.errors import PermanentError

# Spec name -> Faults attribute, for the kinds drawn per call (their shares add up to at most 1).
KINDS = {
    "500": "error_500",
    "503": "error_503",
    "429": "error_429",
    "timeout": "timeout",
    "drop": "drop",
    "malformed": "malformed",
}
SECONDS = ("latency", "retry_after", "timeout_after")
OTHER_SHARES = ("after_run",)
STATUSES = {"500": 500, "503": 503, "429": 429}


class FaultSpecError(PermanentError):
    """A fault spec or setting that cannot be used; the message says which part and why."""


@dataclass
class Faults:
    """Shares of calls to fail, by kind, and how. Change the attributes at any time; `check()` them."""

    error_500: float = 0.0
    error_503: float = 0.0  # sent with Retry-After
    error_429: float = 0.0  # sent with Retry-After
    timeout: float = 0.0  # held `timeout_after` seconds, then the connection is dropped
    drop: float = 0.0  # the connection closes before a whole answer (see layer.ConnectionDropped)
    malformed: float = 0.0  # a 2xx JSON answer cut in half; other answers are left alone
    latency: float = 0.0  # seconds added to every call
    retry_after: float = 1.0  # seconds, in the Retry-After of the 429s and 503s
    # Longer than any client deadline listsync uses (Dotdigital's documented 121 s), so the client
    # gives up first; tests with short deadlines set it short too.
    timeout_after: float = 130.0
    # Timeouts and drops strike after the request ran (its effects kept, the answer lost) this share
    # of the time, and before it ran otherwise: a client cannot tell which, and must not need to.
    after_run: float = 0.5
    seed: int = 0
    script: list[str] = field(default_factory=list)  # kinds forced on the next calls, in order
    injected: Counter[str] = field(default_factory=Counter, init=False)
    calls: int = field(default=0, init=False)  # calls seen, faulted or not (control calls excluded)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self.check()

    def check(self) -> None:
        """Raise FaultSpecError unless every share is in [0, 1], together at most 1, and no wait negative."""
        for name in [*KINDS, *OTHER_SHARES]:
            value = self.get(name)
            if not (math.isfinite(value) and 0.0 <= value <= 1.0):
                raise FaultSpecError(f"fault share {name}={value:g} is not between 0 and 1")
        total = sum(self.get(name) for name in KINDS)
        if total > 1.0 + 1e-9:
            raise FaultSpecError(f"the fault shares add up to {total:g}; at most 1 of the calls can fail")
        for name in SECONDS:
            if not (math.isfinite(self.get(name)) and self.get(name) >= 0.0):
                raise FaultSpecError(f"{name}={self.get(name):g} is not a number of seconds")
        unknown = [kind for kind in self.script if kind not in KINDS]
        if unknown:
            raise FaultSpecError(f"unknown scripted faults {unknown}; known: {', '.join(KINDS)}")

    def get(self, name: str) -> float:
        """A setting by its spec name (``500``, ``drop``, ``retry_after``...)."""
        return float(getattr(self, KINDS.get(name, name)))

    def settings(self) -> dict[str, float]:
        return {name: self.get(name) for name in [*KINDS, *OTHER_SHARES, *SECONDS]}

    def update(self, values: Mapping[str, float]) -> None:
        """Set settings by spec name, all or none: a bad value leaves every setting as it was."""
        unknown = sorted(set(values) - set(self.settings()))
        if unknown:
            raise FaultSpecError(f"unknown fault settings {unknown}; known: {', '.join(self.settings())}")
        before = self.settings()
        for name, value in values.items():
            setattr(self, KINDS.get(name, name), float(value))
        try:
            self.check()
        except FaultSpecError:
            for name, value in before.items():
                setattr(self, KINDS.get(name, name), value)
            raise

    def draw(self) -> str | None:
        """The fault kind for the next call (not yet counted: the layer counts what it injects)."""
        self.calls += 1
        if self.script:
            return self.script.pop(0)
        shares = [(kind, self.get(kind)) for kind in KINDS]
        if not any(share for _, share in shares):
            return None
        roll = self.rng.random()
        for kind, share in shares:
            if roll < share:
                return kind
            roll -= share
        return None

    def strikes_after_run(self) -> bool:
        return self.rng.random() < self.after_run


def parse_spec(text: str) -> dict[str, float]:
    """``NAME=NUMBER`` pairs separated by commas, as a dict; FaultSpecError says what is wrong.
    Names are not checked here: which are known depends on the emulator (see ``layer.Control``)."""
    values: dict[str, float] = {}
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        name, sign, number = (s.strip() for s in part.partition("="))
        if not sign or not name:
            raise FaultSpecError(f"{part!r} is not NAME=NUMBER (e.g. 500=0.1,drop=0.05)")
        if name in values:
            raise FaultSpecError(f"{name} is given twice")
        try:
            values[name] = float(number)
        except ValueError:
            raise FaultSpecError(f"{name}={number!r}: {number!r} is not a number") from None
        if not math.isfinite(values[name]):
            raise FaultSpecError(f"{name}={number}: not a finite number")
    return values
