"""A fake OpenAI-compatible chat server that streams the way vLLM does, for backend tests.

    with FakeLLMServer(reply=lambda messages: "Hello there") as server:
        OpenAICompatGenerator(server.url, "fake-model").generate(...)

Everything it received is in `server.requests` (bodies) and `server.headers`.
"""

from __future__ import annotations

import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable, Sequence

ERROR_TYPES = {400: "invalid_request_error", 401: "invalid_request_error", 404: "invalid_request_error",
               429: "rate_limit_exceeded", 500: "server_error", 503: "server_error"}


def echo_reply(messages: Sequence[dict]) -> str:
    """A deterministic default reply: the last user message, echoed."""
    last = next((m["content"] for m in reversed(messages) if m.get("role") == "user"), "")
    return f"You said: {last}"


class FakeLLMServer:
    """A threaded HTTP server on 127.0.0.1 speaking OpenAI's /v1/chat/completions."""

    def __init__(self, reply: Callable[[Sequence[dict]], str] = echo_reply, *, api_key: str | None = None,
                 models: Sequence[str] | None = None, delay: float = 0.0, ignore_stop: bool = False):
        self.reply, self.api_key, self.delay, self.ignore_stop = reply, api_key, delay, ignore_stop
        self.models = list(models) if models is not None else None
        self.requests: list[dict | None] = []  # every request body, parsed
        self.headers: list[dict[str, str]] = []  # every request's headers
        self.sent_at: list[float] = []  # time.monotonic() as each content piece was written
        self._canned: list[tuple[int, bytes, str]] = []
        self._lock = threading.Lock()
        self._httpd: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def __enter__(self) -> FakeLLMServer:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self
        threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        return self

    def __exit__(self, *exc) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def fail_next(self, status: int, times: int = 1) -> None:
        """Answer the next `times` requests with HTTP `status` and an OpenAI-style error body."""
        body = error_body(status, f"Fake failure {status}", "fake_failure")
        self.respond_next(status, body, "application/json", times)

    def respond_next(self, status: int, body: bytes, content_type: str, times: int = 1) -> None:
        """Answer the next `times` requests with exactly this (e.g. an HTML page, broken SSE)."""
        with self._lock:
            self._canned.extend([(status, body, content_type)] * times)

    def _take_canned(self) -> tuple[int, bytes, str] | None:
        with self._lock:
            return self._canned.pop(0) if self._canned else None

    def plan(self, body: dict) -> tuple[list[str], str]:
        """The pieces to send (words with their leading spaces) and the finish reason, honouring
        max_tokens (one piece = one token) and stop (the stop string itself is not sent)."""
        pieces = re.findall(r"\s*\S+", self.reply(body["messages"]))
        stop = body.get("stop") or []
        stop = [stop] if isinstance(stop, str) else stop
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        out: list[str] = []
        text = ""
        for piece in pieces:
            if limit is not None and len(out) >= limit:
                return out, "length"
            cuts = [i for i in ((text + piece).find(s) for s in stop if s) if i >= 0]
            if cuts and not self.ignore_stop:
                tail = (text + piece)[len(text):min(cuts)]
                return out + [tail] if tail else out, "stop"
            out.append(piece)
            text += piece
        return out, "stop"


def error_body(status: int, message: str, code: str) -> bytes:
    error = {"message": message, "type": ERROR_TYPES.get(status, "error"), "param": None, "code": code}
    return json.dumps({"error": error}).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # chunked transfer encoding, as vLLM (uvicorn) streams

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        fake: FakeLLMServer = self.server.fake
        data = [{"id": m, "object": "model", "owned_by": "fake"} for m in fake.models or ["fake-model"]]
        self._send(200, json.dumps({"object": "list", "data": data}).encode(), "application/json")

    def do_POST(self) -> None:
        fake: FakeLLMServer = self.server.fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw)
        except ValueError:
            body = None
        with fake._lock:
            fake.requests.append(body)
            fake.headers.append(dict(self.headers))
        canned = fake._take_canned()
        if canned:
            return self._send(*canned)
        if self.path.rstrip("/") != "/v1/chat/completions":
            return self._error(404, f"Not found: {self.path}", "not_found")
        if fake.api_key and self.headers.get("Authorization") != f"Bearer {fake.api_key}":
            return self._error(401, "Incorrect API key provided.", "invalid_api_key")
        if not isinstance(body, dict) or not body.get("messages"):
            return self._error(400, "messages is required", "invalid_request")
        if fake.models is not None and body.get("model") not in fake.models:
            return self._error(404, f"The model `{body.get('model')}` does not exist.", "model_not_found")
        pieces, finish = fake.plan(body)
        if body.get("stream"):
            return self._stream(fake, body, pieces, finish)
        message = {"role": "assistant", "content": "".join(pieces)}
        reply = _envelope(body, "chat.completion", [{"index": 0, "message": message, "finish_reason": finish}])
        reply["usage"] = _usage(body, pieces)
        self._send(200, json.dumps(reply).encode(), "application/json")

    def _stream(self, fake: FakeLLMServer, body: dict, pieces: list[str], finish: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            self._event(_chunk(body, {"role": "assistant", "content": ""}, None))
            for piece in pieces:
                time.sleep(fake.delay)
                fake.sent_at.append(time.monotonic())
                self._event(_chunk(body, {"content": piece}, None))
            self._event(_chunk(body, {}, finish))
            if (body.get("stream_options") or {}).get("include_usage"):
                self._event({**_envelope(body, "chat.completion.chunk", []), "usage": _usage(body, pieces)})
            self._write_chunk(b"data: [DONE]\n\n")
            self.wfile.write(b"0\r\n\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client stopped reading (a client-side stop or a timeout)

    def _event(self, payload: dict) -> None:
        self._write_chunk(b"data: " + json.dumps(payload).encode() + b"\n\n")

    def _write_chunk(self, data: bytes) -> None:
        # One HTTP chunk per event, flushed, so the client can read each as it is written.
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _error(self, status: int, message: str, code: str) -> None:
        self._send(status, error_body(status, message, code), "application/json")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        try:
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass


def _envelope(body: dict, kind: str, choices: list) -> dict:
    return {"id": "chatcmpl-fake", "object": kind, "created": int(time.time()), "model": body.get("model"),
            "choices": choices}


def _chunk(body: dict, delta: dict, finish: str | None) -> dict:
    return _envelope(body, "chat.completion.chunk", [{"index": 0, "delta": delta, "finish_reason": finish}])


def _usage(body: dict, pieces: list[str]) -> dict:
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    return {"prompt_tokens": prompt, "completion_tokens": len(pieces), "total_tokens": prompt + len(pieces)}
