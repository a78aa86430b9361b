"""The contract every adapter fulfils, on either side of a sync.

An adapter translates; it never decides policy. It reads a `Snapshot` of its side and executes
batches of plan ops of the kinds it supports, reporting an `Outcome` per op. A write the vendor
finishes later (a bulk import) comes back as an outcome carrying a job id; the engine stores the
job with its ops and polls it with `poll` until it reaches a terminal state. Every vendor call an
adapter makes goes through `AdapterContext.budget`, the token bucket shared by everything using that
account.

Snapshots are lazy for speed: they carry each row's raw payload and a decoder. The engine decodes
only rows whose fingerprint differs from the one it stored when it last confirmed that record,
which is what lets a plan over a million unchanged rows be fast. An adapter that writes a row
reports the new row's fingerprint (`engine.fingerprints.fingerprint`) in its `Outcome` when it
knows the exact bytes the next snapshot will carry.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from msgspec import Struct

from engine.errors import TransientError
from engine.plans import Op, OpKind
from engine.records import Campaign, Row
from engine.ruleset import FieldType, SecretRef, Side

if TYPE_CHECKING:
    import httpx

    from engine.budgets import Budgets


class Capabilities(Struct, frozen=True):
    """What an adapter's vendor allows; the rules are checked against it before any call."""

    max_batch: int = 1000
    max_list_name: int = 255
    reserved_list_names: frozenset[str] = frozenset()
    field_name_max: int | None = None
    field_name_pattern: str | None = None
    field_limits: dict[str, int] = {}
    max_lists: int | None = None
    calls: int | None = None
    period_seconds: float = 1.0
    # Vendors that also cap calls per day (Constant Contact: 10,000): a second budget over a day.
    daily_calls: int | None = None
    # CRM adapters: the longest value each campaign field can hold, for list-name length checks.
    campaign_field_lengths: dict[str, int] = {}
    # ESP adapters: the vendor refuses field and list changes for a suppressed contact
    # (Dotdigital), so none are planned for a contact that stays opted out.
    frozen_when_suppressed: bool = False
    # ESP adapters: implements `engine.activity_feed.ActivitySource` (the `activity` process).
    activity: bool = False
    writes: frozenset[str] = frozenset()


class Outcome(Struct, frozen=True, omit_defaults=True):
    """What happened to one op of a batch: done, rejected with a reason, or pending in a job."""

    ok: bool
    reason: str | None = None
    job: str | None = None
    fingerprint: int | None = None


class PartialWrite(TransientError):
    """A write that failed part way, after the vendor took some of its ops (a submitted import
    above all). `outcomes` holds, per op of the call, the outcome of those already taken and None
    for the rest. The engine keeps the first and repeats the call for the others only, so a retry
    never submits a job twice and no job the vendor runs is missing from the state store."""

    def __init__(self, cause: TransientError, outcomes: Sequence[Outcome | None]) -> None:
        super().__init__(str(cause), retry_after=cause.retry_after)
        self.outcomes = list(outcomes)


def interrupted(error: TransientError, outcomes: Sequence[Outcome | None]) -> TransientError:
    """`error` as a `PartialWrite` when some of the call's ops already became jobs at the vendor;
    as it is otherwise (repeating the whole call then submits nothing twice)."""
    taken = any(outcome is not None and outcome.job is not None for outcome in outcomes)
    return PartialWrite(error, outcomes) if taken else error


class JobStatus(Struct, frozen=True, omit_defaults=True):
    """A vendor job's state; `outcomes` (one per op submitted) once it is terminal."""

    state: str
    terminal: bool
    outcomes: tuple[Outcome, ...] = ()
    detail: str | None = None


@dataclass
class Snapshot:
    """One side's records as read now, complete or as a delta since a cursor.

    `payloads` holds each row's raw bytes; the engine fingerprints them all at once
    (`engine.fingerprints`), decodes only the changed ones, and then lets go of the list. An
    adapter that reads local data may instead give `load`, a picklable function yielding the
    payloads in batches, with `size` in bytes: the engine then reads a batch at a time, never
    holding the whole side, and a large side in a worker process while it works on the other.
    """

    complete: bool
    version: str
    payloads: Sequence[bytes]
    decode: Callable[[bytes], Row]
    load: Callable[[], Iterable[Sequence[bytes]]] | None = None
    size: int = 0
    deleted: Sequence[str] = ()
    campaigns: Sequence[Campaign] = ()
    lists: dict[str, str] = field(default_factory=dict)
    fields: dict[str, FieldType] = field(default_factory=dict)
    cursor: str | None = None
    # Contacts this side holds that the rules keep listsync away from, by email, with why (Mailchimp's
    # archived members under `archived = "skip"`): no op is planned for them, and the plan lists them.
    left_alone: Mapping[str, str] = field(default_factory=dict)
    # CRM adapters: the field names each record type has ("person", "lead", "campaign"), from the
    # CRM's own metadata, so the rules' mapped fields are checked before anything is written.
    columns: dict[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True)
class OAuthTokens:
    """An OAuth2 grant as a vendor's token endpoint issued it; `expires_at` is Unix time in seconds.

    The tokens are left out of the repr, so logging the object or an error that holds it shows none."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: float


class TokenStore(Protocol):
    """Where an OAuth adapter keeps its tokens between runs (written by `listsync auth`, refreshed by
    the adapter). `load` gives None when no grant was stored yet."""

    async def load(self) -> OAuthTokens | None: ...

    async def save(self, tokens: OAuthTokens) -> None: ...


class CallBudget(Protocol):
    """The account's token bucket; one token per vendor call."""

    async def acquire(self, amount: float = 1) -> None: ...


@dataclass
class AdapterContext:
    """What the engine hands an adapter when it opens one.

    `http(base_url)` makes the AsyncClient for the side's vendor (`engine.http`): its requests
    spend `budget` and have deadlines, and tests and the demo route it to an emulator. An adapter
    closes the clients it made in `aclose`. `tokens` is where an OAuth adapter loads and saves its
    grant: the engine's session always sets it, to the side's row in the state store
    (`engine.store.SideTokens`), which `listsync auth` fills.
    """

    side: Side
    base_dir: Path
    budget: CallBudget
    secret: Callable[[SecretRef], str]
    extras: dict[str, Any] = field(default_factory=dict)
    http: Callable[[str], httpx.AsyncClient] | None = None
    tokens: TokenStore | None = None
    # What the adapters of one vendor account keep between runs in this process, for as long as the
    # account's call budget lives (the service's lifetime): Dotdigital's imports in flight, say.
    account_state: dict[str, Any] = field(default_factory=dict)


class Adapter(Protocol):
    """One side of a sync. Opened per run, closed with `aclose`."""

    name: ClassVar[str]
    settings_type: ClassVar[type[Struct]]

    @classmethod
    def capabilities(cls, settings: Any, side: Side) -> Capabilities: ...

    async def snapshot(self, cursor: str | None = None) -> Snapshot:
        """All records (cursor None) or those changed since `cursor`."""
        ...

    async def version(self) -> str:
        """A cheap token that changes whenever the side's data changes."""
        ...

    async def write(self, kind: OpKind, ops: Sequence[Op]) -> Sequence[Outcome]:
        """Execute one batch of ops of one kind; one outcome per op, in order."""
        ...

    async def poll(self, job: str, ops: Sequence[Op]) -> JobStatus:
        """The state of a job an earlier `write` submitted, with `ops` the ops it carried, in the
        order they were written; a terminal status has one outcome per op, in that order. The
        engine keeps the ops with the job, so an adapter holds no job state and a job submitted
        before a crash can be polled to its end after a restart."""
        ...

    async def flush(self) -> None:
        """Make every write so far durable. Called before the engine records any of them."""
        ...

    async def aclose(self) -> None: ...


@dataclass
class DemoSetup:
    """What a `listsync demo` kit prepared: the rule file, and how the engine reaches the sides.

    `extras` go to the session (e.g. transports to in-process emulators); `budgets`, when set,
    replaces the rules' call budgets; `grants` are OAuth grants an emulator issued, which the demo
    stores for those sides as `listsync auth` would before the first sync; `explore` tells a person
    how to carry on by hand.
    """

    rules: Path
    extras: dict[str, Any] = field(default_factory=dict)
    budgets: Budgets | None = None
    grants: dict[Side, OAuthTokens] = field(default_factory=dict)
    explore: str = ""


class AdapterFactory(Protocol):
    name: ClassVar[str]
    settings_type: ClassVar[type[Struct]]

    def __call__(self, settings: Any, context: AdapterContext) -> Adapter: ...

    def capabilities(self, settings: Any, side: Side) -> Capabilities: ...
