"""Generated TOML for the rule-file fuzz tests: values, a writer, and mutations of real rule sets.

The fuzz tests (`tests/test_fuzz_rules.py`) need rule files that are almost right, since those reach
deep into the loader, as well as plain junk. The standard library reads TOML but does not write it,
so a small writer lives here; it covers what the generated documents hold (tables, arrays of
tables, inline tables, every scalar type) and nothing more. The mutations are the mistakes a person
makes by hand: a key dropped, misspelt or moved, a value of the wrong type or out of range, a table
repeated or replaced, a line cut short.
"""

from __future__ import annotations

import copy
import math
import re
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any

import msgspec
from hypothesis import strategies as st

from engine import registry, ruleset

ROOT = Path(__file__).resolve().parents[1]
BASE_FILES = (
    ROOT / "rules" / "workbooks-dotdigital.toml",
    ROOT / "rules" / "demo-files.toml",
    ROOT / "tests" / "rules_cases" / "complete.toml",
)
_BARE = re.compile(r"[A-Za-z0-9_-]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

ADAPTERS = sorted(registry.available())
# Every key the rules language and the installed adapters' settings know: renamed and misplaced
# keys come from here, so a mutation is often a plausible mistake rather than noise.
KNOWN_KEYS = sorted(
    {
        info.encode_name
        for struct in (
            ruleset.RuleSet,
            ruleset.SideRules,
            ruleset.Limits,
            ruleset.FieldLimits,
            ruleset.Entities,
            ruleset.FieldMapping,
            ruleset.Consent,
            ruleset.Campaigns,
            ruleset.Lists,
            ruleset.Intervals,
            ruleset.Activity,
            ruleset.CampaignTotalsFields,
            ruleset.Safety,
            ruleset.SecretRef,
            *(registry.adapter_factory(name).settings_type for name in ADAPTERS),
        )
        for info in msgspec.structs.fields(struct)
    }
    | {"client_secret", "token"}
)

# Values a person might write somewhere: right ones in the wrong place, near misses, edge cases.
TRICKY_STRINGS = [
    *("", " ", "files", "workbooks", "dotdigital", "fake", "Files", "text", "txt", "numeric", "date"),
    *("boolean", "person", "lead", "both", "crm", "esp", "crm_to_esp", "esp_to_crm", "never", "from_crm"),
    *("from_esp", "opt_out_wins", "open", "click", "bounce", "unsubscribe", "remove_from_lists", "keep"),
    *("15m", "1s", "30d", "0s", "1.5h", "15 minutes", "-1m", "1w", "1H", "m", "99999999999999999999999d"),
    *("{name}", "{name:.60} ({key:.20})", "{", "}", "{}", "{name!r}", "{name!z}", "{name!s:.10}"),
    *("{name:>999999999}", "{name:99999999999999999999}", "{name:.0}", "{0}", "{name[0]}", "{name.x}"),
    *("{{literal}}", "{name:{key}}", "{unknown}", "{name:,d}", "{cf_marketing_campaign_public_name:.120}"),
    *("~", "~nosuchuser-listsync/state.sqlite3", "~/state.sqlite3", "/", ".", "..", "a\x00b", "a\nb"),
    *(
        "state/../x",
        "\u202e",
        "ＦＩＲＳＴＮＡＭＥ",
        "All Contacts",
        "Test",
        "FIRST NAME",
        "x" * 201,
        "A" * 21,
    ),
    *("*", "http://", "https://r1-api.dotdigital.com", "not a url", "-", "_", "é" * 300, "\t"),
]
_DURATIONS = ["15m", "1s", "30d", "0s", "1.5h", "15 minutes", "-1m", "1w", "1H", "m", "01m", "9" * 30 + "d"]
_TEMPLATES = [
    "{name}",
    "{name:.60} ({key:.20})",
    "{",
    "}",
    "{}",
    "{name!r}",
    "{name!z}",
    "{name!z:.5}",
    "{name!s:.10}",
]
_TEMPLATES += ["{name:>999999999}", "{name:99999999999999999999}", "{name:9999999999}", "{name:.0}", "{0}"]
_TEMPLATES += ["{name[0]}", "{name.x}", "{{literal}}", "{name:{key}}", "{unknown}", "{name:,d}", "{name:d}"]
_TEMPLATES += ["{name:%}", "{name:=^40}", "{name:\x00<9}", "{key}{key}{key}", " ", "\n{name}", "{name!}"]
_PATHS = ["~nosuchuser-listsync/state.sqlite3", "~", "~/x", "a\x00b", ".", "", "x/" * 40, "\u202e.sqlite3"]
_FIELD_NAMES = ["FIRSTNAME", "firstname", "FirstName", "A" * 21, "FIRST NAME", "", "Ü", "email", "EMAIL"]
_FIELD_NAMES += ["person_first_name", "first_name", "x" * 201, "a\nb", "cf_score"]
# Values worth trying under particular keys, besides any value at all.
TRICKY_BY_KEY: dict[str, list[object]] = {
    **dict.fromkeys(["period", "members", "contacts", "activity", "imports", "backfill"], _DURATIONS),
    **dict.fromkeys(["template", "fallback", "master"], _TEMPLATES),
    **dict.fromkeys(["state", "path", "campaigns", "delta", "file"], _PATHS),
    **dict.fromkeys(["crm", "esp", "crm_lead", "flag_field", "sends", "opens"], _FIELD_NAMES),
    "adapter": [*ADAPTERS, "file", "", "Files", "x" * 300],
    "env": ["", "A\x00B", "NOT_SET_ANYWHERE", "="],
    "name": ["", "-x", "a" * 65, "a" * 64, "ok.name", "é", "a b"],
    "kinds": [[], ["person", "person"], ["people"], "person", [["lead"]]],
    "integrated": [[], ["*"], "*", [1], [""]],
    "record": [[], ["open", "opens"], ["click"] * 3],
}
TRICKY_NUMBERS = [0, -1, 1, 2, 20, 255, 10_000, 2**31, 2**63, 2**64, -(2**63) - 1, 10**30]
TRICKY_FLOATS = [0.0, -0.0, 0.5, 1.0, 1.1, -0.1, 1e300, math.inf, -math.inf, math.nan]

_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=24)
_huge_text = st.integers(min_value=200, max_value=20_000).map(lambda n: "ẞ" * n)
_offsets = st.integers(min_value=-23 * 60, max_value=23 * 60).map(lambda m: timezone(timedelta(minutes=m)))
scalars = st.one_of(
    st.sampled_from(TRICKY_STRINGS),
    st.sampled_from(TRICKY_NUMBERS),
    st.sampled_from(TRICKY_FLOATS),
    st.booleans(),
    _text,
    _huge_text,
    st.integers(),
    st.floats(),
    st.dates(),
    st.datetimes(timezones=st.none() | _offsets),
    st.times(),
)
keys = st.one_of(st.sampled_from(KNOWN_KEYS), _text, st.from_regex(r"\A[a-z_]{1,12}\Z"), _huge_text)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=4),
    max_leaves=8,
)


def base_documents() -> list[tuple[Path, str, dict[str, Any]]]:
    """The real rule sets: path, text, parsed."""
    import tomllib

    found = []
    for path in BASE_FILES:
        text = path.read_text(encoding="utf-8")
        found.append((path, text, tomllib.loads(text)))
    return found


# -- writing ----------------------------------------------------------------------------------------
def dumps(document: dict[str, Any]) -> str:
    """`document` as TOML: scalars first, then tables by header, arrays of tables as [[...]]."""
    lines: list[str] = []
    _table(document, (), lines)
    return "\n".join(lines) + "\n"


def _table(table: dict[str, Any], path: tuple[str, ...], lines: list[str]) -> None:
    for key, value in table.items():
        if not _is_table(value) and not _is_table_array(value):
            lines.append(f"{_key(key)} = {_value(value)}")
    for key, value in table.items():
        where = (*path, key)
        header = ".".join(map(_key, where))
        if _is_table(value):
            lines.append(f"[{header}]")
            _table(value, where, lines)
        elif _is_table_array(value):
            for item in value:
                lines.append(f"[[{header}]]")
                _table(item, where, lines)


def _is_table(value: Any) -> bool:
    return isinstance(value, dict)


def _is_table_array(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, dict) for item in value)


def _key(key: str) -> str:
    return key if _BARE.fullmatch(key) else _string(key)


def _string(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace('"', '\\"')
    return '"' + _CONTROL.sub(lambda m: f"\\u{ord(m.group()):04x}", escaped) + '"'


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return _string(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(_value(item) for item in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"not a TOML value: {value!r}")


# -- mutating a parsed document -----------------------------------------------------------------------
Slot = tuple[Any, Any]  # (the dict or list holding a value, its key or index)


def slots(node: Any) -> list[Slot]:
    """Every place in `node` that holds a value, depth first."""
    found: list[Slot] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        found.append((node, key))
        found += slots(value)
    return found


def tables(node: Any) -> list[dict[str, Any]]:
    found = [node] if isinstance(node, dict) else []
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
    for child in children:
        found += tables(child)
    return found


def near_miss(draw: st.DrawFn, key: str) -> str:
    """`key` with one typo: a letter dropped, doubled or changed, two swapped, or case changed."""
    if not key:
        return "x"
    at = draw(st.integers(min_value=0, max_value=len(key) - 1))
    how = draw(st.sampled_from(["drop", "double", "swap", "change", "upper"]))
    if how == "drop":
        return key[:at] + key[at + 1 :] or "x"
    if how == "double":
        return key[:at] + key[at] + key[at:]
    if how == "swap" and at + 1 < len(key):
        return key[:at] + key[at + 1] + key[at] + key[at + 2 :]
    if how == "upper":
        return key.upper() if key.upper() != key else key + "_"
    return key[:at] + draw(st.sampled_from("aeiosty_-.")) + key[at + 1 :]


@st.composite
def mutated_documents(draw: st.DrawFn, documents: list[dict[str, Any]]) -> dict[str, Any]:
    """One of `documents` with one to four mutations."""
    document = copy.deepcopy(draw(st.sampled_from(documents)))
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        mutate(draw, document)
    return document


def mutate(draw: st.DrawFn, document: dict[str, Any]) -> None:
    """Apply one mistake to `document`, in place."""
    how = draw(st.sampled_from(["set", "set", "drop", "add", "rename", "repeat", "retype"]))
    places = slots(document)
    if how in ("set", "drop", "rename", "retype") and places:
        holder, key = draw(st.sampled_from(places))
        if how == "set":
            tricky = TRICKY_BY_KEY.get(key) if isinstance(key, str) else None
            holder[key] = draw(st.sampled_from(tricky)) if tricky and draw(st.booleans()) else draw(values)
        elif how == "drop":
            del holder[key]
        elif how == "retype":
            old = holder[key]
            holder[key] = draw(st.sampled_from([[old], {"value": old}, str(old)[:40], 1, True, []]))
        elif isinstance(holder, dict):
            typo = draw(st.booleans())
            new = near_miss(draw, key) if typo else draw(st.sampled_from(KNOWN_KEYS))
            holder[new] = holder.pop(key)
    elif how == "add":
        table = draw(st.sampled_from(tables(document)))
        typo = draw(st.booleans())
        new = near_miss(draw, draw(st.sampled_from(KNOWN_KEYS))) if typo else draw(keys)
        table[new] = draw(values)
    elif how == "repeat":
        arrays = [(h, k) for h, k in places if isinstance(h[k], list) and h[k]]
        if arrays:
            holder, key = draw(st.sampled_from(arrays))
            item = draw(st.sampled_from(holder[key]))
            holder[key].insert(draw(st.integers(0, len(holder[key]))), copy.deepcopy(item))
        else:
            document["fields"] = [{"crm": "x", "esp": "X"}] * 2


# -- mutating the text ------------------------------------------------------------------------------
JUNK_LINES = [
    "[crm]",
    "[esp]",
    "[[fields]]",
    "[fields]",
    "[esp.limits]",
    "[esp.limits.fields]",
    "[[esp]]",
    "[safety]",
    "[crm.settings]",
    "name = 1",
    'name = "again"',
    "state =",
    "= 1",
    'esp = "X"',
    "crm.adapter = 'files'",
    "a.b.c = { x = [1, {y = 2}] }",
    "[a.'b'.\"c\"]",
    'x = """',
    "x = '''",
    'x = "unterminated',
    "x = [1, 2",
    "x = { a = 1",
    "x = 1979-05-27T07:32:00Z",
    "x = 07:32:00",
    "x = 0x_1",
    "# a comment",
    "",
    "\t",
    'x = "\\ud800"',
    "x = 1 # trailing",
    "'quoted key' = 1",
    "# a comment with odd line ends: \u2028 \x85 \u2029",
    'x = "a\u2028b\x85c"',
    "x = " + "[" * 3000 + "]" * 3000,
    "x = " + "[" * 400 + "]" * 400,
    "x = " + "{a = " * 300 + "1" + "}" * 300,
    '"" = 1',
]


@st.composite
def mutated_texts(draw: st.DrawFn, texts: list[str]) -> str:
    """One of `texts` with one to four line-level edits."""
    lines = draw(st.sampled_from(texts)).split("\n")
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        at = draw(st.integers(min_value=0, max_value=max(len(lines) - 1, 0)))
        how = draw(
            st.sampled_from(["drop", "repeat", "swap", "insert", "insert", "cut", "splice", "chars", "ends"])
        )
        if not lines:
            lines = [""]
        if how == "drop":
            del lines[at]
        elif how == "repeat":
            lines.insert(at, lines[at])
        elif how == "swap":
            other = draw(st.integers(min_value=0, max_value=len(lines) - 1))
            lines[at], lines[other] = lines[other], lines[at]
        elif how == "insert":
            line = draw(
                st.sampled_from(JUNK_LINES)
                | st.builds(lambda k, v: f"{_key(k)} = {_value(v)}", keys, values)
                | st.builds(lambda k: f"[{_key(k)}]", keys)
            )
            lines.insert(at, line)
        elif how == "cut":
            text = "\n".join(lines)
            lines = text[: draw(st.integers(min_value=0, max_value=len(text)))].split("\n")
        elif how == "splice":
            line = lines[at]
            start = draw(st.integers(min_value=0, max_value=len(line)))
            end = draw(st.integers(min_value=start, max_value=len(line)))
            lines[at] = (
                line[:start] + draw(_text | st.sampled_from(['"', "'", "[", "]", "{", "="])) + line[end:]
            )
        elif how == "ends":
            # A byte-order mark, Windows or old Mac line ends, or trailing junk.
            end = draw(st.sampled_from(["\r\n", "\r", "\n"]))
            lines = [draw(st.sampled_from(["\ufeff", "", " "])) + "\n".join(lines).replace("\n", end)]
        else:
            lines[at] = lines[at] + draw(st.text(max_size=6))
    return "\n".join(lines)
