"""What the crash test needs to know of an ESP, in one place per vendor, so that the flow (`world`,
`running`) and the judgement (`checks`) are written once for all of them.

A `CrashEsp` is bound to one world's `listsync emulate NAME` process. It points the example rule set
at that emulator (`rules_edits`, `secrets`, and `authorise` for a vendor that signs in with OAuth2),
makes a person's unsubscribe there through the vendor's API, polls a bulk job (the emulators run one
only as it is polled), and reads the emulator's `GET /_emulator/state` dump: who opted out, who can be
edited, one address per contact, the bulk jobs as the state store names them, and the part of the
account listsync answers for.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

from tests.crash.subprocesses import REPO, Emulator

Dump = dict[str, Any]  # one emulator's `GET /_emulator/state`


class CrashEsp(ABC):
    name: ClassVar[str]  # `listsync emulate NAME`
    title: ClassVar[str]  # the vendor's name, in the report and in problems
    rule_file: ClassVar[str]  # the example rule set under rules/
    jobs_named: ClassVar[str]  # what its bulk jobs are, in the report ("tag batches")
    running: ClassVar[frozenset[str]]  # a job's statuses before it ends

    def __init__(self, emulator: Emulator) -> None:
        self.emulator = emulator

    @property
    def rules(self) -> Path:
        return REPO / "rules" / self.rule_file

    # -- the world's setup ------------------------------------------------------------------------
    @abstractmethod
    def rules_edits(self) -> dict[str, str]:
        """Text of the example rules' ESP part, each replaced to reach this emulator: its address,
        its account, and a call budget no number of restarts exhausts."""

    @abstractmethod
    def secrets(self) -> dict[str, str]:
        """The environment variables the rules read the ESP's secrets from, set to the emulator's."""

    def authorise(self, rules: Path, env: dict[str, str]) -> None:  # noqa: B027 (most need nothing)
        """What a person does once before the first run, beyond writing the rules (nothing, unless
        the vendor signs in with OAuth2)."""

    # -- a person's edit --------------------------------------------------------------------------
    @abstractmethod
    async def unsubscribe(self, email: str) -> int:
        """`email` unsubscribes in the ESP, through the vendor's API; the number of calls it took."""

    # -- the vendor's own work --------------------------------------------------------------------
    @abstractmethod
    async def poll(self, job: str) -> None:
        """Ask the vendor's API for a job's status (named as the state store names it): what moves an
        emulated job on, where a real vendor runs it whether asked or not."""

    # -- reading the dump -------------------------------------------------------------------------
    @abstractmethod
    def unsubscribed(self, esp: Dump) -> set[str]:
        """Every address opted out in the ESP in any way (lower case)."""

    @abstractmethod
    def mailable(self, esp: Dump) -> set[str]:
        """Addresses subscribed in the ESP and on a campaign's list (lower case): whom an edit may pick."""

    @abstractmethod
    def addresses(self, esp: Dump) -> list[str]:
        """One address per contact the ESP holds (lower case), so that a duplicate shows twice."""

    @abstractmethod
    def jobs(self, esp: Dump) -> dict[str, str]:
        """Every bulk job the ESP ran, named as the state store names it, with its status."""

    @abstractmethod
    def synced(self, esp: Dump, mapped: set[str]) -> Dump:
        """The dump as far as listsync answers for it, as parts each a list of records (contacts,
        lists, ...): without the jobs it took, and of each contact's fields only the `mapped` ones (the
        emulator generates others, some of them dates counted from the moment it started, which
        differ between two emulators)."""
