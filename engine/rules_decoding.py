"""Decoding a TOML table into rules Structs while collecting every problem, not just the first.

`msgspec.convert` stops at the first error. To report all of them, `decode` walks the value and
the target type together: a Struct's keys are checked one by one (unknown keys get a suggestion,
missing required keys are named) and each field's value is decoded on its own, as is each element
of an array of tables. Only scalar leaves are handed to msgspec whole, and its terse messages are
rewritten to say what was expected and what was found, with the nearest allowed value.
"""

from __future__ import annotations

import difflib
import re
import types
import typing
from dataclasses import dataclass
from typing import Annotated, Any, Literal, Union

import msgspec
from msgspec import Meta, Struct

from engine.ruleset import Duration, SecretRef
from engine.toml_positions import KeyPath

SECRET_HINT = 'secrets come from { env = "VAR" } or { file = "path" }, never inline'


@dataclass(frozen=True)
class Issue:
    """A problem at a key path; the loader adds file, line and column."""

    path: KeyPath
    message: str


class Failed:
    """Marks a value that did not decode; its problems are already in the issue list."""


FAILED = Failed()

_TYPE_NAMES = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "bool": "true or false",
    "array": "an array",
    "object": "a table",
    "date": "a date",
    "time": "a time",
    "datetime": "a date-time",
}
# What must not reach a problem's text unescaped: it is printed one problem per line.
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_SHOWN_MAX = 60
_ERROR_AT = re.compile(r"^(?P<message>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)
_PATH_PART = re.compile(r"\.(?P<key>[A-Za-z_][A-Za-z0-9_]*)|\[(?P<index>\d+)\]")


def decode(value: Any, tp: Any, path: KeyPath, issues: list[Issue], *, secret: bool = False) -> Any:
    """`value` decoded as `tp`, or `FAILED` after appending every problem to `issues`.

    With `secret`, values are never quoted in messages (the path is inside adapter settings).
    """
    struct = _struct_in(tp)
    if struct is not None and isinstance(value, dict):
        return _decode_struct(value, struct, path, issues, secret=secret)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (tuple, list) and isinstance(value, list) and _struct_in(args[0]) is not None:
        before = len(issues)
        for index, item in enumerate(value):
            decode(item, args[0], (*path, index), issues, secret=secret)
        if len(issues) > before:
            return FAILED
    if origin is dict and isinstance(value, dict) and _struct_in(args[1]) is not None:
        before = len(issues)
        for key, item in value.items():
            decode(item, args[1], (*path, key), issues, secret=secret)
        if len(issues) > before:
            return FAILED
    return _convert(value, tp, path, issues, secret=secret)


def decode_fields(
    value: dict[str, Any], struct: type[Struct], path: KeyPath, issues: list[Issue], *, secret: bool
) -> dict[str, Any]:
    """Each field of `struct` decoded from `value` on its own: the default where a key is absent,
    `FAILED` where it had problems. Unknown and missing keys are reported."""
    fields = {info.encode_name: info for info in msgspec.structs.fields(struct)}
    for key in value:
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f'; did you mean "{close[0]}"?' if close else f"; expected one of {_quoted(fields)}"
            issues.append(Issue((*path, key), f"unknown key {shown_text(key)}{hint}"))
    decoded: dict[str, Any] = {}
    for key, info in fields.items():
        if key in value:
            decoded[info.name] = decode(value[key], info.type, (*path, key), issues, secret=secret)
        elif info.required:
            issues.append(Issue((*path, key), f'missing required key "{key}"'))
            decoded[info.name] = FAILED
        elif info.default is not msgspec.NODEFAULT:
            decoded[info.name] = info.default
        else:
            decoded[info.name] = info.default_factory()
    return decoded


def _decode_struct(
    value: dict[str, Any], struct: type[Struct], path: KeyPath, issues: list[Issue], *, secret: bool
) -> Any:
    before = len(issues)
    decode_fields(value, struct, path, issues, secret=secret)
    if len(issues) > before:
        return FAILED
    # Everything below decoded; this catches what only the whole table can say (__post_init__).
    return _convert(value, struct, path, issues, secret=secret)


def _convert(value: Any, tp: Any, path: KeyPath, issues: list[Issue], *, secret: bool) -> Any:
    try:
        return msgspec.convert(value, tp)
    except msgspec.ValidationError as exc:
        match = _ERROR_AT.match(str(exc))
        assert match is not None  # the pattern matches any string
        inner = _parse_error_path(match.group("path") or "")
        where = (*path, *inner)
        found = _follow(value, inner)
        issues.append(Issue(where, _explain(match.group("message"), tp, found, secret=secret)))
        return FAILED


def _parse_error_path(text: str) -> KeyPath:
    """msgspec's `.fields[1].type` -> ("fields", 1, "type"); stops at a part it cannot name."""
    parts: list[str | int] = []
    position = 0
    while position < len(text):
        match = _PATH_PART.match(text, position)
        if match is None:
            break
        index = match.group("index")
        parts.append(int(index) if index is not None else match.group("key"))
        position = match.end()
    return tuple(parts)


def _follow(value: Any, path: KeyPath) -> Any:
    for part in path:
        try:
            value = value[part]
        except (KeyError, IndexError, TypeError):
            return None
    return value


def _explain(message: str, tp: Any, found: Any, *, secret: bool) -> str:
    """A person-facing message for one msgspec error at a leaf of type `tp`."""
    if _mentions(tp, SecretRef) and not isinstance(found, dict):
        return f"expected a secret reference; {SECRET_HINT}"
    if message.startswith("Invalid enum value"):
        allowed = _literal_values(tp)
        close = difflib.get_close_matches(str(found), [str(a) for a in allowed], n=1)
        shown = "" if secret else f" {shown_text(str(found))}"
        hint = f'; did you mean "{close[0]}"?' if close else ""
        return f"invalid value{shown}; expected one of {_quoted(allowed)}{hint}"
    wrong = re.match(r"Expected `(?P<expected>[^`]*)`, got `(?P<got>[^`]*)`$", message)
    if wrong is not None:
        names = [name for name in wrong.group("expected").split(" | ") if name != "null"]
        expected = " or ".join(_TYPE_NAMES.get(name, name) for name in names)
        got = _TYPE_NAMES.get(wrong.group("got"), wrong.group("got"))
        return f"expected {expected}, found {got}{_shown(found, secret, ' ({})')}"
    if message.startswith("Expected `str` matching regex"):
        if tp == Duration:
            wanted = "a duration such as 30s, 15m, 1h or 1d"
        else:
            meta = _meta(tp)
            if meta is not None and meta.description:
                wanted = meta.description
            else:
                wanted = f"a string matching {meta.pattern if meta else 'its pattern'}"
        return f"expected {wanted}{_shown(found, secret, ', found {}')}"
    bound = re.match(r"Expected `\w+`(?P<length> of length)? (?P<op>[<>]=?) (?P<n>\S+)$", message)
    if bound is not None:
        words = {">=": "at least", ">": "more than", "<=": "at most", "<": "less than"}
        limit = words[bound.group("op")] + " " + bound.group("n")
        if not bound.group("length"):
            return f"must be {limit}{_shown(found, secret, ', found {}')}"
        if bound.group("op") == ">=" and bound.group("n") == "1":
            return "must not be empty"
        return f"must be {limit} characters long"
    return message[:1].lower() + message[1:]


def _shown(found: Any, secret: bool, template: str) -> str:
    """`found` rendered into `template`, or nothing for settings values and tables."""
    if secret or found is None or isinstance(found, dict | list):
        return ""
    if isinstance(found, bool):
        text = "true" if found else "false"
    elif isinstance(found, str):
        text = shown_text(found)
    else:
        text = repr(found)[:60]
    return template.format(text)


def shown_text(text: str) -> str:
    """`text` quoted for a problem's message: cut to 60 characters, control characters escaped."""
    cut = text if len(text) <= _SHOWN_MAX else text[: _SHOWN_MAX - 3] + "..."
    return f'"{one_line(cut)}"'


def one_line(text: str) -> str:
    """`text` with line breaks and other control characters escaped (``\\n``, ``\\x1e``, ``\\u2028``)."""
    return _UNPRINTABLE.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def _quoted(values: typing.Iterable[object]) -> str:
    return ", ".join(f'"{value}"' for value in values)


def _struct_in(tp: Any) -> type[Struct] | None:
    """The Struct a value of type `tp` decodes into when it is a table, if there is exactly one."""
    if isinstance(tp, type) and issubclass(tp, Struct):
        return tp
    origin = typing.get_origin(tp)
    if origin is Annotated:
        return _struct_in(typing.get_args(tp)[0])
    if origin in (Union, types.UnionType):
        structs = [s for s in map(_struct_in, typing.get_args(tp)) if s is not None]
        return structs[0] if len(structs) == 1 else None
    return None


def _mentions(tp: Any, target: type) -> bool:
    return tp is target or any(_mentions(arg, target) for arg in typing.get_args(tp))


def _literal_values(tp: Any) -> list[object]:
    if typing.get_origin(tp) is Literal:
        return list(typing.get_args(tp))
    return [value for arg in typing.get_args(tp) for value in _literal_values(arg)]


def _meta(tp: Any) -> Meta | None:
    if typing.get_origin(tp) is Annotated:
        for extra in tp.__metadata__:
            if isinstance(extra, Meta):
                return extra
    for arg in typing.get_args(tp):
        found = _meta(arg)
        if found is not None:
            return found
    return None
