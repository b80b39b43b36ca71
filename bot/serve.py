"""Running the bot: Socket Mode (no public URL needed) or HTTP on a threaded WSGI server."""

from __future__ import annotations

import logging
import time
from typing import Callable, Mapping
from wsgiref.simple_server import WSGIServer

from core.wsgi import serve_in_background

log = logging.getLogger("labmate.serve")
EVENTS_PATH = "/slack/events"
METRICS_PATHS = ("/healthz", "/metrics")


class _TimedBody(list):
    """A response body that reports, when the server closes it (after writing it to the socket),
    how long the request took: a list still, so the server sets Content-Length as before."""

    __slots__ = ("_observe", "_start", "_close")

    def close(self) -> None:
        try:
            if self._close is not None:
                self._close()
        finally:
            self._observe(time.perf_counter() - self._start)


def _timed(body, observe: Callable[[float], None], start: float) -> _TimedBody:
    timed = _TimedBody(body)
    timed._observe, timed._start, timed._close = observe, start, getattr(body, "close", None)
    return timed


def wsgi_app(app, metrics=None):
    """WSGI callable: Slack requests on /slack/events; /healthz and /metrics from `metrics`
    (default `app.labmate_metrics`), which also times each ack. Without metrics, /healthz is a
    plain "ok"."""
    from slack_bolt.adapter.wsgi import SlackRequestHandler

    slack = SlackRequestHandler(app, path=EVENTS_PATH)
    metrics = metrics if metrics is not None else getattr(app, "labmate_metrics", None)
    if metrics is None:
        def application(environ, start_response):
            if environ.get("PATH_INFO") == "/healthz":
                start_response("200 OK", [("Content-Type", "text/plain")])
                return [b"ok\n"]
            return slack(environ, start_response)

        return application
    observe = metrics.ack_observer("http")

    def timed_application(environ, start_response):
        path = environ.get("PATH_INFO")
        if path == EVENTS_PATH:
            start = time.perf_counter()  # the request line and headers are in; Bolt reads the body
            return _timed(slack(environ, start_response), observe, start)
        if path in METRICS_PATHS:
            return metrics.respond(environ, start_response)
        return slack(environ, start_response)

    return timed_application


def start_http(app, host: str = "127.0.0.1", port: int = 3000) -> WSGIServer:
    """Start serving in a background thread; returns the server (`.server_port`, `.shutdown()`)."""
    server = serve_in_background(wsgi_app(app), host, port, name="labmate-http")
    log.info("listening on http://%s:%d%s", host, server.server_port, EVENTS_PATH)
    return server


def socket_handler(app, env: Mapping[str, str], metrics=None):
    """A Socket Mode handler whose connection requests go through SLACK_API_URL too; with
    `metrics` (default `app.labmate_metrics`) it times each request until its ack is sent."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    metrics = metrics if metrics is not None else getattr(app, "labmate_metrics", None)
    if metrics is None:
        return SocketModeHandler(app, app_token=env["SLACK_APP_TOKEN"], web_client=app.client)
    observe = metrics.ack_observer("socket")

    class TimedSocketModeHandler(SocketModeHandler):
        def handle(self, client, req) -> None:  # Bolt's dispatch, then the ack on the WebSocket
            start = time.perf_counter()
            try:
                super().handle(client, req)
            finally:
                observe(time.perf_counter() - start)

    return TimedSocketModeHandler(app, app_token=env["SLACK_APP_TOKEN"], web_client=app.client)
