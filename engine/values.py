"""Normalising emails and coercing raw field values to their mapped types.

Both sides send loosely typed data (a number as "42", a date as "2024-05-01T00:00:00Z", a boolean
as "yes"). Everything is coerced to one canonical form per type so that the diff compares like with
like: text -> str, numeric -> int when whole else float, date -> ISO ``YYYY-MM-DD`` str,
boolean -> bool; empty values are ``None``. A value that cannot be coerced raises `ValueError`
with a reason a person can act on; the caller turns it into a per-record rejection.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable

from engine.ruleset import FieldType

Value = str | int | float | bool | None

# Deliberately simple: one @, a dot in the domain, no spaces. Vendors validate further and their
# per-row faults come back as rejections.
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s.]+$")
_TRUE = frozenset({"true", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "no", "n", "0", "off"})


def normalise_email(raw: object) -> str:
    """Trimmed, lower-cased email, or `ValueError` saying why it is not one."""
    if not isinstance(raw, str):
        raise ValueError(f"email must be text, got {type(raw).__name__}")
    email = raw.strip().lower()
    if not email:
        raise ValueError("email is empty")
    if not _EMAIL.match(email):
        raise ValueError(f"malformed email {raw!r}")
    return email


def coerce(raw: object, field_type: FieldType) -> Value:
    """The canonical value of `raw` for a field of `field_type`."""
    if raw is None:
        return None
    # Values already in canonical form are by far the most common: answer them without a call.
    if isinstance(raw, str):
        if not raw.strip():
            return None
        if field_type == "text":
            return raw
    elif (type(raw) is int and field_type == "numeric") or (type(raw) is bool and field_type == "boolean"):
        return raw
    return _COERCERS[field_type](raw)


def _text(raw: object) -> str:
    if isinstance(raw, bool) or not isinstance(raw, str | int | float):
        raise ValueError(f"expected text, got {type(raw).__name__}")
    return raw if isinstance(raw, str) else _numeric_text(raw)


def _numeric_text(raw: int | float) -> str:
    value = _numeric(raw)
    return str(value)


def _numeric(raw: object) -> int | float:
    if isinstance(raw, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        number = raw
    elif isinstance(raw, str):
        try:
            number = float(raw.strip().replace(",", ""))
        except ValueError:
            raise ValueError(f"expected a number, got {raw!r}") from None
    else:
        raise ValueError(f"expected a number, got {type(raw).__name__}")
    if not math.isfinite(number):
        raise ValueError(f"expected a finite number, got {raw!r}")
    return int(number) if number.is_integer() and abs(number) < 2**53 else number


def _date(raw: object) -> str:
    if isinstance(raw, dt.datetime):
        return raw.date().isoformat()
    if isinstance(raw, dt.date):
        return raw.isoformat()
    if not isinstance(raw, str):
        raise ValueError(f"expected a date, got {type(raw).__name__}")
    text = raw.strip()
    try:
        if len(text) == 10:
            return dt.date.fromisoformat(text).isoformat()
        return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).date().isoformat()
    except ValueError:
        raise ValueError(f"expected an ISO date such as 2024-05-01, got {raw!r}") from None


def _boolean(raw: object) -> bool:
    if isinstance(raw, bool):
        return raw
    if isinstance(raw, int | float) and raw in (0, 1):
        return bool(raw)
    if isinstance(raw, str):
        word = raw.strip().lower()
        if word in _TRUE:
            return True
        if word in _FALSE:
            return False
    raise ValueError(f"expected yes/no, got {raw!r}")


_COERCERS: dict[str, Callable[[object], Value]] = {
    "text": _text,
    "numeric": _numeric,
    "date": _date,
    "boolean": _boolean,
}
