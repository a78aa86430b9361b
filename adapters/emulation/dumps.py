"""Comparing emulator state dumps (``GET /_emulator/state``) of runs that took different paths.

Two syncs that end in the same state still differ in record ids, lock versions and timestamps, and in
the order records were made; a crash or a retry changes all of those and must change nothing else.
``comparable`` removes them, so a test can assert ``comparable(faulted) == comparable(clean)``.
"""

from __future__ import annotations

import json
from typing import Any

VOLATILE = frozenset(
    {"id", "lock_version", "object_ref", "created", "modified", "date_removed", "created_through"}
    | {"created_at", "updated_at", "created_by", "updated_by"}
    | {"opt_in_date", "opt_out_date", "last_changed"}
)


def comparable(dump: Any) -> Any:
    """`dump` without ids, versions and timestamps (keys in VOLATILE or ending in ``_id``), every list
    in a canonical order."""
    if isinstance(dump, dict):
        return {k: comparable(v) for k, v in dump.items() if k not in VOLATILE and not k.endswith("_id")}
    if isinstance(dump, list):
        return sorted((comparable(item) for item in dump), key=lambda item: json.dumps(item, sort_keys=True))
    return dump
