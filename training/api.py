"""`labmate train serve`'s HTTP API: the `TrainingService` methods as JSON over HTTP.

Every route but `GET /healthz` and `GET /metrics` needs `Authorization: Bearer <token>` (401
without one, 403 with a wrong one). Routes:

    GET  /healthz                          -> "ok" (text, 200) when the job database answers (and the
                                              worker given to `make_api` runs), else 503 + reason
    GET  /metrics                          -> Prometheus text format (training/metrics_export.py)
    POST /jobs                             {"spec_text", "base_dir"?, "source"?, "origin"?}
                                           or {"preset", "origin"?}   -> 201 + job
    GET  /jobs?active=1&limit=20           -> {"jobs": [job, ...]}
    GET  /jobs/<id>                        -> job
    POST /jobs/<id>/cancel, /jobs/<id>/resume -> job
    GET  /jobs/<id>/logs?lines=200         -> {"text": "..."}
    GET  /jobs/<id>/metrics?since_step=-1  -> {"points": [{"step", "epoch", "kind", "name", "value", "at"}]}
    GET  /presets                          -> {"presets": ["name", ...]}

`/metrics` needs no token: it holds only aggregate counts (jobs per state, requests per route
template and status; no job names, ids, specs or paths), and the bearer token can submit jobs, so
handing it to Prometheus would spread a write credential to every place that scrapes. Keep the
port on a trusted network (as for the rest of this plain-HTTP API).

A job is `Job.to_dict()`. Errors are `{"error": message, "kind": ...}`: SpecError 400,
NotFoundError 404, other UserError 409, malformed requests 400/404/405/413 (kind "UserError" or
"NotFoundError"), auth 401/403 (kind "AuthError"), anything else 500 with a generic message (the
details go to the log). `training.client.RemoteService` is the client.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from dataclasses import asdict
from http import HTTPStatus
from typing import Any, Callable
from urllib.parse import parse_qs
from wsgiref.simple_server import WSGIServer

from prometheus_client import make_wsgi_app

from core.errors import ConfigError, NotFoundError, UserError
from core.wsgi import serve_in_background
from training.metrics_export import ApiMetrics, store_readable
from training.spec import SpecError

log = logging.getLogger("labmate.training.api")
MAX_BODY = 1 << 20  # 1 MiB: a job spec is a few hundred bytes
DEFAULT_TOKEN_ENV = "LABMATE_TRAIN_TOKEN"
SUBMIT_KEYS = {"spec_text", "base_dir", "source", "origin", "preset"}
JOB = r"/jobs/(\d{1,18})"  # 18 digits always fit SQLite's 64-bit integers


class HttpError(Exception):
    """A request the API refuses before it reaches the service (bad JSON, unknown route, auth)."""

    def __init__(self, status: int, message: str, kind: str = "UserError", headers: tuple = ()):
        super().__init__(message)
        self.status, self.kind, self.headers = status, kind, list(headers)


class Request:
    """The parts of a WSGI request the handlers read: query parameters and the JSON body."""

    def __init__(self, environ: dict):
        self.environ = environ
        self.query = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}

    def json(self) -> dict:
        """The body as a JSON object (400 if it is not one, 413 if it is too large)."""
        try:
            length = int(self.environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            raise HttpError(400, "Content-Length is not a number.") from None
        if length > MAX_BODY:
            raise HttpError(413, f"The request body is larger than {MAX_BODY} bytes; a job spec is far smaller.")
        raw = self.environ["wsgi.input"].read(length) if length > 0 else b""
        try:
            data = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HttpError(400, f"The request body is not valid JSON ({exc}).") from None
        if not isinstance(data, dict):
            raise HttpError(400, "The request body must be a JSON object.")
        return data

    def integer(self, name: str, default: int, low: int, high: int) -> int:
        """Query parameter `name` as an int in [low, high] (400 otherwise)."""
        raw = self.query.get(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise HttpError(400, f"Query parameter '{name}' must be a whole number (got {raw!r}).") from None
        if not low <= value <= high:
            raise HttpError(400, f"Query parameter '{name}' must be between {low} and {high} (got {value}).")
        return value

    def flag(self, name: str) -> bool:
        """Query parameter `name` as a boolean (1/true/yes or 0/false/no)."""
        raw = self.query.get(name, "0").lower()
        if raw not in ("1", "true", "yes", "0", "false", "no", ""):
            raise HttpError(400, f"Query parameter '{name}' must be 1 or 0 (got {raw!r}).")
        return raw in ("1", "true", "yes")


def _field(body: dict, name: str, kind: type, default: Any = None) -> Any:
    value = body.get(name, default)
    if value is not None and not isinstance(value, kind):
        names = {str: "a string", dict: "a JSON object"}
        raise HttpError(400, f"'{name}' must be {names.get(kind, kind.__name__)}.")
    return value


# -- handlers: (service, request, *path groups) -> (status, JSON payload) -----------------------

def _submit(service, req: Request):
    body = req.json()
    unknown = sorted(set(body) - SUBMIT_KEYS)
    if unknown:
        raise HttpError(400, f"Unknown key(s) {', '.join(unknown)}; a submission has "
                             f"{', '.join(sorted(SUBMIT_KEYS))}.")
    origin = _field(body, "origin", dict)
    if ("preset" in body) == ("spec_text" in body):
        raise HttpError(400, "Send either 'spec_text' (a TOML job spec) or 'preset' (a spec name), "
                             "not both or neither.")
    if "preset" in body:
        job = service.submit_preset(_field(body, "preset", str) or "", origin=origin)
    else:
        job = service.submit(_field(body, "spec_text", str) or "", base_dir=_field(body, "base_dir", str),
                             source=_field(body, "source", str) or "spec", origin=origin)
    return 201, job.to_dict()


def _list(service, req: Request):
    jobs = service.list(active=req.flag("active"), limit=req.integer("limit", 20, 1, 1000))
    return 200, {"jobs": [job.to_dict() for job in jobs]}


def _logs(service, req: Request, job_id: str):
    return 200, {"text": service.logs(int(job_id), lines=req.integer("lines", 200, 1, 10_000))}


def _metrics(service, req: Request, job_id: str):
    points = service.metrics(int(job_id), since_step=req.integer("since_step", -1, -1, 2**62))
    return 200, {"points": [asdict(p) for p in points]}


_ROUTE_TABLE: list[tuple[str, str, Callable]] = [
    ("GET", "/jobs", _list),
    ("POST", "/jobs", _submit),
    ("GET", JOB, lambda s, r, i: (200, s.get(int(i)).to_dict())),
    ("POST", JOB + "/cancel", lambda s, r, i: (200, s.cancel(int(i)).to_dict())),
    ("POST", JOB + "/resume", lambda s, r, i: (200, s.resume(int(i)).to_dict())),
    ("GET", JOB + "/logs", _logs),
    ("GET", JOB + "/metrics", _metrics),
    ("GET", "/presets", lambda s, r: (200, {"presets": s.presets()})),
]
ROUTES = [(method, re.compile(pattern), handler) for method, pattern, handler in _ROUTE_TABLE]
# The `route` label of the request counter: a template, never the raw path (job ids would make a
# new time series per job).
ROUTE_LABELS = [(re.compile(pattern), pattern.replace(JOB, "/jobs/{id}"))
                for pattern in dict.fromkeys(pattern for _, pattern, _ in _ROUTE_TABLE)]
OPEN_PATHS = ("/healthz", "/metrics")  # answered without a token


def _route_label(path: str) -> str:
    path = path.rstrip("/") or "/"
    if path in OPEN_PATHS:
        return path
    for pattern, label in ROUTE_LABELS:
        if pattern.fullmatch(path):
            return label
    return "other"


def _route(method: str, path: str) -> tuple[Callable, tuple]:
    path = path.rstrip("/") or "/"
    allowed = []
    for verb, pattern, handler in ROUTES:
        match = pattern.fullmatch(path)
        if match and verb == method:
            return handler, match.groups()
        if match:
            allowed.append(verb)
    if allowed:
        raise HttpError(405, f"{path} takes {' or '.join(allowed)}, not {method}.",
                        headers=[("Allow", ", ".join(allowed))])
    raise HttpError(404, f"There is no route {method} {path} in the training API.", kind="NotFoundError")


def _authorize(environ: dict, expected: bytes) -> None:
    scheme, _, value = environ.get("HTTP_AUTHORIZATION", "").strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise HttpError(401, "This request needs `Authorization: Bearer <token>`.", kind="AuthError",
                        headers=[("WWW-Authenticate", 'Bearer realm="labmate-training"')])
    # WSGI gives header values as latin-1 decoded text: encoding back yields the bytes sent.
    if not hmac.compare_digest(value.strip().encode("latin-1"), expected):
        raise HttpError(403, "The bearer token is wrong.", kind="AuthError")


def _error(exc: Exception) -> tuple[int, dict, list]:
    if isinstance(exc, HttpError):
        return exc.status, {"error": str(exc), "kind": exc.kind}, exc.headers
    if isinstance(exc, SpecError):
        return 400, {"error": str(exc), "kind": "SpecError"}, []
    if isinstance(exc, NotFoundError):
        return 404, {"error": str(exc), "kind": "NotFoundError"}, []
    if isinstance(exc, UserError):
        return 409, {"error": str(exc), "kind": "UserError"}, []
    log.exception("training API: request failed")
    return 500, {"error": "The training service failed on this request; its log has the details.",
                 "kind": "InternalError"}, []


def _respond(start_response, status: int, body: bytes, content_type: str, headers: list = ()) -> list[bytes]:
    start_response(f"{status} {HTTPStatus(status).phrase}",
                   [("Content-Type", content_type), ("Content-Length", str(len(body))),
                    ("Cache-Control", "no-store"), *headers])
    return [body]


def require_token(token: str, token_env: str = DEFAULT_TOKEN_ENV) -> None:
    """ConfigError unless `token` is a usable (non-empty) bearer token."""
    if not (token or "").strip():
        raise ConfigError(
            f"`labmate train serve` needs a bearer token: set the environment variable {token_env} (named by "
            "[training] token_env) to a long random secret, e.g. the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`, and set the same value on the "
            "machines that send jobs.")


def make_api(service, token: str, *, worker=None, metrics: ApiMetrics | None = None):
    """The WSGI app serving `service` (a `LocalService`) to clients that send `token`.

    `/healthz` is 200 when the job database answers (and `worker`, a `training.worker.Worker` run
    by the same process, if given, is alive), else 503 with the reason. `/metrics` serves
    `metrics` (default: a new `ApiMetrics` on its own registry, with jobs by state read from
    `service.store` at scrape time)."""
    require_token(token, getattr(getattr(service, "settings", None), "token_env", DEFAULT_TOKEN_ENV))
    expected = token.strip().encode("utf-8")
    database = getattr(getattr(service, "store", None), "path", None)
    metrics = metrics if metrics is not None else ApiMetrics(database)
    exposition = make_wsgi_app(metrics.registry)

    def unhealthy() -> str | None:
        reason = store_readable(database) if database is not None else None
        if reason is None and worker is not None and not worker.alive:
            reason = "training worker stopped"
        return reason

    def application(environ, start_response):
        method, path = environ.get("REQUEST_METHOD", "GET"), environ.get("PATH_INFO") or "/"
        route = _route_label(path)

        def counted(status: str, headers: list, exc_info=None):
            metrics.request(method, route, int(status[:3]))
            return start_response(status, headers, exc_info) if exc_info else start_response(status, headers)

        if route in OPEN_PATHS and method in ("GET", "HEAD"):
            if route == "/metrics":
                return exposition(environ, counted)
            reason = unhealthy()
            if reason:
                return _respond(counted, 503, f"{reason}\n".encode("utf-8"), "text/plain; charset=utf-8")
            return _respond(counted, 200, b"ok\n", "text/plain; charset=utf-8")
        headers: list = []
        try:
            _authorize(environ, expected)
            handler, groups = _route(method, path)
            status, payload = handler(service, Request(environ), *groups)
        except Exception as exc:  # every error becomes a JSON answer; unexpected ones are logged
            status, payload, headers = _error(exc)
        body = json.dumps(payload).encode("utf-8")
        return _respond(counted, status, body, "application/json", headers)

    return application


def start_api(service, host: str, port: int, token: str, *, worker=None) -> WSGIServer:
    """Serve `service` on host:port (0 = any free port) in a background thread; returns the
    server (`.server_port`, `.shutdown()`). ConfigError for an empty token or a busy port.
    `worker`: the `Worker` this process runs, checked by `/healthz`."""
    app = make_api(service, token, worker=worker)
    try:
        server = serve_in_background(app, host, port, name="labmate-train-api", workers=8)
    except OSError as exc:
        raise ConfigError(f"The training API cannot listen on {host}:{port} ({exc.strerror or exc}); "
                          "choose another port or stop the program using it.") from None
    log.info("training API listening on http://%s:%d", host, server.server_port)
    if host not in ("127.0.0.1", "localhost", "::1"):
        log.warning("the training API speaks plain HTTP: use it on a trusted network or behind a TLS proxy")
    return server
