"""The Workbooks emulator's query engine: filters (`_ff[]`/`_ft[]`/`_fc[]`, `_fm`), sorts, paging, columns.

Kept apart from the database (`emulator_state`) so the read rules of `shared/reference/workbooks-api.md`
§3 live in one place and can be tested without storage; the state module only hands it rows.
Choices where the reference is UNSURE:
- String filters and sorts ignore case (a MySQL collation).
- Without `_start`, `_limit` is ignored and a page holds 100 rows; `_limit` is capped at `max_page_size`.
- Unknown filter, sort or select columns are refused with 406 (bad params).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from adapters.workbooks.emulator_types import FieldSpec, TypeSpec, WorkbooksError, coerce, render

Record = dict[str, Any]
Predicate = Callable[[Record], bool]
Clock = Callable[[], datetime]


@dataclass(frozen=True)
class Filter:
    field: str
    op: str
    value: str = ""


@dataclass
class Query:
    filters: list[Filter] = field(default_factory=list)
    match: str = "and"
    start: int | None = None
    limit: int | None = None
    sort: list[tuple[str, bool]] = field(default_factory=list)  # (field, descending)
    columns: list[str] | None = None
    skip_total: bool = False


def _key(value: Any) -> Any:
    return value.casefold() if isinstance(value, str) else value


def _ordered(left: Any, right: Any, test: Callable[[Any, Any], bool]) -> bool:
    if left is None or right is None:
        return False
    if isinstance(left, datetime) and not isinstance(right, datetime):
        left = left.date()
    try:
        return test(_key(left), _key(right))
    except TypeError:
        return False


ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
}
TODAY = {"today": ORDER["ge"], "ge_today": ORDER["ge"], "gt_today": ORDER["gt"]}
TODAY |= {"le_today": ORDER["le"], "lt_today": ORDER["lt"]}


def compile_match(expression: str, count: int) -> Callable[[Sequence[bool]], bool]:
    """`_fm`: `and`, `or`, or a boolean expression over 1-based filter indices (AND OR XOR NOT ! ())."""
    text = expression.strip().lower()
    if text in ("", "and"):
        return all
    if text == "or":
        return any
    tokens: list[str] = re.findall(r"\d+|and|or|xor|not|!|\(|\)|\S+", text)
    pos = 0
    Node = Callable[[Sequence[bool]], bool]

    def take(expected: str | None = None) -> str:
        nonlocal pos
        if pos >= len(tokens) or (expected is not None and tokens[pos] != expected):
            raise WorkbooksError(406, "invalid_filter_match", f"cannot parse _fm={expression!r}")
        pos += 1
        return tokens[pos - 1]

    def binary(word: str, inner: Callable[[], Node], join: Callable[[bool, bool], bool]) -> Node:
        node = inner()
        while pos < len(tokens) and tokens[pos] == word:
            take()
            node = (lambda a, b: lambda v: join(a(v), b(v)))(node, inner())
        return node

    def atom() -> Node:
        token = take()
        if token in ("not", "!"):
            inner = atom()
            return lambda v: not inner(v)
        if token == "(":
            node = either()
            take(")")
            return node
        if not token.isdigit() or not 1 <= int(token) <= count:
            raise WorkbooksError(406, "invalid_filter_match", f"_fm refers to no filter: {token!r}")
        index = int(token) - 1
        return lambda v: v[index]

    def either() -> Node:
        return binary("or", lambda: binary("xor", lambda: binary("and", atom, lambda a, b: a and b), ne), or_)

    ne: Callable[[bool, bool], bool] = lambda a, b: a != b  # noqa: E731
    or_: Callable[[bool, bool], bool] = lambda a, b: a or b  # noqa: E731
    node = either()
    if pos != len(tokens):
        raise WorkbooksError(406, "invalid_filter_match", f"cannot parse _fm={expression!r}")
    return node


def field_of(spec: TypeSpec, name: str, role: str) -> FieldSpec:
    """The field `name` of `spec`, or 406 `unknown_<role>` (role: filter, sort or column)."""
    if name not in spec.fields:
        raise WorkbooksError(406, f"unknown_{role}", f"{spec.class_name} has no field {name!r}")
    return spec.fields[name]


def selector(spec: TypeSpec, filters: Sequence[Filter], match: str, now: Clock) -> Predicate:
    """One predicate for a list of filters combined by `_fm`; `now` gives "today" for date filters."""
    predicates = [predicate(spec, f, now) for f in filters]
    combine = compile_match(match, len(predicates))
    return lambda record: combine([p(record) for p in predicates])


def predicate(spec: TypeSpec, flt: Filter, now: Clock) -> Predicate:
    """One filter as a test of a record; 406 for an unknown field, operator or value."""
    fs, name, op = field_of(spec, flt.field, "filter"), flt.field, flt.op

    def value(raw: str) -> Any:
        try:
            return _key(coerce(FieldSpec(name, fs.datatype), raw.strip() if fs.datatype != "string" else raw))
        except ValueError as exc:
            raise WorkbooksError(406, "invalid_filter_value", f"{name} {op} {raw!r}: {exc}") from exc

    if op in ("blank", "not_blank"):
        return lambda r: (r.get(name) in (None, "")) == (op == "blank")
    if op in ("true", "false"):
        return lambda r: (r.get(name) is True) == (op == "true")
    if op in TODAY:
        today, test = now().date(), TODAY[op]
        return lambda r: (
            _ordered(r.get(name), today, test)
            and (op != "today" or _ordered(r.get(name), today, ORDER["le"]))
        )
    if op in ("eq", "ne"):
        values = {value(v.replace("\\,", ",")) for v in re.split(r"(?<!\\),", flt.value)}
        return lambda r: (_key(r.get(name)) in values) == (op == "eq")
    if op in ORDER:
        bound, test = value(flt.value), ORDER[op]
        return lambda r: _ordered(r.get(name), bound, test)
    if op in ("ct", "nct", "bg", "nbg"):
        text = flt.value.casefold()
        found: Callable[[str], bool] = (
            (lambda s: text in s) if op in ("ct", "nct") else (lambda s: s.startswith(text))
        )
        return lambda r: found(str(render(r.get(name)) or "").casefold()) == (op in ("ct", "bg"))
    if op in ("between", "not_between"):
        try:
            low, high = (value(str(v)) for v in json.loads(flt.value))
        except (ValueError, TypeError) as exc:
            raise WorkbooksError(406, "invalid_filter_value", f"{name} {op} needs [a,b]") from exc
        return lambda r: (
            (_ordered(r.get(name), low, ORDER["ge"]) and _ordered(r.get(name), high, ORDER["le"]))
            == (op == "between")
        )
    raise WorkbooksError(406, "invalid_filter_operator", f"unknown filter operator {op!r}")


def matching(spec: TypeSpec, records: Iterable[Record], query: Query, *, now: Clock) -> list[Record]:
    """The records a read matches (tombstones only when a filter names `is_deleted`), in its order.

    Apart from `page` so that every page of one paged read can cut the same list (`WorkbooksState.read`)."""
    wanted = selector(spec, query.filters, query.match, now)
    show_deleted = any(f.field == "is_deleted" for f in query.filters)
    rows = [r for r in records if (show_deleted or not r["is_deleted"]) and wanted(r)]
    for name, descending in reversed([*query.sort, ("id", False)] if query.sort else [("id", False)]):
        field_of(spec, name, "sort")
        present = [r for r in rows if r.get(name) is not None]
        present.sort(key=lambda r: _key(r[name]), reverse=descending)
        absent = [r for r in rows if r.get(name) is None]
        rows = absent + present if not descending else present + absent
    return rows


def page(spec: TypeSpec, rows: Sequence[Record], query: Query, *, max_page_size: int) -> dict[str, Any]:
    """One page of `rows` (as `matching` gives them) as a `.api` read answers it: cut, columns chosen."""
    limit = min(query.limit or 100, max_page_size) if query.start is not None else 100
    cut = rows[query.start or 0 :][:limit]
    for name in query.columns or ():
        field_of(spec, name, "column")
    columns = None if query.columns is None else {"id", "lock_version", *query.columns}
    data = [{k: render(v) for k, v in r.items() if columns is None or k in columns} for r in cut]
    return {"success": True, "total": len(cut) if query.skip_total else len(rows), "data": data}
