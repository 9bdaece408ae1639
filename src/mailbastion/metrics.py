"""Prometheus metrics: what the parts count, what is measured when scraped, and the endpoint.

The parts call plain functions; each is a no-op (one global test, prometheus_client not even imported)
until `enable()` ran, which `serve` does when `[metrics] listen` is set:

    metrics.message("gateway", "data", "reject")       # a message's outcome at a stage (gateway/logline.py)
    metrics.replies("internal", "lmtp", replies)       # the MDA's per-recipient replies (delivered/deferred/refused);
                                                       # stage "direct": the all-in-one's in-process deliveries
    metrics.check_seconds("spf", 0.012)                # a policy check's run time (policy/pipeline.py)
    metrics.auth_failure("submission", "PLAIN")        # a refused login (the listeners that authenticate)
    metrics.signature_age("clamav", 5400.0)            # as of the anti-virus freshness watch's last look
    metrics.add_source(fn)                             # gauges computed at scrape time: fn() -> [Sample]

Several processes (SMTP acceptors, the MDA's own process) count into one endpoint through
prometheus_client's multiprocess mode: each process writes its values to files below `data_dir/run/metrics`
(emptied by `enable`, before any child is forked), and the endpoint of the `serve` process adds them up.
Gauges measured at scrape time (queue sizes, the recipient map's age) are read by that process only.

Metric names (all prefixed `mailbastion_`):
    messages_total{role,stage,action}           counter
    check_duration_seconds{check}               histogram
    auth_failures_total{service,mechanism}      counter
    av_signature_age_seconds{engine}            gauge (most recent value of any process)
    queue_messages{state}                       gauge, at scrape (gateway)
    recipient_map_age_seconds, recipient_map_serial      gauges, at scrape (gateway)
    map_push_last_success_timestamp_seconds{gateway}     gauge, at scrape (internal host)
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("mailbastion.metrics")

PREFIX = "mailbastion_"
CHECK_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@dataclass(frozen=True, slots=True)
class Sample:
    """One gauge value measured at scrape time."""

    name: str  # without the prefix: "queue_messages"
    doc: str
    value: float
    labels: dict[str, str] = field(default_factory=dict)


class _HasCode(Protocol):
    @property
    def code(self) -> int: ...


@dataclass(eq=False)
class _State:
    directory: Path
    messages: Any
    checks: Any
    auth_failures: Any
    signature_ages: Any
    sources: list[Callable[[], Iterable[Sample]]] = field(default_factory=list)


_state: _State | None = None
_lock = threading.Lock()


def is_enabled() -> bool:
    return _state is not None


def enable(directory: Path) -> None:
    """Count from now on, in this process and in every process forked after this call. `directory` (made
    0700 and emptied: values of an earlier run must not be added to this one's) holds each process's files.
    Call once per `serve`, before forking, after switching to the service user."""
    global _state
    with _lock:
        if _state is not None:
            return
        if directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(mode=0o700, parents=True)
        os.environ[MULTIPROC_ENV] = str(directory)
        from prometheus_client import Counter, Gauge, Histogram, values

        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]  # multiprocess files even if prometheus_client was imported
        _state = _State(
            directory,
            Counter(PREFIX + "messages", "Messages by role, stage and outcome (gateway: the action taken at that "
                    "stage; internal: the MDA's reply per recipient)", ["role", "stage", "action"], registry=None),
            Histogram(PREFIX + "check_duration_seconds", "Run time of each policy check", ["check"],
                      buckets=CHECK_BUCKETS, registry=None),
            Counter(PREFIX + "auth_failures", "Refused authentications by service and mechanism",
                    ["service", "mechanism"], registry=None),
            Gauge(PREFIX + "av_signature_age_seconds", "Age of each anti-virus engine's signatures at its last check",
                  ["engine"], multiprocess_mode="mostrecent", registry=None),
        )


def disable() -> None:
    """Stop counting (tests). The files stay until the next `enable`."""
    global _state
    with _lock:
        if _state is None:
            return
        _state = None
        os.environ.pop(MULTIPROC_ENV, None)
        from prometheus_client import values

        values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]  # back to in-memory values


# -- what the parts call -------------------------------------------------------------------------------------


def message(role: str, stage: str, action: str) -> None:
    if _state is not None:
        _state.messages.labels(role, stage, action).inc()


def replies(role: str, stage: str, outcomes: Sequence[_HasCode]) -> None:
    """One count per reply: 2xx delivered, 4xx deferred, 5xx refused."""
    if _state is not None:
        for reply in outcomes:
            action = "delivered" if reply.code < 400 else "deferred" if reply.code < 500 else "refused"
            _state.messages.labels(role, stage, action).inc()


def check_seconds(check: str, seconds: float) -> None:
    if _state is not None:
        _state.checks.labels(check).observe(seconds)


def auth_failure(service: str, mechanism: str) -> None:
    if _state is not None:
        _state.auth_failures.labels(service, mechanism.upper()).inc()


def signature_age(engine: str, seconds: float | None) -> None:
    """The engine's signature age in seconds; None (unknown or unreachable) is not exported."""
    if _state is not None and seconds is not None:
        _state.signature_ages.labels(engine).set(seconds)


def add_source(source: Callable[[], Iterable[Sample]]) -> None:
    """A function measured at each scrape of this process's endpoint. Its failure leaves its samples out
    (and is logged); the scrape still answers."""
    if _state is not None:
        _state.sources.append(source)


# -- the endpoint ----------------------------------------------------------------------------------------------


class _SourceCollector:
    def __init__(self, state: _State) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        families: dict[str, Any] = {}
        for source in list(self.state.sources):
            try:
                samples = list(source())
            except Exception as exc:  # noqa: BLE001 - one broken source must not break the scrape
                log.warning("metrics source %s failed: %s", getattr(source, "__name__", source), exc)
                continue
            for s in samples:
                family = families.get(s.name)
                if family is None:
                    family = families[s.name] = GaugeMetricFamily(PREFIX + s.name, s.doc, labels=sorted(s.labels))
                family.add_metric([s.labels[k] for k in sorted(s.labels)], s.value)
        yield from families.values()


@dataclass(eq=False)
class Endpoint:
    """The HTTP server of `GET /metrics` (prometheus_client's, in a thread)."""

    server: Any
    thread: threading.Thread
    address: tuple[str, int]

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


def start_endpoint(host: str, port: int) -> Endpoint:
    """Serve every process's counters and this process's sources on host:port. Raises OSError when the
    address cannot be bound; RuntimeError when `enable` was not called."""
    if _state is None:
        raise RuntimeError("metrics.enable() first")
    from prometheus_client import CollectorRegistry, start_http_server
    from prometheus_client.multiprocess import MultiProcessCollector

    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(_state.directory))  # type: ignore[no-untyped-call]
    registry.register(_SourceCollector(_state))
    server, thread = start_http_server(port, addr=host, registry=registry)
    bound = server.server_address
    return Endpoint(server, thread, (str(bound[0]), int(bound[1])))


__all__ = ["Endpoint", "Sample", "add_source", "auth_failure", "check_seconds", "disable", "enable",
           "is_enabled", "message", "replies", "signature_age", "start_endpoint"]
