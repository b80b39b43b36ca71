"""Running the bot: Socket Mode (no public URL needed) or HTTP on a threaded WSGI server."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Mapping
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

log = logging.getLogger("labmate.serve")
EVENTS_PATH = "/slack/events"


class _PooledWSGIServer(WSGIServer):
    """Requests handled by a pool of reused threads: starting a thread per connection costs
    ~1.5 ms of the accept loop's time on 2 cores, which is what limits ack latency in bursts."""

    request_queue_size = 128  # bursts of slash commands queue instead of being refused

    def __init__(self, *args, workers: int = 16, **kwargs):
        super().__init__(*args, **kwargs)
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="labmate-http")

    def process_request(self, request, client_address):
        self._pool.submit(self._handle, request, client_address)

    def _handle(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def server_close(self):
        super().server_close()
        self._pool.shutdown(wait=False, cancel_futures=True)


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
    server = make_server(host, port, wsgi_app(app), server_class=_PooledWSGIServer, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="labmate-accept", daemon=True).start()
    log.info("listening on http://%s:%d%s", host, server.server_port, EVENTS_PATH)
    return server


def socket_handler(app, env: Mapping[str, str]):
    """A Socket Mode handler whose connection requests go through SLACK_API_URL too."""
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    return SocketModeHandler(app, app_token=env["SLACK_APP_TOKEN"], web_client=app.client)
