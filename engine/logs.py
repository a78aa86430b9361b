"""The service's log: one line per event, for a person on a terminal or as JSON lines for a collector.

Events are logged with `log_event(name, level, **fields)`; the fields travel in the record and each
formatter renders them its own way: `TextFormatter` as ``time level event key=value ...`` and
`JsonFormatter` as one JSON object a line (``ts``, ``level``, ``event``, then the fields). Nothing
secret is ever a field: callers pass rule-set names, counts and error texts, which the adapters
have already redacted.
"""

from __future__ import annotations

import logging
import sys
from datetime import UTC, datetime
from typing import Any, Literal, TextIO

import msgspec

LOGGER = logging.getLogger("listsync")
LogFormat = Literal["text", "json"]
_ENCODER = msgspec.json.Encoder()


def log_event(event: str, level: int = logging.INFO, **fields: Any) -> None:
    LOGGER.log(level, event, extra={"fields": fields})


def _fields(record: logging.LogRecord) -> dict[str, Any]:
    fields = getattr(record, "fields", None)
    return fields if isinstance(fields, dict) else {}


def _timestamp(record: logging.LogRecord) -> str:
    return datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": _timestamp(record), "level": record.levelname.lower(), "event": record.getMessage()}
        return _ENCODER.encode({**line, **_fields(record)}).decode()


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        parts = [_timestamp(record)[:19].replace("T", " "), f"{record.levelname:<7}", record.getMessage()]
        parts += [f"{key}={_text(value)}" for key, value in _fields(record).items() if value is not None]
        return " ".join(parts)


def _text(value: Any) -> str:
    if isinstance(value, dict):
        return ",".join(f"{k}:{v}" for k, v in value.items()) or "-"
    if isinstance(value, float):
        return f"{value:.2f}"
    text = str(value)
    return repr(text) if " " in text or not text else text


def setup_logging(log_format: LogFormat = "text", stream: TextIO | None = None) -> logging.Handler:
    """Send listsync's events to `stream` (stderr) in `log_format`; returns the handler it added."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    LOGGER.addHandler(handler)
    LOGGER.setLevel(logging.INFO)
    LOGGER.propagate = False
    return handler


def show_warnings() -> None:
    """For the one-shot commands: listsync's warnings (a retried call) and errors on stderr as text,
    unless a handler is set already. The service sets its own (`setup_logging`)."""
    if not LOGGER.handlers:
        handler = _Stderr()
        handler.setFormatter(TextFormatter())
        handler.setLevel(logging.WARNING)
        LOGGER.addHandler(handler)
        LOGGER.propagate = False


class _Stderr(logging.StreamHandler[TextIO]):
    """A handler on whatever `sys.stderr` is when a record comes (a test may have swapped it)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = sys.stderr
        super().emit(record)
