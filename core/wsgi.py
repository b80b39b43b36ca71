"""A small threaded WSGI server (stdlib only) shared by the Slack endpoint and the training API."""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

log = logging.getLogger("labmate.http")


class PooledWSGIServer(WSGIServer):
    """Requests handled by a pool of reused threads: starting a thread per connection costs
    ~1.5 ms of the accept loop's time on 2 cores, which is what limits ack latency in bursts."""

    request_queue_size = 128  # bursts queue instead of being refused
    workers = 16
    thread_name = "labmate-http"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix=self.thread_name)

    def process_request(self, request, client_address):
        self._pool.submit(self._handle, request, client_address)

    def _handle(self, request, client_address):
        try:
            self.finish_request(request, client_address)
        except Exception:
            self.handle_error(request, client_address)
        finally:
            self.shutdown_request(request)

    def shutdown(self):
        """Stop serving and release the port and the threads."""
        super().shutdown()
        self.server_close()

    def server_close(self):
        super().server_close()
        pool = getattr(self, "_pool", None)  # absent when binding the port failed
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


class QuietHandler(WSGIRequestHandler):
    """Access lines at debug level; a client that stops sending mid-request frees its thread."""

    timeout = 60

    def log_message(self, format, *args):  # noqa: A002 - signature from the base class
        log.debug("%s - %s", self.address_string(), format % args)


def serve_in_background(app, host: str, port: int, *, name: str, workers: int = 16) -> WSGIServer:
    """Serve the WSGI `app` on host:port (0 = any free port) from a background thread; returns
    the server (`.server_port`, `.shutdown()`). OSError when the port cannot be bound."""
    server_class = type("Server", (PooledWSGIServer,), {"workers": workers, "thread_name": name})
    server = make_server(host, port, app, server_class=server_class, handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1}, name=f"{name}-accept",
                     daemon=True).start()
    return server
