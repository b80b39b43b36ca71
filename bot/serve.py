"""Running the bot: Socket Mode (no public URL needed) or HTTP on a threaded WSGI server."""

from __future__ import annotations

import logging
from typing import Mapping
from wsgiref.simple_server import WSGIServer

from core.wsgi import serve_in_background

log = logging.getLogger("labmate.serve")
EVENTS_PATH = "/slack/events"


def wsgi_app(app):
    """WSGI callable: Slack requests on /slack/events, a health check on /healthz."""
    from slack_bolt.adapter.wsgi import SlackRequestHandler

    slack = SlackRequestHandler(app, path=EVENTS_PATH)

    def application(environ, start_response):
        if environ.get("PATH_INFO") == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        return slack(environ, start_response)

    return application


def start_http(app, host: str = "127.0.0.1", port: int = 3000) -> WSGIServer:
    """Start serving in a background thread; returns the server (`.server_port`, `.shutdown()`)."""
    server = serve_in_background(wsgi_app(app), host, port, name="labmate-http")
    log.info("listening on http://%s:%d%s", host, server.server_port, EVENTS_PATH)
    return server


def socket_handler(app, env: Mapping[str, str]):
    """A Socket Mode handler whose connection requests go through SLACK_API_URL too."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    return SocketModeHandler(app, app_token=env["SLACK_APP_TOKEN"], web_client=app.client)
