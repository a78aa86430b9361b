"""What an ESP adapter reports about email activity, for the `activity` process.

An ESP that can report activity (`Capabilities.activity`) implements `ActivitySource.activity`: the
per-contact events of its campaigns since a cursor, and the running totals of each campaign that had
any. Everything here is in the ESP's own terms (its list names, its campaign ids); the engine maps
lists to CRM campaigns (`engine.activity_ops`).

Each event has a `key` that is stable and unique at the vendor: reading the same window twice gives
the same keys, and the CRM adapter writes each key once, so overlapping reads and replays after a
crash never duplicate an activity.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from msgspec import Struct

from engine.ruleset import EventType

TOTALS = ("sends", "opens", "clicks", "bounces", "unsubscribes")


class ActivityEvent(Struct, frozen=True, omit_defaults=True):
    """One thing one recipient did with one ESP campaign.

    `lists` are the ESP lists the campaign was sent to; `campaign_name` names it for people.
    `bounce` is "hard" or "soft" for a bounce, and `bounce_code` the vendor's own code for it when
    it gives one (Constant Contact: B, D, F, S, V, X or Z); `url` is the link of a click.
    """

    key: str
    email: str
    type: EventType
    at: datetime
    campaign: str
    campaign_name: str
    lists: tuple[str, ...]
    url: str | None = None
    bounce: str | None = None
    bounce_code: str | None = None


class CampaignTotals(Struct, frozen=True, omit_defaults=True):
    """An ESP campaign's totals to date, as the vendor counts them (not since the cursor)."""

    campaign: str
    lists: tuple[str, ...]
    sends: int = 0
    opens: int = 0
    clicks: int = 0
    bounces: int = 0
    unsubscribes: int = 0

    def counts(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in TOTALS}


class ActivityFeed(Struct, frozen=True):
    """Events since the cursor asked for, totals of the campaigns they belong to, and the next cursor."""

    events: tuple[ActivityEvent, ...]
    totals: tuple[CampaignTotals, ...]
    cursor: str


Sums = dict[str, int]


class ActivityState(Struct, frozen=True):
    """What the activity process keeps between runs: the feed's cursor and the totals bookkeeping
    (`engine.activity_ops`)."""

    cursor: str | None = None
    esp: dict[str, CampaignTotals] = {}  # ESP campaign id -> its latest totals
    crm: dict[str, Sums] = {}  # CRM campaign key -> the sums last written on it
    recent: frozenset[str] = frozenset()  # keys of the last read's latest events, which it may re-read


class ActivitySource(Protocol):
    """An ESP adapter that reports activity."""

    async def activity(self, cursor: str | None, since: datetime) -> ActivityFeed:
        """Events after `cursor` (a value this adapter returned before) or, with no cursor, after
        `since`. The next cursor may overlap the window read: keys make re-reads harmless."""
        ...
