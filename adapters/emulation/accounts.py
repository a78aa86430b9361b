"""The state header every ESP emulator's account shares, and the faults of its bulk jobs.

The Dotdigital, Constant Contact and Mailchimp emulators each hold one account in memory, and each
needs the same things around the vendor's data: account settings (``Knobs``, a frozen dataclass that
``tune`` swaps whole), a monotonic clock a test can drive with wall-clock dates derived from it
(``now``), one seeded random source for everything drawn, the log of calls the app answered, and
bulk jobs (Dotdigital's imports, Constant Contact's activities, Mailchimp's batches) that fail or
stall by share. ``EmulatedAccount`` is that header; a vendor's state subclasses it and names, in
``job_fault_knobs``, the two knobs that hold its shares. ``draw_job_fault`` decides a new job's fate
and counts it by its fault spec name (``job_fail``, ``job_stall``), and ``account_vendor`` hands those
shares and counts to the fault layer's control API (``/_emulator/faults``).
"""

from __future__ import annotations

import random
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, ClassVar, Generic, TypeVar

from starlette.responses import Response

from adapters.emulation.faults import FaultSpecError
from adapters.emulation.layer import Vendor

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

K = TypeVar("K", bound="DataclassInstance")
# A Monday morning: where an account's dates start when a test gives no start.
DEFAULT_START = datetime(2025, 1, 6, 9, 0, tzinfo=UTC)
JOB_FAULTS = ("job_fail", "job_stall")


class EmulatedAccount(Generic[K]):
    """One vendor account's clock, settings, randomness, call log and job faults."""

    # Spec name (``job_fail``, ``job_stall``) -> the Knobs attribute holding that share of new jobs.
    job_fault_knobs: ClassVar[Mapping[str, str]] = {}

    def __init__(
        self,
        knobs: K,
        *,
        clock: Callable[[], float] = time.monotonic,
        seed: int = 0,
        started_at: datetime | None = None,
    ) -> None:
        self.knobs = knobs
        self.clock = clock
        self.rng = random.Random(seed)
        self._t0 = clock()
        self._started_at = started_at or DEFAULT_START
        self.calls: list[tuple[str, str, int]] = []  # (method, path, status) of every authorised call
        self.job_faults: Counter[str] = Counter()  # new jobs failed or stalled by the shares, by spec name

    def now(self) -> datetime:
        return self._started_at + timedelta(seconds=self.clock() - self._t0)

    def tune(self, **changes: Any) -> K:
        self.knobs = replace(self.knobs, **changes)
        return self.knobs

    def new_uuid(self) -> str:
        """A version 4 UUID drawn from the account's seeded random source."""
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # -- the faults of bulk jobs --------------------------------------------------------------------
    def job_fault_shares(self) -> dict[str, float]:
        return {name: float(getattr(self.knobs, knob)) for name, knob in self.job_fault_knobs.items()}

    def tune_job_faults(self, values: Mapping[str, float]) -> None:
        """Set job fault shares by spec name; FaultSpecError when together they pass 1."""
        if sum({**self.job_fault_shares(), **values}.values()) > 1.0:
            raise FaultSpecError(f"{' and '.join(self.job_fault_knobs)} add up to more than 1")
        self.tune(**{self.job_fault_knobs[name]: value for name, value in values.items()})

    def draw_job_fault(self) -> str | None:
        """A new job's fault (``job_fail`` or ``job_stall``), drawn from the shares and counted, or
        None for a job that runs its course. Draws nothing while every share is 0."""
        shares = self.job_fault_shares()
        if not any(shares.values()):
            return None
        roll = self.rng.random()
        for name, share in shares.items():
            if roll < share:
                self.job_faults[name] += 1
                return name
            roll -= share
        return None


def account_vendor(
    account: EmulatedAccount[Any],
    error: Callable[[int, Mapping[str, str]], Response],
    dump: Callable[[], dict[str, Any]],
) -> Vendor:
    """What the fault layer needs from an ESP emulator: its error body, its dump, its job faults."""
    return Vendor(
        error=error,
        dump=dump,
        shares=account.job_fault_shares,
        tune=account.tune_job_faults,
        injected=lambda: dict(account.job_faults),
    )
