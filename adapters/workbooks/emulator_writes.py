"""The Workbooks emulator's batched-write vocabulary: write objects, field validation and the answer body.

Kept apart from the database (`emulator_state`) so the shape of a `PUT` answer in
`shared/reference/workbooks-api.md` §4 and the per-field checks can be read on their own; the state
module applies the objects, keeps the undo log and checks links between records.
Choices where the reference is UNSURE:
- More than 100 objects in a PUT: HTTP 406 `too_many_objects`; no object is saved.
- Write errors: `errors` is keyed by `"[<object index>]"`; `affected_object_errors` and
  `affected_objects` are parallel to the request (`{}` / `null` for objects without errors / not saved).
- A stale `lock_version` also adds `{"index", "id", "lock_version", "current_lock_version", "message"}`
  to `failures`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from adapters.workbooks.emulator_types import TypeSpec, coerce, render

Record = dict[str, Any]
MAX_BATCH = 100
STALE = "This record cannot be saved since it has already been updated elsewhere."
ROLLED_BACK = "Not saved: another object in this request failed."
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class ObjectError(Exception):
    """One object of a batch refused: errors by field, and the lock versions if it was stale."""

    def __init__(self, errors: dict[str, list[str]], *, stale: dict[str, Any] | None = None) -> None:
        super().__init__(errors)
        self.errors, self.stale = errors, stale


@dataclass
class WriteObject:
    method: str  # POST create, PUT update, DELETE
    id: int
    lock_version: int
    fields: dict[str, str | None]  # raw wire values; None is `:null_value:`


def check_fields(
    spec: TypeSpec, raw: dict[str, str | None], *, creating: bool
) -> tuple[Record, dict[str, list[str]]]:
    """The typed values of `raw` and the errors of each field (unknown, read-only, invalid, blank)."""
    errors: dict[str, list[str]] = {}
    values: Record = {}
    for name, text in raw.items():
        fs = spec.fields.get(name)
        if fs is None or not (fs.createable if creating else fs.updateable):
            errors[name] = ["is not a known attribute" if fs is None else "cannot be set"]
            continue
        try:
            values[name] = coerce(fs, text)
        except ValueError as exc:
            errors[name] = [
                str(exc) if fs.datatype in ("boolean", "picklist") else f"is not a valid {fs.datatype}"
            ]
            continue
        if name.endswith(("[email]]", "[email]")) and values[name] and not EMAIL.match(values[name]):
            errors[name] = ["is not a valid email address"]
    for fs in spec.fields.values():
        if (
            fs.required
            and (name := fs.name) not in errors
            and values.get(name, "" if creating else 0) in ("", None)
        ):
            errors[name] = ["can't be blank"]
    return values, errors


def batch_body(
    spec: TypeSpec, results: Sequence[Record | ObjectError], *, ok: bool, per_object: bool
) -> dict[str, Any]:
    """The JSON answer to a batched write, given each object's saved record or error."""
    info, affected, object_errors, errors, failures = [], [], [], {}, []
    for index, result in enumerate(results):
        if isinstance(result, ObjectError):
            messages = [f"{k} {m}" for k, ms in result.errors.items() for m in ms]
            info.append({"success": False, "errors": messages, "warnings": []})
            errors[f"[{index}]"] = {k: "; ".join(ms) for k, ms in result.errors.items()}
            if result.stale is not None:
                failures.append({"index": index, **result.stale, "message": STALE})
        saved = not isinstance(result, ObjectError) and (ok or per_object)
        if not saved and not isinstance(result, ObjectError):
            info.append({"success": False, "errors": [ROLLED_BACK], "warnings": []})
        elif saved:
            info.append({"success": True, "errors": [], "warnings": []})
        affected.append(
            {k: render(v) for k, v in result.items()} if saved and isinstance(result, dict) else None
        )
        object_errors.append(result.errors if isinstance(result, ObjectError) else {})
    cache = spec.class_name.lower().replace("::", "_")
    body: dict[str, Any] = {
        "success": ok,
        "flash": "saved successfully" if ok else "Some objects could not be saved",
        "affected_object_information": info,
        "affected_objects": affected,
        "updates": {"data": {"immediate": [cache]}},
    }
    if errors:
        body |= {"errors": errors, "affected_object_errors": object_errors}
    if failures:
        body["failures"] = failures
    return body
