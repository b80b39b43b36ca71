"""Health and Prometheus metrics of the bot (`labmate serve`).

`BotMetrics` owns one `CollectorRegistry` per app (never prometheus_client's global one, so tests
that build several apps do not collide). `create_app` makes one and attaches it as
`app.labmate_metrics`; `bot.serve` times acks with it and answers `/healthz` and `/metrics` on the
bot's HTTP port; `serve_metrics` serves both on `[metrics] host:port` in every mode.

Metrics (updates on the ack path are O(1): a dict lookup and an addition, no I/O, no lock held
across I/O; gauges that need a query are read only when Prometheus scrapes):

    labmate_slack_requests_total{kind, name, outcome}
        Slack requests a listener handled, counted when the listener *and* the work it handed to
        `services.submit` (the search, the draft, ...) have ended. kind: command, event, action,
        view, shortcut, options, other; name: "/papers", "app_mention", "message.file_share",
        "papers_bibtex", ...; outcome: "error" when the listener or that work raised something
        other than a `UserError` (a user's own mistake, e.g. a malformed query, is answered with
        an explanation and counts as "ok").
    labmate_slack_ack_seconds{transport}
        Histogram: from a Slack request reaching the bot to its ack being sent. http: around
        /slack/events in the WSGI layer, until the response is written to the socket; socket:
        around the Socket Mode handler, until the ack is sent on the WebSocket.
    labmate_slack_api_retries_total{method, reason}
        Web API (and response_url) calls retried; reason: ratelimited (429), server_error (5xx),
        connection_error.
    labmate_slack_api_errors_total{method, error}
        Web API calls that failed after their retries; error: Slack's error code
        ("ratelimited", "channel_not_found", ...), http_<status> or connection_error. method
        "response_url" for replies to commands and buttons.
    labmate_index_papers, labmate_index_passages
        Gauges read from the library at scrape time (`library.store.counts()`); absent until the
        index is open (a scrape never opens it).
    labmate_training_jobs{state}, labmate_training_workers, labmate_training_store_up
        When jobs run on this machine's job database ([training] url empty): see
        training/metrics_export.py.
    process_*, python_*                       the process's CPU, memory, open files, GC.

Label values that come from requests are bounded: past 64 distinct names per label, new ones
are counted as "other".
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any, Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, make_wsgi_app
from prometheus_client.core import GaugeMetricFamily

from core.errors import UserError
from core.wsgi import serve_in_background
from training.metrics_export import JobsCollector, add_process_collectors

log = logging.getLogger("labmate.metrics")

REQUESTS = "labmate_slack_requests"
ACK = "labmate_slack_ack_seconds"
API_RETRIES = "labmate_slack_api_retries"
API_ERRORS = "labmate_slack_api_errors"
INDEX_PAPERS = "labmate_index_papers"
INDEX_PASSAGES = "labmate_index_passages"
COMMANDS = ("/papers", "/draft", "/train", "/report")
# Slack allows 3 s for an ack; the goal is p99 <= 200 ms (bench/slack_ack.py).
ACK_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0)
MAX_NAMES = 64
OTHER = "other"
INDEX_LOCK_WAIT = 0.25  # seconds a scrape waits for the library (an ingest may hold it for long)
TEXT = "text/plain; charset=utf-8"

# The request a Bolt listener thread is handling (set by the listener start handler).
_listening = threading.local()


class _Bounded:
    """Label values seen so far; past `limit` distinct ones, new values become "other"."""

    def __init__(self, limit: int = MAX_NAMES):
        self._seen: set[str] = set()
        self._limit = limit

    def __call__(self, value: Any) -> str:
        value = str(value or "unknown")[:80]
        if value in self._seen:
            return value
        if len(self._seen) >= self._limit:
            return OTHER
        self._seen.add(value)
        return value


def request_labels(body: Any) -> tuple[str, str]:
    """(kind, name) of a Slack request body as Bolt parsed it."""
    if not isinstance(body, dict):
        return OTHER, "unknown"
    if body.get("command"):
        return "command", body["command"]
    kind = body.get("type")
    if kind == "event_callback":
        event = body.get("event") or {}
        subtype = event.get("subtype")
        return "event", f"{event.get('type')}.{subtype}" if subtype else event.get("type")
    if kind in ("block_actions", "interactive_message"):
        actions = body.get("actions") or [{}]
        return "action", actions[0].get("action_id") or actions[0].get("name")
    if kind in ("view_submission", "view_closed"):
        return "view", (body.get("view") or {}).get("callback_id")
    if kind in ("shortcut", "message_action"):
        return "shortcut", body.get("callback_id")
    if kind == "block_suggestion":
        return "options", body.get("action_id")
    return OTHER, kind


class _Served:
    """One request being handled: counted once the listener and the work it submitted are done."""

    __slots__ = ("metrics", "kind", "name", "pending", "failed", "_lock")

    def __init__(self, metrics: "BotMetrics", kind: str, name: str):
        self.metrics, self.kind, self.name = metrics, kind, name
        self.pending, self.failed = 1, False  # the listener itself
        self._lock = threading.Lock()

    def hold(self) -> None:
        with self._lock:
            self.pending += 1

    def release(self) -> None:
        with self._lock:
            self.pending -= 1
            done = self.pending == 0
        if done:
            self.metrics.requests.labels(self.kind, self.name, "error" if self.failed else "ok").inc()


class _StartHandler:
    """Bolt's listener start handler, plus: remember which request this listener thread runs."""

    def __init__(self, inner, metrics: "BotMetrics"):
        self.inner, self.metrics = inner, metrics

    def handle(self, request, response) -> None:
        self.inner.handle(request=request, response=response)
        kind, name = request_labels(request.body)
        _listening.served = _Served(self.metrics, kind, self.metrics._names(name))


class _CompletionHandler:
    """Bolt's listener completion handler, plus: the listener is done (its submitted work may not be)."""

    def __init__(self, inner):
        self.inner = inner

    def handle(self, request, response) -> None:
        served = getattr(_listening, "served", None)
        _listening.served = None
        try:
            self.inner.handle(request=request, response=response)
        finally:
            if served is not None:
                if response is not None and response.status >= 500:
                    served.failed = True
                served.release()


def _failure(exc: BaseException) -> bool:
    return not isinstance(exc, UserError)


class IndexCollector:
    """Papers and passages in the library, read at scrape time; nothing while the index is not open
    (a scrape never opens it), the last values while an ingest holds the library."""

    def __init__(self, services):
        self.services = services
        self._last: dict[str, int] | None = None

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        return (GaugeMetricFamily(INDEX_PAPERS, "Papers in the library's index."),
                GaugeMetricFamily(INDEX_PASSAGES, "Passages (searchable chunks) in the library's index."))

    def describe(self) -> Iterator[GaugeMetricFamily]:
        yield from self._families()

    def collect(self) -> Iterator[GaugeMetricFamily]:
        library = self.services.library_if_open()  # Services opens it on first use; not here
        if library is None:
            return
        lock = getattr(self.services, "library_lock", None)
        if lock is None or lock.acquire(timeout=INDEX_LOCK_WAIT):
            try:
                self._last = dict(library.store.counts())
            except sqlite3.Error as exc:  # closed while shutting down
                log.debug("metrics: index counts unavailable: %s", exc)
            finally:
                if lock is not None:
                    lock.release()
        if self._last is None:
            return
        papers, passages = self._families()
        papers.add_metric([], self._last.get("papers", 0))
        passages.add_metric([], self._last.get("passages", 0))
        yield papers
        yield passages


class BotMetrics:
    """The bot's metrics and health check, on a registry of its own."""

    def __init__(self, services=None, *, training_database: Path | None = None, process: bool = True):
        self.registry = registry = CollectorRegistry()
        self.requests = Counter(REQUESTS, "Slack requests handled (the listener and the work it started), by "
                                "kind, name and outcome.", ["kind", "name", "outcome"], registry=registry)
        self.ack = Histogram(ACK, "Seconds from a Slack request reaching the bot to its ack being sent.",
                             ["transport"], buckets=ACK_BUCKETS, registry=registry)
        self.api_retries = Counter(API_RETRIES, "Slack Web API and response_url calls retried, by method and reason.",
                                   ["method", "reason"], registry=registry)
        self.api_errors = Counter(API_ERRORS, "Slack Web API and response_url calls that failed after their retries, "
                                  "by method and error.", ["method", "error"], registry=registry)
        for command in COMMANDS:  # series exist from the start, so rate() and alerts see the first one
            for outcome in ("ok", "error"):
                self.requests.labels("command", command, outcome)
        self._names, self._methods, self._errors = _Bounded(), _Bounded(), _Bounded()
        self._checks: list[tuple[str, Callable[[], bool]]] = []
        if services is not None:
            registry.register(IndexCollector(services))
            self.add_check("index not open yet", lambda: services.library_if_open() is not None)
        if training_database is not None:
            registry.register(JobsCollector(training_database))
        if process:
            add_process_collectors(registry)
        self._exposition = make_wsgi_app(registry)

    # -- Slack requests ----------------------------------------------------------------------------

    def instrument(self, app, services=None) -> None:
        """Count each request `app`'s listeners handle (see `labmate_slack_requests_total`): through
        Bolt's listener start/completion handlers, and by following the work a listener hands to
        `services.submit` (wrapped on this `services` object)."""
        runner = getattr(app, "_listener_runner", None)
        if runner is None or not hasattr(runner, "listener_completion_handler"):
            log.warning("metrics: this slack_bolt has no listener runner hooks; requests are not counted")
            return
        runner.listener_start_handler = _StartHandler(runner.listener_start_handler, self)
        runner.listener_completion_handler = _CompletionHandler(runner.listener_completion_handler)
        if services is not None:
            services.submit = self._following(services.submit)

    def _following(self, submit: Callable) -> Callable:
        def tracked_submit(work: Callable[[], None], on_error: Callable[[BaseException], None], *,
                           slow: bool = False) -> None:
            served = getattr(_listening, "served", None)
            if served is None:  # not from a listener (scheduled reports, ...)
                return submit(work, on_error, slow=slow)
            served.hold()

            def tracked() -> None:
                try:
                    work()
                except BaseException as exc:
                    if _failure(exc):
                        served.failed = True
                    raise
                finally:
                    served.release()

            try:
                submit(tracked, on_error, slow=slow)
            except BaseException:
                served.release()
                raise

        return tracked_submit

    def listener_failed(self, error: BaseException) -> None:
        """A listener raised (called from the app's error handler, in the listener's thread)."""
        served = getattr(_listening, "served", None)
        if served is not None and _failure(error):
            served.failed = True

    def ack_observer(self, transport: str) -> Callable[[float], None]:
        """`observe(seconds)` of the ack histogram for "http" or "socket"."""
        return self.ack.labels(transport).observe

    # -- Web API (bot.slack_client.ApiObserver) ----------------------------------------------------

    def api_retry(self, method: str, reason: str) -> None:
        self.api_retries.labels(self._methods(method), reason).inc()

    def api_error(self, method: str, error: str) -> None:
        self.api_errors.labels(self._methods(method), self._errors(error)).inc()

    # -- health ------------------------------------------------------------------------------------

    def add_check(self, reason: str, check: Callable[[], bool]) -> None:
        """`/healthz` answers 503 with `reason` while `check()` is false (checks must be cheap)."""
        self._checks.append((reason, check))

    def unhealthy(self) -> str | None:
        """None when every check passes, else the first failing check's reason."""
        for reason, check in self._checks:
            try:
                if not check():
                    return reason
            except Exception as exc:  # a broken check is a failing one
                return f"{reason} ({type(exc).__name__})"
        return None

    # -- HTTP --------------------------------------------------------------------------------------

    def respond(self, environ, start_response) -> list[bytes]:
        """WSGI: `/healthz` (200 "ok" or 503 and the reason) and `/metrics`; 404 otherwise."""
        path = environ.get("PATH_INFO") or "/"
        if path == "/metrics":
            return self._exposition(environ, start_response)
        if path == "/healthz":
            reason = self.unhealthy()
            status, body = ("200 OK", b"ok\n") if reason is None else ("503 Service Unavailable",
                                                                      f"{reason}\n".encode("utf-8"))
        else:
            status, body = "404 Not Found", b"Not found: this port serves /healthz and /metrics.\n"
        start_response(status, [("Content-Type", TEXT), ("Content-Length", str(len(body))),
                                ("Cache-Control", "no-store")])
        return [body]


def serve_metrics(metrics: BotMetrics, host: str, port: int):
    """Serve `/healthz` and `/metrics` on host:port (0 = any free port) from a background thread;
    returns the server (`.server_port`, `.shutdown()`). OSError when the port cannot be bound."""
    server = serve_in_background(metrics.respond, host, port, name="labmate-metrics", workers=2)
    log.info("health and metrics on http://%s:%d/healthz and /metrics", host, server.server_port)
    return server

