"""Where each key of a TOML document is written, so a rules error can say line and column.

tomllib parses but keeps no positions, and no well-kept library offers a position-keeping parser
for the standard library's TOML. This scanner runs only over text tomllib has already accepted,
so it can be forgiving: it reads table headers (`[a.b]`), arrays of tables (`[[fields]]`, counting
the index), `key = value` lines with dotted and quoted keys, inline tables and arrays, and skips
strings and comments. A key path it cannot find falls back to the nearest enclosing table.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import re
import tomllib
from dataclasses import dataclass

KeyPath = tuple[str | int, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_KEY_SHOWN = 60


@dataclass(frozen=True)
class Position:
    """1-based line and column."""

    line: int
    column: int


def format_path(path: KeyPath) -> str:
    """`("fields", 1, "type")` -> ``fields[1].type``; keys that are not bare are quoted (ASCII, one
    line), and a key past 60 characters is cut short, as it is only there to be recognised."""
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            part = part if len(part) <= _KEY_SHOWN else part[: _KEY_SHOWN - 3] + "..."
            key = part if _BARE_KEY.fullmatch(part) else json.dumps(part)
            text += f".{key}" if text else key
    return text


class SourceMap:
    """Key path -> position of the key that defines it, for one TOML document."""

    def __init__(self, text: str) -> None:
        self._line_starts = [0] + [m.end() for m in re.finditer(r"\n", text)]
        self._offsets = _Scanner(text).scan()

    def exact(self, path: KeyPath) -> Position | None:
        offset = self._offsets.get(path)
        return None if offset is None else self._position(offset)

    def find(self, path: KeyPath) -> Position:
        """The key's position, or its nearest enclosing table's, or the start of the document."""
        for end in range(len(path), 0, -1):
            found = self.exact(path[:end])
            if found is not None:
                return found
        return Position(1, 1)

    def _position(self, offset: int) -> Position:
        line = bisect.bisect_right(self._line_starts, offset)
        return Position(line, offset - self._line_starts[line - 1] + 1)


class _Scanner:
    """One pass over valid TOML, recording the offset of the first key that names each path."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.i = 0
        self.offsets: dict[KeyPath, int] = {}
        self.array_counts: dict[KeyPath, int] = {}

    def scan(self) -> dict[KeyPath, int]:
        # Positions are advice for error messages; what was found before a surprise is still good.
        with contextlib.suppress(IndexError, ValueError, tomllib.TOMLDecodeError):
            self._document()
        return self.offsets

    def _document(self) -> None:
        table: KeyPath = ()
        text = self.text
        while True:
            self._skip(newlines=True)
            if self.i >= len(text):
                return
            if text.startswith("[[", self.i):
                self.i += 2
                table = self._header(self._key(), new_element=True)
                self._skip()
                self.i += 2
            elif text[self.i] == "[":
                self.i += 1
                table = self._header(self._key(), new_element=False)
                self._skip()
                self.i += 1
            else:
                self._key_value(table)

    def _header(self, parts: list[tuple[str, int]], *, new_element: bool) -> KeyPath:
        path: KeyPath = ()
        for number, (name, offset) in enumerate(parts):
            path += (name,)
            self.offsets.setdefault(path, offset)
            last = number == len(parts) - 1
            if last and new_element:
                index = self.array_counts.get(path, 0)
                self.array_counts[path] = index + 1
                path += (index,)
                self.offsets[path] = offset
            elif path in self.array_counts:
                # A header below an array of tables extends its latest element.
                path += (self.array_counts[path] - 1,)
        return path

    def _key_value(self, table: KeyPath) -> None:
        path = table
        for name, offset in self._key():
            path += (name,)
            self.offsets.setdefault(path, offset)
        self._skip()
        self.i += 1  # "="
        self._skip()
        self._value(path)

    def _key(self) -> list[tuple[str, int]]:
        parts: list[tuple[str, int]] = []
        text = self.text
        while True:
            self._skip()
            start = self.i
            if text[start] in "\"'":
                end = self._string_end(start)
                name = tomllib.loads(f"k = {text[start:end]}")["k"]
                self.i = end
            else:
                match = _BARE_KEY.match(text, start)
                if match is None:
                    raise ValueError(f"no key at offset {start}")
                name = match.group()
                self.i = match.end()
            parts.append((str(name), start))
            self._skip()
            if self.i < len(text) and text[self.i] == ".":
                self.i += 1
                continue
            return parts

    def _value(self, path: KeyPath) -> None:
        text = self.text
        char = text[self.i]
        if char == "{":
            self.i += 1
            while True:
                self._skip(newlines=True)
                if text[self.i] == "}":
                    self.i += 1
                    return
                self._key_value(path)
                self._skip(newlines=True)
                if text[self.i] == ",":
                    self.i += 1
        elif char == "[":
            self.i += 1
            index = 0
            while True:
                self._skip(newlines=True)
                if text[self.i] == "]":
                    self.i += 1
                    return
                self.offsets.setdefault((*path, index), self.i)
                self._value((*path, index))
                index += 1
                self._skip(newlines=True)
                if text[self.i] == ",":
                    self.i += 1
        elif char in "\"'":
            self.i = self._string_end(self.i)
        else:
            while self.i < len(text) and text[self.i] not in ",]}\r\n#":
                self.i += 1

    def _string_end(self, start: int) -> int:
        """Offset just past the string (any of TOML's four kinds) that starts at `start`."""
        text = self.text
        quote = text[start]
        if text.startswith(quote * 3, start):
            end = start + 3
            while not text.startswith(quote * 3, end):
                end += 2 if quote == '"' and text[end] == "\\" else 1
            end += 3
            # Up to two quotes may sit just inside the closing delimiter.
            for _ in range(2):
                if end < len(text) and text[end] == quote:
                    end += 1
            return end
        end = start + 1
        while text[end] != quote:
            end += 2 if quote == '"' and text[end] == "\\" else 1
        return end + 1

    def _skip(self, *, newlines: bool = False) -> None:
        """Skip spaces and tabs; with `newlines`, also line ends and comments."""
        text = self.text
        while self.i < len(text):
            char = text[self.i]
            if char in " \t" or (newlines and char in "\r\n"):
                self.i += 1
            elif newlines and char == "#":
                while self.i < len(text) and text[self.i] != "\n":
                    self.i += 1
            else:
                return
