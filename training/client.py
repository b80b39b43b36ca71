"""`RemoteService`: the `TrainingService` of a `labmate train serve` on another machine, over HTTP.

It speaks the JSON API of `training.api` with urllib and returns the same `Job` and `MetricPoint`
objects as `LocalService`; the server's SpecError, NotFoundError and UserError come back as the
same classes with the server's message. Network failures and 5xx answers are retried with a short
backoff, except that a submission (POST /jobs) is only sent again when the connection was refused:
once it may have reached the server, a second try could queue the job twice.
"""

from __future__ import annotations

import http.client
import json
import socket
import time
from urllib.error import HTTPError, URLError
from urllib.parse import urlencode, urlsplit
from urllib.request import Request, urlopen

from core.errors import ConfigError, NotFoundError, UserError
from training.spec import SpecError
from training.store import Job, MetricPoint

KINDS: dict[str, type[UserError]] = {
    "SpecError": SpecError, "NotFoundError": NotFoundError, "UserError": UserError}
HINT = "is [training] url the address of a `labmate train serve`?"


class _Unanswered(Exception):
    """One attempt got no usable answer: a network failure or a 5xx status."""

    def __init__(self, reason: str, *, sent: bool, status: int | None = None):
        super().__init__(reason)
        self.reason, self.sent, self.status = reason, sent, status


class RemoteService:
    """`TrainingService` over HTTP: `url` of `labmate train serve`, its bearer `token`; each
    request waits up to `timeout` seconds and is retried up to `retries` times."""

    backoff = 0.25  # seconds before the first retry; doubles after each, at most 2 s

    def __init__(self, url: str, token: str, timeout: float = 30, retries: int = 3,
                 token_env: str = "LABMATE_TRAIN_TOKEN"):
        parts = urlsplit((url or "").strip())
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigError(f"[training] url = {url!r} is not an http(s) address; write it like "
                              "http://gpu-box:8600, or empty it to run jobs on this machine.")
        self.url = (url or "").strip().rstrip("/")
        self.token, self.timeout, self.retries, self.token_env = token or "", timeout, max(0, retries), token_env

    # -- the TrainingService methods -----------------------------------------------------------

    def submit(self, spec_text: str, *, base_dir: str | None = None, source: str = "spec",
               origin: dict | None = None) -> Job:
        """Validate a spec (TOML text) on the server and queue it (SpecError if it is invalid)."""
        body = {"spec_text": spec_text, "source": source, "origin": origin}
        if base_dir is not None:
            body["base_dir"] = str(base_dir)
        return Job.from_dict(self._call("POST", "/jobs", body=body, idempotent=False))

    def submit_preset(self, name: str, *, origin: dict | None = None) -> Job:
        """Queue the server's spec file NAME.toml."""
        body = {"preset": name, "origin": origin}
        return Job.from_dict(self._call("POST", "/jobs", body=body, idempotent=False))

    def presets(self) -> list[str]:
        """Names of the spec files in the server's specs folder."""
        return list(self._call("GET", "/presets")["presets"])

    def get(self, job_id: int) -> Job:
        """One job (NotFoundError if there is none)."""
        return Job.from_dict(self._call("GET", f"/jobs/{int(job_id)}"))

    def list(self, active: bool = False, limit: int = 20) -> list[Job]:
        """Newest first; `active` keeps queued and running jobs only."""
        data = self._call("GET", "/jobs", query={"active": int(bool(active)), "limit": int(limit)})
        return [Job.from_dict(job) for job in data["jobs"]]

    def cancel(self, job_id: int) -> Job:
        """Cancel a queued job at once, or ask a running one to stop."""
        return Job.from_dict(self._call("POST", f"/jobs/{int(job_id)}/cancel"))

    def resume(self, job_id: int) -> Job:
        """Queue a failed or cancelled job again."""
        return Job.from_dict(self._call("POST", f"/jobs/{int(job_id)}/resume"))

    def logs(self, job_id: int, lines: int = 200) -> str:
        """The last lines of the job's log."""
        return self._call("GET", f"/jobs/{int(job_id)}/logs", query={"lines": int(lines)})["text"]

    def metrics(self, job_id: int, since_step: int = -1) -> list[MetricPoint]:
        """The job's metrics time series after `since_step`."""
        data = self._call("GET", f"/jobs/{int(job_id)}/metrics", query={"since_step": int(since_step)})
        fields = MetricPoint.__dataclass_fields__
        return [MetricPoint(**{k: p[k] for k in fields}) for p in data["points"]]

    def close(self) -> None:
        """Nothing to release (one connection per request); here for parity with LocalService."""

    # -- HTTP ----------------------------------------------------------------------------------

    def _call(self, method: str, path: str, *, query: dict | None = None, body: dict | None = None,
              idempotent: bool = True) -> dict:
        """One API call with retries; the decoded JSON answer, or the server's error raised."""
        url = self.url + path + (f"?{urlencode(query)}" if query else "")
        data = None if body is None else json.dumps(body).encode("utf-8")
        delay = self.backoff
        for attempt in range(self.retries + 1):
            try:
                return self._once(method, url, data)
            except _Unanswered as exc:
                last = exc
                if attempt == self.retries or (exc.sent and not idempotent):
                    break
                time.sleep(delay)
                delay = min(delay * 2, 2.0)
        raise self._gave_up(last, idempotent)

    def _once(self, method: str, url: str, data: bytes | None) -> dict:
        headers = {"Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        if self.token:  # bytes: http.client would refuse a non-latin-1 str
            headers["Authorization"] = b"Bearer " + self.token.strip().encode("utf-8")
        request = Request(url, data=data, method=method, headers=headers)
        try:
            with urlopen(request, timeout=self.timeout) as response:
                raw = response.read()
        except HTTPError as exc:  # before URLError: it is one
            raw = _read(exc)
            if exc.code >= 500:
                raise _Unanswered(f"HTTP {exc.code}: {_message(raw) or exc.reason}", sent=True, status=exc.code)
            raise self._refusal(exc.code, raw) from None
        except (URLError, OSError, http.client.HTTPException) as exc:
            reason = exc.reason if isinstance(exc, URLError) else exc
            not_sent = isinstance(reason, (ConnectionRefusedError, socket.gaierror))
            raise _Unanswered(self._describe(reason), sent=not not_sent) from None
        try:
            answer = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise UserError(f"The training service at {self.url} answered with something that is not JSON; "
                            f"{HINT}") from None
        if not isinstance(answer, dict):
            raise UserError(f"The training service at {self.url} answered with unexpected data; {HINT}")
        return answer

    def _refusal(self, code: int, raw: bytes) -> UserError:
        """The exception for a 4xx answer."""
        if code in (401, 403):
            what = "needs a token and none was sent" if code == 401 else "refused the token sent"
            return ConfigError(f"The training service at {self.url} {what} (HTTP {code}). Set the same secret "
                               f"in the environment variable {self.token_env} on this machine and on the one "
                               "running `labmate train serve`.")
        try:
            payload = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            payload = None
        if not isinstance(payload, dict) or not isinstance(payload.get("error"), str):
            return UserError(f"The training service at {self.url} answered HTTP {code} without an explanation; "
                             f"{HINT}")
        return KINDS.get(payload.get("kind"), UserError)(payload["error"])

    def _gave_up(self, exc: _Unanswered, idempotent: bool) -> UserError:
        if exc.status is not None:
            return UserError(f"The training service at {self.url} failed on this request ({exc.reason}). "
                             "Its log on that machine has the details; try again once it is fixed.")
        if exc.sent and not idempotent:
            return UserError(f"The training service at {self.url} did not answer the submission ({exc.reason}), "
                             "so the job may or may not have been queued. Check with `labmate train status` "
                             "before submitting it again.")
        return UserError(f"The training service at {self.url} is not answering ({exc.reason}). Start it with "
                         "`labmate train serve` on that machine, or empty [training] url to run jobs here.")

    def _describe(self, reason) -> str:
        if isinstance(reason, ConnectionRefusedError):
            return "connection refused"
        if isinstance(reason, (TimeoutError, socket.timeout)):
            return f"no answer within {self.timeout:g} s"
        if isinstance(reason, ConnectionResetError):
            return "connection closed without an answer"
        if isinstance(reason, socket.gaierror):
            return f"unknown host name: {reason.strerror or reason}"
        return str(reason) or type(reason).__name__


def _read(exc: HTTPError) -> bytes:
    try:
        return exc.read()
    except (OSError, http.client.HTTPException):
        return b""


def _message(raw: bytes) -> str:
    """The "error" of a JSON error body, or ""."""
    try:
        payload = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        return ""
    return str(payload.get("error") or "") if isinstance(payload, dict) else ""
