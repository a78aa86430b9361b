"""The service's loopback HTTP endpoint: `/healthz` for a supervisor, `/metrics` for Prometheus.

`/healthz` answers 200 with every process's last run and last success once the service is running,
and 503 while it starts or stops. `/metrics` is Prometheus' text format (prometheus_client renders
it): runs by outcome, ops by kind, rejected rows by reason, calls and budget left per account,
import jobs by state, and each process's last success time. Counters are built from the service's
run results on each scrape, and job counts read from the state stores, so nothing here has to be
kept in step with the service as it runs. Only loopback addresses are served: the endpoint has no
authentication and names rule sets and accounts.
"""

from __future__ import annotations

from collections import Counter as Tally
from datetime import UTC, datetime
from typing import Any

import uvicorn
from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from engine.emulating import loopback_socket
from engine.service import Service
from engine.store import StateStore


def _iso(moment: float | None) -> str | None:
    return None if moment is None else datetime.fromtimestamp(moment, UTC).isoformat(timespec="seconds")


def health(service: Service) -> tuple[int, dict[str, Any]]:
    processes = {
        f"{name}/{process}": {
            "last_outcome": state.last_outcome,
            "last_run": _iso(state.last_run),
            "last_success": _iso(state.last_success),
            "runs": state.runs,
            "failures": state.failures,
            "running": state.running,
        }
        for (name, process), state in sorted(service.states.items())
    }
    invalid = {str(w.path): w.problem for w in service.watched.values() if w.problem}
    status = "stopping" if service.stopping.is_set() else "ok" if service.ready else "starting"
    body = {"status": status, "processes": processes, "invalid_rule_files": invalid}
    return (200 if service.ready else 503), body


async def metrics(service: Service) -> bytes:
    """Every metric, built afresh from the service's run results and the state stores."""
    registry = CollectorRegistry()
    runs = Counter(
        "listsync_runs",
        "Runs since the service started",
        ["rule_set", "process", "outcome"],
        registry=registry,
    )
    ops = Counter("listsync_ops", "Ops planned by runs since start", ["rule_set", "kind"], registry=registry)
    rejected = Counter(
        "listsync_rejected_rows", "Rows a vendor rejected", ["rule_set", "reason"], registry=registry
    )
    calls = Counter("listsync_calls", "Vendor calls made since start", ["account"], registry=registry)
    left = Gauge("listsync_budget_remaining", "Calls the bucket admits now", ["account"], registry=registry)
    jobs = Gauge(
        "listsync_import_jobs", "Import jobs in the state store", ["rule_set", "state"], registry=registry
    )
    success = Gauge(
        "listsync_last_success_timestamp_seconds",
        "When a process last ran to its end",
        ["rule_set", "process"],
        registry=registry,
    )
    for name, process, result in service.results:
        runs.labels(name, process, result.outcome).inc()
        for kind, count in result.ops.items():
            ops.labels(name, kind).inc(count)
        for reason, count in result.rejected.items():
            rejected.labels(name, _reason_label(reason)).inc(count)
    for (name, process), state in service.states.items():
        if state.failures:
            runs.labels(name, process, "failed").inc(state.failures)
        if state.last_success is not None:
            success.labels(name, process).set(state.last_success)
    for account, budget in service.budgets.all().items():
        calls.labels(account).inc(budget.used)
        if budget.capacity is not None:
            level, _ = budget.saved()
            left.labels(account).set(max(0.0, budget.capacity - level))
    for name, states in (await _job_states(service)).items():
        for state_name, count in states.items():
            jobs.labels(name, state_name).set(count)
    return generate_latest(registry)


def _reason_label(reason: str) -> str:
    """A rejection reason as a metric label: its head only, so no email or value becomes a label."""
    return reason.split(":", 1)[0].split("'", 1)[0].strip()[:60] or "rejected"


async def _job_states(service: Service) -> dict[str, Tally[str]]:
    found: dict[str, Tally[str]] = {}
    paths = {w.loaded.state_path: w.loaded.rules.name for w in service.watched.values()}
    for path, name in paths.items():
        async with await StateStore.open(path) as store:
            found[name] = Tally(job.state for job in await store.jobs(name, limit=10_000))
    return found


def observability_app(service: Service) -> Starlette:
    async def healthz(request: Request) -> Response:
        status, body = health(service)
        return JSONResponse(body, status)

    async def prometheus(request: Request) -> Response:
        return Response(await metrics(service), media_type=CONTENT_TYPE_LATEST)

    return Starlette(routes=[Route("/healthz", healthz), Route("/metrics", prometheus)])


async def serve_observability(service: Service, host: str, port: int) -> None:
    """Serve /healthz and /metrics on a loopback `host:port` until cancelled."""
    listener = loopback_socket(host, port)
    config = uvicorn.Config(observability_app(service), log_level="warning", lifespan="off")
    await uvicorn.Server(config).serve(sockets=[listener])
