"""Prometheus metrics of the engine, served at ``GET /metrics`` (``engine.api.app``).

One module holds every metric, so the label sets are visible in one place and stay bounded: a definition ID, an
operation ID, an outcome or status from a fixed set, never an integration, tenant, run or delivery ID (a label per
integration would make one time series per customer). The instrumented places call the small functions below.

Multiprocess: ``tether worker --processes N`` and the API server are separate processes. With
``TETHER_METRICS_DIR`` set, this module points prometheus-client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``) at that directory *before* prometheus-client chooses its value class, so every
process (spawned children inherit the variable) writes its samples to files there, and ``/metrics`` adds up the
files of every process that wrote them. Unset, each process keeps its own samples in memory (the embedded default
runs everything in one process). Only counters and histograms are used: they sum across processes as they are, so
no process has to be marked dead when it exits.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.settings import Settings

_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def _prepare() -> str:
    """Set up multiprocess mode from the settings; returns its directory ('' when off)."""
    # A Settings of its own: filling ``get_settings``' cache at import time would fix the process's settings early.
    directory = Settings().metrics_dir.strip()
    if directory:
        Path(directory).mkdir(parents=True, exist_ok=True)
        os.environ[_MULTIPROC_ENV] = directory  # prometheus-client's own variable; spawned workers inherit it
    return directory


MULTIPROC_DIR = _prepare()

# prometheus-client reads the variable when ``prometheus_client.values`` is first imported: hence after _prepare.
from prometheus_client import (  # noqa: E402
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client import values as _values  # noqa: E402
from prometheus_client.metrics_core import Metric  # noqa: E402
from prometheus_client.multiprocess import MultiProcessCollector  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402

if MULTIPROC_DIR and _values.ValueClass is _values.MutexValue:
    # Something imported prometheus-client before the engine set the variable: choose the value class again, or
    # this process's samples would stay in memory where ``/metrics`` of another process never sees them.
    _values.ValueClass = _values.get_value_class()

#: The media type of ``exposition()`` (the text format's version included).
CONTENT_TYPE: str = CONTENT_TYPE_LATEST

#: The engine's own registry (not prometheus-client's global one, which holds the client's process collectors).
REGISTRY = CollectorRegistry(auto_describe=True)

#: Run durations range from a webhook-started write (tens of ms) to a full ingest (tens of minutes).
_RUN_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)

RUNS = Counter(
    "tether_runs",
    "Run executions that ended, by definition, operation and outcome (succeeded, failed, retried, deferred, "
    "cancelled, stalled).",
    ["definition", "operation", "outcome"],
    registry=REGISTRY,
)
RUN_DURATION = Histogram(
    "tether_run_duration_seconds",
    "Seconds one run execution took, from its claim to its outcome, by definition, operation and outcome.",
    ["definition", "operation", "outcome"],
    buckets=_RUN_BUCKETS,
    registry=REGISTRY,
)
WEBHOOK_DELIVERIES = Counter(
    "tether_webhook_deliveries",
    "Webhook deliveries received, by definition and outcome (accepted, duplicate, refused: verification failed).",
    ["definition", "outcome"],
    registry=REGISTRY,
)
#: Deliveries are processed within milliseconds normally; a backlog (workers down) grows it to hours.
_LAG_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
WEBHOOK_LAG = Histogram(
    "tether_webhook_processing_lag_seconds",
    "Seconds from a webhook delivery's recording to its processing being claimed (each attempt), by definition.",
    ["definition"],
    buckets=_LAG_BUCKETS,
    registry=REGISTRY,
)
TOKEN_REFRESHES = Counter(
    "tether_token_refreshes",
    "OAuth token refreshes, by outcome (refreshed, invalid_grant, transient: the provider was unavailable).",
    ["outcome"],
    registry=REGISTRY,
)
EGRESS_REFUSALS = Counter(
    "tether_egress_refusals",
    "Outbound requests the egress guard refused before anything was sent.",
    registry=REGISTRY,
)
INGEST_RECORDS = Counter(
    "tether_ingest_records",
    "Payloads through the ingest pipeline, by definition and outcome (persisted, filtered, rejected).",
    ["definition", "outcome"],
    registry=REGISTRY,
)
GOVERNOR_DEFERRALS = Counter(
    "tether_governor_deferrals",
    "Provider calls the rate governor deferred through the queue (the budget had no room within the wait).",
    registry=REGISTRY,
)
EVENT_DELIVERIES = Counter(
    "tether_event_deliveries",
    "Outbound event delivery attempts, by outcome (delivered, retrying, dead, lost: the claim was lost).",
    ["outcome"],
    registry=REGISTRY,
)

INGEST_OUTCOMES = ("persisted", "filtered", "rejected")


#: The labelled children of the run metrics, by label values: ``labels()`` validates and locks on every call, and
#: every run ends through here (the label sets are bounded, so is this).
_run_children: dict[tuple[str, str, str], tuple[Any, Any]] = {}


def run_ended(definition: str, operation: str, outcome: str, seconds: float) -> None:
    key = (definition, operation, outcome)
    children = _run_children.get(key)
    if children is None:
        children = _run_children.setdefault(key, (RUNS.labels(*key), RUN_DURATION.labels(*key)))
    children[0].inc()
    children[1].observe(seconds)


#: The same for every webhook delivery's counter and lag (``labels()`` was half of a delivery's metrics cost).
_delivery_children: dict[tuple[str, str], Any] = {}
_lag_children: dict[str, Any] = {}


def webhook_delivery(definition: str, outcome: str) -> None:
    child = _delivery_children.get((definition, outcome))
    if child is None:
        child = _delivery_children.setdefault((definition, outcome), WEBHOOK_DELIVERIES.labels(definition, outcome))
    child.inc()


def delivery_lag(definition: str, received_at: datetime) -> None:
    if received_at.tzinfo is None:  # SQLite hands back the stored UTC time without its zone
        received_at = received_at.replace(tzinfo=UTC)
    child = _lag_children.get(definition)
    if child is None:
        child = _lag_children.setdefault(definition, WEBHOOK_LAG.labels(definition))
    child.observe(max(0.0, (datetime.now(UTC) - received_at).total_seconds()))


def token_refresh(outcome: str) -> None:
    TOKEN_REFRESHES.labels(outcome).inc()


def egress_refused() -> None:
    EGRESS_REFUSALS.inc()


def ingested(definition: str, counts: dict[str, int]) -> None:
    """One ingest batch: its count per outcome (keys of ``INGEST_OUTCOMES``)."""
    for outcome in INGEST_OUTCOMES:
        if counts.get(outcome):
            INGEST_RECORDS.labels(definition, outcome).inc(counts[outcome])


def governor_deferred() -> None:
    GOVERNOR_DEFERRALS.inc()


def event_delivery(outcome: str, count: int = 1) -> None:
    if count:
        EVENT_DELIVERIES.labels(outcome).inc(count)


def exposition(extra: Sequence[Collector] = ()) -> bytes:
    """The text exposition format of every metric (summed over the processes' files in multiprocess mode), and of
    ``extra`` collectors read at scrape time (the queue's depth)."""
    registry = CollectorRegistry()
    if MULTIPROC_DIR:
        MultiProcessCollector(registry, path=MULTIPROC_DIR)
    else:
        registry.register(_Own())
    for collector in extra:
        registry.register(collector)
    return generate_latest(registry)


class _Own(Collector):
    """This process's own samples, as one collector of a per-scrape registry."""

    def collect(self) -> Iterable[Metric]:
        return REGISTRY.collect()
