"""HTTP routing of the fake: Web API, response_url hooks, file upload/download, Socket Mode."""

from __future__ import annotations

import json
import logging
import time
from email import policy
from email.parser import BytesParser
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any, Callable
from urllib.parse import parse_qs, quote, unquote, urlsplit

from . import websocket
from .api import call_method
from .models import Call, Failure

if TYPE_CHECKING:
    from .server import FakeSlack

log = logging.getLogger(__name__)
Reply = tuple[int, dict[str, str], Any]  # status, extra headers, dict (sent as JSON) or bytes


def parse_params(query: str, body: bytes, content_type: str) -> tuple[dict[str, Any], bytes | None]:
    """Query string plus body (JSON, multipart or form-encoded) as one dict, and any file part."""
    params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(query, keep_blank_values=True).items()}
    ctype = content_type.split(";")[0].strip().lower()
    if ctype == "application/json" and body.strip():
        parsed = json.loads(body)
        params.update(parsed if isinstance(parsed, dict) else {"payload": parsed})
    elif ctype == "multipart/form-data":
        fields, data = _multipart(body, content_type)
        params.update(fields)
        return params, data
    elif body:
        text = body.decode("utf-8", errors="replace")
        params.update({k: v[-1] for k, v in parse_qs(text, keep_blank_values=True).items()})
    return params, None


def _multipart(body: bytes, content_type: str) -> tuple[dict[str, str], bytes | None]:
    message = BytesParser(policy=policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    fields: dict[str, str] = {}
    data = None
    for part in message.iter_parts():
        payload = part.get_payload(decode=True) or b""
        if part.get_filename():
            data = payload
            fields.setdefault("filename", part.get_filename())
        else:
            fields[part.get_param("name", header="content-disposition") or ""] = payload.decode()
    return fields, data


def _failure_reply(failure: Failure) -> Reply:
    if failure.error:
        return 200, {}, {"ok": False, "error": failure.error}
    if failure.status == 429:
        headers = {"Retry-After": str(failure.retry_after)} if failure.retry_after is not None else {}
        return 429, headers, {"ok": False, "error": "ratelimited"}
    return failure.status, {}, {"ok": False, "error": "fatal_error"}


class RequestHandler(BaseHTTPRequestHandler):
    """One connection to the fake; `self.server.fake` is the FakeSlack it serves."""

    protocol_version = "HTTP/1.1"
    server_version = "devslack/1.0"
    timeout = 60

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (stdlib signature)
        """Access log lines go to the debug log, not stderr."""
        log.debug("%s " + format, self.address_string(), *args)

    @property
    def fake(self) -> "FakeSlack":
        """The FakeSlack this server belongs to."""
        return self.server.fake  # type: ignore[attr-defined]

    def do_GET(self) -> None:
        """Downloads and the Socket Mode upgrade (API methods accept GET too)."""
        self._route()

    def do_POST(self) -> None:
        """API methods, response_urls and uploads."""
        self._route()

    def _route(self) -> None:
        url = urlsplit(self.path)
        path = url.path
        if path.rstrip("/") == "/link":
            return self._socket(url.query)
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type") or ""
        if path.startswith("/upload/") and not ctype.lower().startswith("multipart/"):
            params, data = {}, body  # the raw bytes, whatever Content-Type urllib put on them
        else:
            try:
                params, data = parse_params(url.query, body, ctype)
            except ValueError:
                return self._send(200, {}, {"ok": False, "error": "invalid_json"})
        if path.startswith("/api/"):
            method = path[len("/api/"):].strip("/")
            self._handle(method, params, lambda call: (200, {}, call_method(
                self.fake, method, params, call.token)))
        elif path.startswith("/response/"):
            hook = path[len("/response/"):].strip("/")
            self._handle("response_url", params, lambda call: self.fake.handle_response_url(hook, params))
        elif path.startswith("/upload/"):
            upload = data if data is not None else body
            self._handle("file_upload", {**params, "bytes": len(upload)},
                         lambda call: self._upload(path, upload))
        elif path.startswith("/files-pri/"):
            self._handle("file_download", params, lambda call: self._download(path, call))
        elif self.fake.ui is not None and (path == "/" or path.startswith("/ui/")):
            try:
                self._send(*self.fake.ui.handle(self.command, path, params, data))
            except (BrokenPipeError, ConnectionResetError):
                log.debug("the page went away before its answer")  # a closed tab's long poll
        else:
            self._send(404, {}, {"ok": False, "error": "not_found"})

    def _handle(self, method: str, params: dict[str, Any], run: Callable[[Call], Reply]) -> None:
        call = Call(method, params, dict(self.headers.items()), time.time(), self.path)
        failure = self.fake.record(call)
        try:
            status, headers, body = _failure_reply(failure) if failure else run(call)
        except Exception as exc:  # a bug in the fake: answer like Slack's 500, keep serving
            log.exception("devslack failed on %s", method)
            status, headers, body = 500, {}, {"ok": False, "error": f"fatal_error: {exc}"}
        self.fake.answered(call, status, body if isinstance(body, dict) else None)
        self._send(status, headers, body)

    def _send(self, status: int, headers: dict[str, str], body: Any) -> None:
        if isinstance(body, (dict, list)):
            payload = json.dumps(body).encode()
            headers = {"Content-Type": "application/json; charset=utf-8", **headers}
        else:
            payload = body
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def _upload(self, path: str, data: bytes) -> Reply:
        file_id = path[len("/upload/"):].strip("/")
        if not self.fake.receive_upload(file_id, data):
            return 404, {"Content-Type": "text/plain"}, b"unknown upload"
        return 200, {"Content-Type": "text/plain"}, f"OK - {len(data)}".encode()

    def _download(self, path: str, call: Call) -> Reply:
        if call.header("Authorization") != f"Bearer {self.fake.bot_token}":
            message = b"not authorized: send Authorization: Bearer <bot token>"
            return 401, {"Content-Type": "text/plain"}, message
        owner = unquote(path.split("/")[2])  # /files-pri/<team>-<file id>/[download/]<name>
        stored = self.fake.file(owner.rsplit("-", 1)[-1])
        if stored is None:
            return 404, {"Content-Type": "text/plain"}, b"file not found"
        headers = {"Content-Type": stored.info["mimetype"]}
        if "/download/" in path:
            headers["Content-Disposition"] = f"attachment; filename*=UTF-8''{quote(stored.info['name'])}"
        return 200, headers, stored.data

    def _socket(self, query: str) -> None:
        ticket = parse_qs(query).get("ticket", [""])[0]
        if not self.fake.valid_ticket(ticket):
            self._send(401, {}, {"ok": False, "error": "invalid_ticket"})
            return
        ws = websocket.upgrade(self)
        if ws is not None:
            self.fake.serve_socket(ws)
