"""Running the bot: Socket Mode (no public URL needed) or HTTP on a threaded WSGI server."""

from __future__ import annotations

import logging
import threading
from socketserver import ThreadingMixIn
from typing import Mapping
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

log = logging.getLogger("labmate.serve")
EVENTS_PATH = "/slack/events"


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True  # a slow client never keeps the process from stopping
    request_queue_size = 128  # bursts of slash commands queue instead of being refused


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature from the base class
        log.debug("%s - %s", self.address_string(), format % args)


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
    server = make_server(host, port, wsgi_app(app), server_class=_ThreadingWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="labmate-http", daemon=True).start()
    log.info("listening on http://%s:%d%s", host, server.server_port, EVENTS_PATH)
    return server


def socket_handler(app, env: Mapping[str, str]):
    """A Socket Mode handler whose connection requests go through SLACK_API_URL too."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    return SocketModeHandler(app, app_token=env["SLACK_APP_TOKEN"], web_client=app.client)
