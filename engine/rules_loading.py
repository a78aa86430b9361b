"""Loading a rule file: TOML in, a validated `RuleSet` and decoded adapter settings out.

A person edits rule files by hand, so a load reports every problem at once, each with
``file:line:col: key.path: message``, instead of one per attempt. The steps: tomllib parses (its
syntax errors carry their own position); `engine.rules_decoding` decodes table by table,
collecting problems; adapter settings are decoded with each adapter's own `settings_type`;
`engine.rules_checks` checks keys against each other and against the adapters' `Capabilities`;
`engine.toml_positions` finds where each problem's key is written.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
from msgspec import Struct

from engine.contract import Capabilities
from engine.errors import PermanentError, RuleProblem, RulesError
from engine.registry import adapter_factory
from engine.rules_checks import Sections, check_crm_fields, check_rules
from engine.rules_decoding import FAILED, SECRET_HINT, Issue, decode, decode_fields, one_line, shown_text
from engine.ruleset import FieldMapping, Name, RuleSet, SecretRef, Side
from engine.toml_positions import KeyPath, SourceMap, format_path

# Names adapters and people give to secrets; such a key must never hold a plain string.
_SECRET_NAME = re.compile(r"(?:^|_)(?:password|passwd|secret|token|apikey)$|_key$", re.IGNORECASE)
_SYNTAX_AT = re.compile(
    r"^(?P<message>.*) \(at (?:line (?P<line>\d+), column (?P<column>\d+)|end of document)\)$"
)


@dataclass(frozen=True)
class LoadedRules:
    """A valid rule file and what it resolves to. Settings and capabilities are None when the
    file was loaded with ``check_adapters=False``."""

    rules: RuleSet
    path: Path
    base_dir: Path
    state_path: Path
    crm_settings: Struct | None = None
    esp_settings: Struct | None = None
    crm_capabilities: Capabilities | None = None
    esp_capabilities: Capabilities | None = None


def load_rules(path: str | Path, *, check_adapters: bool = True) -> LoadedRules:
    """Load and validate the rule file at `path`; `RulesError` carries every problem found."""
    shown = str(path)
    file_path = Path(path).resolve()
    text = _read(shown, file_path)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise RulesError([_syntax_problem(shown, text, exc)]) from None
    except RecursionError:
        # tomllib parses nested arrays and inline tables recursively; Python's stack ends first.
        message = "TOML nested too deeply: arrays or inline tables hundreds of levels inside each other"
        raise RulesError([RuleProblem(shown, 1, 1, "", message)]) from None

    issues: list[Issue] = []
    top = decode_fields(data, RuleSet, (), issues, secret=False)
    _check_nul(data, (), issues)
    state = _state_path(top["state"], issues)
    secret_paths = _check_secret_names(data, issues)
    crm_settings = esp_settings = None
    crm_caps = esp_caps = None
    if check_adapters:
        crm_settings, crm_caps = _adapter("crm", data, issues, secret_paths)
        esp_settings, esp_caps = _adapter("esp", data, issues, secret_paths)
    sections = Sections(
        crm=_ok(top["crm"]),
        esp=_ok(top["esp"]),
        entities=_ok(top["entities"]),
        campaigns=_ok(top["campaigns"]),
        lists=_ok(top["lists"]),
        mappings=_mappings(data.get("fields")),
    )
    issues += check_rules(sections, crm_caps, esp_caps)
    if issues:
        raise RulesError(_locate(shown, text, issues))

    rules = msgspec.convert(data, RuleSet)
    base_dir = file_path.parent
    assert state is not None  # decoded, and expanded without an issue
    return LoadedRules(
        rules=rules,
        path=file_path,
        base_dir=base_dir,
        state_path=state if state.is_absolute() else base_dir / state,
        crm_settings=crm_settings,
        esp_settings=esp_settings,
        crm_capabilities=crm_caps,
        esp_capabilities=esp_caps,
    )


def refuse_missing_crm_fields(loaded: LoadedRules, columns: Mapping[str, frozenset[str]]) -> None:
    """Raise `RulesError`, located in the rule file, for fields the CRM's metadata lacks."""
    issues = check_crm_fields(loaded.rules, columns)
    if issues:
        shown = str(loaded.path)
        raise RulesError(_locate(shown, _read(shown, loaded.path), issues))


def resolve_secret(ref: SecretRef, base_dir: Path) -> str:
    """The secret `ref` points at: an environment variable, or a file relative to `base_dir`."""
    if ref.env is not None:
        value = os.environ.get(ref.env)
        if not value:
            raise PermanentError(f"the secret's environment variable {ref.env} is not set")
        return value
    assert ref.file is not None  # SecretRef names exactly one source
    try:
        secret_file = base_dir / Path(ref.file).expanduser()
    except RuntimeError:  # "~name/..." for a user this system does not know
        raise PermanentError(
            f"the secret file {ref.file!r} names a home directory that does not exist"
        ) from None
    try:
        return secret_file.read_text(encoding="utf-8").rstrip("\r\n")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise PermanentError(f"the secret file {secret_file} cannot be read: {reason}") from None


def _read(shown: str, file_path: Path) -> str:
    """The rule file's text; a UTF-8 byte-order mark (as some Windows editors write) is dropped."""
    try:
        # Not the "utf-8-sig" codec: it reads a file holding only b"\xef" as empty, not as an error.
        return file_path.read_text(encoding="utf-8").removeprefix("\ufeff")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise RulesError([RuleProblem(shown, 0, 0, "", f"cannot read the rule file: {reason}")]) from None


def _state_path(state: Any, issues: list[Issue]) -> Path | None:
    """The decoded `state` with ``~`` expanded, or None (with an issue when the expansion failed)."""
    if not isinstance(state, str) or "\0" in state:
        return None  # already reported
    try:
        return Path(state).expanduser()
    except RuntimeError:
        issues.append(Issue(("state",), f"{shown_text(state)} names a home directory that does not exist"))
        return None


def _check_nul(value: Any, path: KeyPath, issues: list[Issue]) -> None:
    """Refuse NUL characters (TOML's "\\u0000") in any key or string: no path, name or setting holds one."""
    items: Iterable[tuple[str | int, Any]]
    if isinstance(value, str):
        if "\0" in value:
            issues.append(Issue(path, "a NUL character (\\u0000) cannot be part of a name, path or setting"))
        return
    if isinstance(value, dict):
        items = value.items()
        for key in value:
            if "\0" in key:
                issues.append(Issue((*path, key), "a NUL character (\\u0000) cannot be part of a key"))
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, item in items:
        _check_nul(item, (*path, key), issues)


def _ok(value: Any) -> Any:
    return None if value is FAILED else value


def _mappings(raw: Any) -> list[tuple[int, FieldMapping]]:
    """The [[fields]] entries that decode on their own, with their indexes, for cross-checks."""
    if not isinstance(raw, list):
        return []
    found: list[tuple[int, FieldMapping]] = []
    for index, item in enumerate(raw):
        try:
            found.append((index, msgspec.convert(item, FieldMapping)))
        except msgspec.ValidationError:
            continue  # already reported by the section's decode
    return found


def _check_secret_names(data: dict[str, Any], issues: list[Issue]) -> list[KeyPath]:
    """Refuse secret-looking settings keys that hold plain strings, whatever the adapter."""
    paths: list[KeyPath] = []
    for side in ("crm", "esp"):
        table = data.get(side)
        settings = table.get("settings") if isinstance(table, dict) else None
        if isinstance(settings, dict):
            paths += _secret_keys(settings, (side, "settings"), issues)
    return paths


def _secret_keys(value: Any, path: KeyPath, issues: list[Issue]) -> list[KeyPath]:
    items: Iterable[tuple[str | int, Any]]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return []
    paths: list[KeyPath] = []
    for key, item in items:
        where = (*path, key)
        if isinstance(key, str) and _SECRET_NAME.search(key.replace("-", "_")):
            if isinstance(item, str):
                message = f"{shown_text(key)} looks like a secret; {SECRET_HINT}"
                issues.append(Issue(where, message))
                paths.append(where)
                continue
            if isinstance(item, dict):
                decode(item, SecretRef, where, issues, secret=True)
                paths.append(where)
                continue
        paths += _secret_keys(item, where, issues)
    return paths


def _adapter(
    side: Side, data: dict[str, Any], issues: list[Issue], secret_paths: list[KeyPath]
) -> tuple[Struct | None, Capabilities | None]:
    """The side's settings decoded with its adapter's own type, and the adapter's capabilities."""
    table = data.get(side)
    name = table.get("adapter") if isinstance(table, dict) else None
    if not isinstance(name, str) or decode(name, Name, (), []) is FAILED:
        return None, None  # decoding already said what is wrong with the key (and not 1,000 times)
    assert isinstance(table, dict)
    try:
        factory = adapter_factory(name)
    except LookupError as exc:
        issues.append(Issue((side, "adapter"), str(exc)))
        return None, None
    except ImportError as exc:
        message = f'adapter "{name}" is installed but cannot be imported: {exc}'
        issues.append(Issue((side, "adapter"), message))
        return None, None
    raw = table.get("settings", {})
    if not isinstance(raw, dict):
        return None, None
    found: list[Issue] = []
    settings = decode(raw, factory.settings_type, (side, "settings"), found, secret=True)
    # A secret-looking key was already reported once; the adapter's view of it adds nothing.
    issues += [
        issue for issue in found if not any(issue.path[: len(secret)] == secret for secret in secret_paths)
    ]
    if settings is FAILED:
        return None, None
    assert isinstance(settings, Struct)
    return settings, factory.capabilities(settings, side)


def _syntax_problem(shown: str, text: str, exc: tomllib.TOMLDecodeError) -> RuleProblem:
    match = _SYNTAX_AT.match(str(exc))
    if match is None:
        return RuleProblem(shown, 1, 1, "", f"TOML syntax error: {_said(str(exc))}")
    if match.group("line") is not None:
        line, column = int(match.group("line")), int(match.group("column"))
    else:  # TOML's lines end at "\n" only: str.splitlines would also split at "\x0b", "\u2028"...
        line, column = text.count("\n") + 1, len(text) - text.rfind("\n")
    return RuleProblem(shown, line, column, "", f"TOML syntax error: {_said(match.group('message'))}")


def _said(message: str) -> str:
    """tomllib's message on one line, and short: it may quote a whole (long) key."""
    return one_line(message if len(message) <= 200 else message[:197] + "...")


def _locate(shown: str, text: str, issues: list[Issue]) -> list[RuleProblem]:
    """Issues as problems in file order, each at its key (or its nearest table)."""
    source = SourceMap(text)
    problems: list[RuleProblem] = []
    for issue in issues:
        at = source.find(issue.path)
        message = one_line(issue.message)
        problem = RuleProblem(shown, at.line, at.column, format_path(issue.path), message)
        if problem not in problems:
            problems.append(problem)
    return sorted(problems, key=lambda problem: (problem.line, problem.column))
