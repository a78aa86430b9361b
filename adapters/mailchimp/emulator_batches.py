"""Running a Mailchimp batch in the emulator, and serving its results archive.

Split from ``emulator_state.py`` because running a batch needs the HTTP layer: each operation is a real
call (method, path, params, body string) dispatched to the emulator's own handlers, without the guard
(a batch's operations do not count as connections), so any endpoint works inside a batch exactly as it
does outside one. The per-operation results go into a ``.tar.gz`` of JSON files, each an array of
``{status_code, operation_id, response}`` with ``response`` the answer's JSON as a string, as Mailchimp
publishes them.

The archive is served like Mailchimp's: from a pre-signed URL on another host (S3) when the emulator
plays ``*.api.mailchimp.com``, or from the emulator's own loopback address; the URL's signature is the
only credential, and a request that also carries an ``Authorization`` header is refused, as S3 refuses
two authentication mechanisms. A client that sends its API key there is caught, not leaked.
"""

from __future__ import annotations

import io
import json
import tarfile
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from adapters.mailchimp.emulator_data import Batch
from adapters.mailchimp.emulator_state import MailchimpState
from adapters.mailchimp.emulator_wire import problem_body

# (method, path, query params, body) -> (status, response body)
Dispatch = Callable[[str, str, dict[str, str], bytes], Awaitable[tuple[int, bytes]]]
RESULTS_PER_FILE = 500
S3_HOST = "https://mailchimp-api-batch.s3.amazonaws.com"
RESULTS_PATH = "/batch-results/{batch_id}-response.tar.gz"


async def run(state: MailchimpState, batch: Batch, dispatch: Dispatch) -> None:
    """Run every operation of a finished batch and store the results archive."""
    results: list[dict[str, Any]] = []
    share = state.knobs.operation_fault_share
    for op in batch.operations:
        if batch.forced_status is not None or (share > 0 and state.rng.random() < share):
            status = batch.forced_status or 500
            detail = "An unexpected internal error has occurred."
            body = json.dumps(
                problem_body(status, "Internal Server Error", detail, state.new_uuid())
            ).encode()
        else:
            params = op.get("params") if isinstance(op.get("params"), dict) else {}
            query = {str(k): str(v) for k, v in (params or {}).items()}
            raw = op.get("body") or ""
            sent = raw.encode() if isinstance(raw, str) else json.dumps(raw).encode()
            # Operation paths are relative to the API root ("/lists/..."); "/3.0/lists/..." works too.
            path = "/" + str(op["path"]).lstrip("/").removeprefix("3.0/")
            status, body = await dispatch(str(op["method"]).upper(), "/3.0" + path, query, sent)
        results.append(
            {"status_code": status, "operation_id": op.get("operation_id"), "response": body.decode()}
        )
    batch.finished_operations = len(results)
    batch.errored_operations = sum(1 for r in results if r["status_code"] >= 400)
    batch.completed_at = state.now()
    batch.archive = _archive(batch.id, results)


def _archive(batch_id: str, results: list[dict[str, Any]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        for number, start in enumerate(range(0, len(results), RESULTS_PER_FILE)):
            data = json.dumps(results[start : start + RESULTS_PER_FILE]).encode()
            info = tarfile.TarInfo(f"{batch_id}/{number}.json")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def results_url(request: Request, batch: Batch) -> str:
    """Where a finished batch's archive is, signed; the API host's answer points at S3."""
    if batch.archive is None:
        return ""
    host = request.url.hostname or ""
    base = S3_HOST if host.endswith("api.mailchimp.com") else str(request.base_url).rstrip("/")
    return f"{base}{RESULTS_PATH.format(batch_id=batch.id)}?Expires=4102444800&Signature={batch.signature}"


async def download(state: MailchimpState, request: Request) -> Response:
    """``GET`` of a results archive by its pre-signed URL (no API key, no connection counted)."""
    if "authorization" in request.headers:
        return _s3_error(400, "InvalidArgument", "Only one auth mechanism allowed")
    batch = state.batches.get(request.path_params["batch_id"])
    if batch is None or batch.archive is None or request.query_params.get("Signature") != batch.signature:
        return _s3_error(403, "AccessDenied", "Access Denied")
    return Response(batch.archive, media_type="application/x-gzip")


def _s3_error(status: int, code: str, message: str) -> Response:
    xml = f"<?xml version='1.0' encoding='UTF-8'?>\n<Error><Code>{code}</Code><Message>{message}</Message>"
    xml += "</Error>"
    return Response(xml.encode(), status, media_type="application/xml")
