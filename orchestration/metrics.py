"""Prometheus metrics: what the workers did (counters, histograms) and what the database holds
(gauges computed when scraped).

- Counters and histograms are observed where the work happens (a background step's task, in a
  Celery worker). Web processes and worker pool processes are separate processes: with
  `PROMETHEUS_MULTIPROC_DIR` set (one folder per host, emptied at start), every process writes
  its samples there and `/metrics` or `manage.py metrics_server` read them all. Without it, each
  process reports only its own (fine for `make run`, wrong for production: docs/operations.md).
- Gauges read the database at scrape time (runs by status, queued and failed steps, and what
  other apps contribute through `GAUGES`, e.g. open and overdue work items). They are cached
  for `METRICS_CACHE_SECONDS` per process, so that a scrape every 15 s by two Prometheus
  servers costs at most one set of queries per interval whatever the number of runs.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.conf import settings
from django.db.models import Count
from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

STEP_ATTEMPTS = Counter(
    "orchestration_background_step_attempts",
    "Background step task deliveries by what came of them: completed, retry (failed, will be "
    "tried again), error (failed for good), duplicate (a repeated delivery, ran nothing), stale "
    "(the step moved on meanwhile).",
    ["outcome"],
)
STEP_DURATION = Histogram(
    "orchestration_background_step_duration_seconds",
    "Time a worker spent on one background step delivery (claim, flow, storing the result).",
    ["outcome"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
)


def observe_step(outcome: str, seconds: float) -> None:
    STEP_ATTEMPTS.labels(outcome=outcome).inc()
    STEP_DURATION.labels(outcome=outcome).observe(seconds)


# --- gauges from the database -----------------------------------------------------------------

Gauge = Callable[[], Iterable[Metric]]
# Other apps add functions that yield metric families (workitems: open and overdue items).
GAUGES: list[Gauge] = []


def register_gauge(fn: Gauge) -> Gauge:
    if fn not in GAUGES:
        GAUGES.append(fn)
    return fn


@register_gauge
def _runs() -> Iterator[Metric]:
    from .models import Run

    runs = GaugeMetricFamily(
        "orchestration_runs", "Runs by orchestration and status.", labels=["orchestration", "status"]
    )
    # One GROUP BY over the (orchestration, status, -id) index; cached (see module docstring).
    rows = Run.objects.values_list("orchestration__api_name", "status").annotate(n=Count("id")).order_by()
    for name, status, n in rows:
        runs.add_metric([name, status], n)
    yield runs


@register_gauge
def _steps() -> Iterator[Metric]:
    from .models import ExecState, StageStatus, StepRun

    failed = GaugeMetricFamily(
        "orchestration_steps_failed", "Steps in error, waiting for an admin to retry or skip."
    )
    failed.add_metric([], StepRun.objects.filter(status=StageStatus.ERROR).count())
    yield failed
    queue = GaugeMetricFamily(
        "orchestration_background_steps",
        "Background steps waiting for a worker (queued) or being worked on (running), from the database.",
        labels=["state"],
    )
    counts = dict(
        StepRun.objects.filter(
            exec_state__in=[ExecState.QUEUED, ExecState.RUNNING], status=StageStatus.IN_PROGRESS
        )
        .values_list("exec_state")
        .annotate(n=Count("id"))
        .order_by()
    )
    for state in (ExecState.QUEUED, ExecState.RUNNING):
        queue.add_metric([str(state)], counts.get(state, 0))
    yield queue


@register_gauge
def _broker_queue() -> Iterator[Metric]:
    """Messages waiting in the Celery queue, for a Redis broker (a list per queue)."""
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://")):
        return
    import redis

    depth = GaugeMetricFamily(
        "orchestration_broker_queue_length", "Messages in the Celery queue (Redis).", labels=["queue"]
    )
    client = redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)
    try:
        depth.add_metric(["celery"], client.llen("celery"))
    except redis.RedisError:
        return  # readyz reports the broker; a scrape must not fail for it
    finally:
        client.close()
    yield depth


class DatabaseCollector(Collector):
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._at = 0.0

    def collect(self) -> Iterable[Metric]:
        ttl = settings.METRICS_CACHE_SECONDS
        with self._lock:
            if not self._cached or time.monotonic() - self._at >= ttl:
                families: list[Metric] = []
                for fn in GAUGES:
                    families.extend(fn())
                families.append(_scrape_info(len(families)))
                self._cached, self._at = families, time.monotonic()
            return list(self._cached)


def _scrape_info(n: int) -> Metric:
    m = GaugeMetricFamily("orchestration_metrics_database_families", "Gauge families read from the database.")
    m.add_metric([], n)
    return m


_database_collector = DatabaseCollector()


def registry(*, database: bool = True) -> CollectorRegistry:
    """The registry to expose: every process of this host (multiprocess mode) or this process,
    plus the database gauges."""
    reg = CollectorRegistry()
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.MultiProcessCollector(reg)
    else:
        from prometheus_client import REGISTRY

        reg.register(_ProcessLocal(REGISTRY))
    if database:
        reg.register(_database_collector)
    return reg


class _ProcessLocal(Collector):
    def __init__(self, source: CollectorRegistry) -> None:
        self.source = source

    def collect(self) -> Iterable[Metric]:
        return self.source.collect()


def exposition(*, database: bool = True) -> bytes:
    return generate_latest(registry(database=database))


def reset_cache() -> None:
    """For tests: the next scrape reads the database again."""
    _database_collector._cached = []


def authorized(*, bearer: str | None, user: Any) -> bool:
    """METRICS_TOKEN as a bearer token (for Prometheus), or a signed-in user who may view runs."""
    import hmac

    token = settings.METRICS_TOKEN
    if token and bearer and hmac.compare_digest(bearer.encode(), token.encode()):
        return True
    return bool(getattr(user, "is_authenticated", False) and user.has_perm("orchestration.view_run"))
