"""Generated vendor answers for the response fuzz tests: a transport that swaps one answer for junk.

`Interposer` is an `httpx.MockTransport` handler that passes every request to the vendor's emulator
and, for the one request the test chose, replaces the emulator's answer with a generated one: the
real JSON with keys dropped, types changed, nulls, huge numbers and strings; the real body cut
short; an empty body; an HTML error page; random bytes; any status code; odd headers (content
types, Retry-After, a content encoding the body does not have); a redirect; or a dropped
connection. Starting from the real answer keeps most of the JSON plausible, so a mutation reaches
the code that reads it rather than failing at the first key.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import httpx
from hypothesis import strategies as st

STATUSES = [200, 200, 201, 202, 204, 206, 299, 300, 301, 302, 304, 307, 400, 401, 403, 404, 405, 406]
STATUSES += [408, 409, 410, 413, 422, 429, 451, 499, 500, 501, 502, 503, 504, 520, 599, 100, 199, 600]
HTML = b"<!DOCTYPE html><html><head><title>502 Bad Gateway</title></head><body>Bad Gateway</body></html>"
CONTENT_TYPES = ["application/json", "text/html; charset=utf-8", "text/plain", "application/xml", ""]
RETRY_AFTER = ["0", "1", "-5", "nan", "inf", "1e400", "", "soon", "Wed, 21 Oct 2015 07:28:00 GMT", "9" * 40]
RETRY_AFTER += ["Fri, 31 Dec 9999 23:59:59 GMT", "Mon, 32 Foo 2020 99:99:99 GMT", "3600", "86400000"]
LOCATIONS = ["/v2/address-books", "https://elsewhere.invalid/x", "http://[::1", "javascript:alert(1)", ""]
# Values that break assumptions: wrong types, nulls, edges of number ranges, odd and huge strings.
ODD_VALUES: list[Any] = [
    *(None, "", " ", "null", "0", "true", "x" * 5000, "\u0000", "é\u2028", "ERROR_CONTACT_INVALID"),
    *("Fri Oct 03 14:31:20 UTC 2025", "Fri Oct 99 14:31:20 UTC 2025", "2025-13-45T25:61:00Z"),
    *("2024-02-29T12:00:00Z", "not-an-email", "@", "A@B.C"),
    *(0, -1, 1, 2**31, 2**53 + 1, 2**63, 2**64, -(2**63) - 1, 10**30, 1.5, -0.0, 1e308),
    *(True, False, [], {}, [None], {"id": 1}, [[[]]]),
]
json_values = st.recursive(
    st.sampled_from(ODD_VALUES) | st.integers() | st.text(max_size=12) | st.floats(allow_nan=False),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
TRANSPORT_ERRORS = [httpx.ConnectError, httpx.ReadTimeout, httpx.RemoteProtocolError, httpx.ReadError]


def slots(node: Any) -> list[tuple[Any, Any]]:
    """Every (container, key or index) in a decoded JSON value."""
    found: list[tuple[Any, Any]] = []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, value in items:
        found.append((node, key))
        found += slots(value)
    return found


@dataclass(frozen=True)
class Mutation:
    """One change to a JSON value: at the `place`-th slot (modulo their number), do `how`."""

    place: int
    how: str
    value: Any = None

    def apply(self, document: Any) -> Any:
        places = slots(document)
        if not places:
            return self.value
        holder, key = places[self.place % len(places)]
        old = holder[key]
        if self.how == "drop":
            del holder[key]
        elif self.how == "set":
            holder[key] = self.value
        elif self.how == "wrap":
            holder[key] = [old]
        elif self.how == "stringify":
            holder[key] = json.dumps(old)
        elif isinstance(old, list) and old:
            holder[key] = old[: len(old) // 2] if self.how == "cut" else [*old, old[0]]
        else:
            holder[key] = None
        return document


mutations = st.builds(
    Mutation,
    place=st.integers(0, 10_000),
    how=st.sampled_from(["drop", "set", "set", "set", "cut", "repeat", "wrap", "stringify"]),
    value=json_values,
)


@dataclass(frozen=True)
class Answer:
    """A generated stand-in for a vendor's answer, made from the real one (`make`)."""

    kind: str
    status: int | None = None
    body: bytes | None = None
    headers: tuple[tuple[str, str], ...] = ()
    mutations: tuple[Mutation, ...] = ()
    cut: float = 0.5
    error: type[httpx.TransportError] | None = None

    def make(self, request: httpx.Request, real: httpx.Response) -> httpx.Response:
        """The answer to `request`, or the transport error it stands for."""
        if self.error is not None:
            raise self.error("the connection went away", request=request)
        body = real.content if self.body is None else self.body
        if self.kind == "shape":
            try:
                document = json.loads(body)
            except ValueError:
                document = None
            if document is not None:
                for mutation in self.mutations:
                    document = mutation.apply(document)
                body = json.dumps(document).encode()
        elif self.kind == "cut":
            body = body[: int(len(body) * self.cut)]
        headers = {"content-type": "application/json", **dict(self.headers)}
        status = real.status_code if self.status is None else self.status
        return httpx.Response(status, headers=headers, content=body, request=request)


ERROR_BODIES = [
    None,
    b"",
    HTML,
    b'{"message": "ERROR_APIUSAGE_EXCEEDED"}',
    b'{"message": "Contact is invalid ERROR_CONTACT_INVALID"}',
    b'{"success": false, "failure_reason": "session_expired", "failure_message": "gone"}',
    b'{"success": false, "failure_reason": "database_being_migrated"}',
    b'{"success": false, "errors": {"x": ["bad"]}}',
    b'{"title": "Bad", "detail": "[/bold] markup :100:"}',
]
_statuses = st.sampled_from(STATUSES) | st.integers(100, 999)
_waits = st.tuples(st.sampled_from(["retry-after", "x-ratelimit-reset"]), st.sampled_from(RETRY_AFTER))
answers = st.one_of(
    st.builds(
        Answer, kind=st.just("shape"), mutations=st.lists(mutations, min_size=1, max_size=3).map(tuple)
    ),
    st.builds(
        Answer,
        kind=st.just("status"),
        status=_statuses,
        body=st.sampled_from(ERROR_BODIES),
        headers=st.lists(_waits, max_size=2).map(tuple),
    ),
    st.builds(Answer, kind=st.just("cut"), cut=st.floats(0, 0.999)),
    st.builds(Answer, kind=st.just("empty"), body=st.just(b"")),
    st.builds(
        Answer,
        kind=st.just("html"),
        status=st.sampled_from([200, 404, 502, 503]),
        body=st.just(HTML),
        headers=st.just((("content-type", "text/html"),)),
    ),
    st.builds(Answer, kind=st.just("bytes"), body=st.binary(max_size=64)),
    st.builds(Answer, kind=st.just("json"), body=json_values.map(lambda v: json.dumps(v).encode())),
    st.builds(
        Answer,
        kind=st.just("headers"),
        headers=st.tuples(st.tuples(st.just("content-type"), st.sampled_from(CONTENT_TYPES)), _waits),
    ),
    st.builds(
        Answer,
        kind=st.just("encoding"),
        headers=st.sampled_from(["gzip", "br", "deflate", "zstd", "x"]).map(
            lambda e: (("content-encoding", e),)
        ),
    ),
    st.builds(
        Answer,
        kind=st.just("redirect"),
        status=st.sampled_from([301, 302, 303, 307, 308]),
        headers=st.sampled_from(LOCATIONS).map(lambda where: (("location", where),)),
    ),
    st.builds(Answer, kind=st.just("transport"), error=st.sampled_from(TRANSPORT_ERRORS)),
)


# One or two requests, by number (modulo the number of requests the operation makes, which the
# strategy cannot know), each with the answer that replaces the real one.
victims = st.dictionaries(st.integers(0, 999), answers, min_size=1, max_size=2)


@dataclass
class Interposer:
    """An `httpx.MockTransport` handler: the emulator answers, except the requests in `victims` (by
    their number since `arm`), which get the generated answers instead."""

    inner: httpx.AsyncBaseTransport
    victims: dict[int, Answer] = field(default_factory=dict)
    seen: list[httpx.Request] = field(default_factory=list)

    def arm(self, victims: dict[int, Answer], requests: int = 1000) -> None:
        """Start counting requests again, and swap the answers of `victims`, numbered modulo `requests`
        (how many requests the code under test makes when nothing is swapped)."""
        self.victims = {number % max(requests, 1): answer for number, answer in victims.items()}
        self.seen = []

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        answer = self.victims.get(len(self.seen))
        self.seen.append(request)
        real = await self.inner.handle_async_request(request)
        await real.aread()
        return real if answer is None else answer.make(request, real)

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self)
