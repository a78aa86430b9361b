"""Every error listsync raises, grouped by what the engine does with it.

    ListsyncError
    ├── RulesError ............ a rule file is invalid: report every problem, change nothing
    ├── TransientError ........ retry later, honouring ``retry_after`` seconds when the vendor sent one
    ├── PermanentError ........ stop this run; a person must act (credentials, configuration, refusal)
    │   └── StalePlanError .... a saved plan no longer matches the base or a side
    ├── RejectedRecord ........ one record is bad: skip it, record why, go on with the rest
    └── SafetyStop ............ the plan would do something dangerous: abort before any write

HTTP status codes are mapped onto this tree in one place per vendor client, never ad hoc.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


class ListsyncError(Exception):
    """Base of every error listsync raises on purpose."""


@dataclass(frozen=True)
class RuleProblem:
    """One problem in a rule file, located as precisely as the source allows."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}:{self.column}"
        return f"{where}: {self.path}: {self.message}" if self.path else f"{where}: {self.message}"


class RulesError(ListsyncError):
    """A rule file could not be loaded. Carries every problem found, not just the first."""

    def __init__(self, problems: Sequence[RuleProblem]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class TransientError(ListsyncError):
    """A call failed in a way that may succeed if repeated (rate limit, 5xx, dropped connection)."""

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class PermanentError(ListsyncError):
    """A failure that repeating will not fix; the run stops and says what to do."""


class StalePlanError(PermanentError):
    """A saved plan was made against a base or a snapshot that has since changed."""


class RejectedRecord(ListsyncError):
    """One record cannot be synced; the reason is recorded and the run goes on."""

    def __init__(self, email: str, reason: str) -> None:
        super().__init__(f"{email}: {reason}")
        self.email = email
        self.reason = reason


class SafetyStop(ListsyncError):
    """A plan crossed a safety threshold, or a side looks like an outage. Nothing was written."""

    def __init__(self, reasons: Sequence[str]) -> None:
        self.reasons = tuple(reasons)
        super().__init__("; ".join(self.reasons))
