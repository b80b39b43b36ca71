"""Send requests to an app's `/slack/events` endpoint exactly as Slack does, signed (v0).

    sender = SlackSender("http://127.0.0.1:3000", "signing-secret", fake)
    status, headers, body = sender.command("/papers", "protein folding", user_id="U1")

Every method takes `timestamp=` (e.g. `time.time() - 600` for a stale request) and
`signature=` (e.g. "v0=bad") to send requests the app must reject.
"""

from __future__ import annotations

import hashlib
import hmac
import http.client
import json
import time
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import urlencode, urlsplit

from .payloads import Payloads

if TYPE_CHECKING:
    from .server import FakeSlack


def sign(signing_secret: str, body: bytes | str, timestamp: int | str) -> str:
    """Slack's v0 signature: `v0=` + hex HMAC-SHA256 of `v0:{timestamp}:{body}`."""
    raw = body.encode("utf-8") if isinstance(body, str) else body
    base = f"v0:{timestamp}:".encode() + raw
    return "v0=" + hmac.new(signing_secret.encode("utf-8"), base, hashlib.sha256).hexdigest()


class Response(NamedTuple):
    """What the app answered: unpacks as `(status, headers, body)`."""

    status: int
    headers: dict[str, str]
    body: str

    def json(self) -> Any:
        """The body parsed as JSON."""
        return json.loads(self.body)


class SlackSender(Payloads):
    """Signed HTTP requests to an app, built like Slack's.

    `bot_url` is the app's base URL (then `/slack/events` is used) or its full endpoint URL.
    With `fake`, response_urls point at the fake and its ids (team, app, bot user) are used.
    """

    def __init__(self, bot_url: str, signing_secret: str, fake: "FakeSlack | None" = None, *,
                 timeout: float = 10.0, **ids: str) -> None:
        super().__init__(fake, **ids)
        parts = urlsplit(bot_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"bot_url must be an http(s) URL, got {bot_url!r}")
        self._parts = parts
        self.path = (parts.path if parts.path not in ("", "/") else "/slack/events") + (
            f"?{parts.query}" if parts.query else "")
        self.signing_secret = signing_secret
        self.timeout = timeout

    def signed_headers(self, body: bytes, timestamp: float | str | None = None,
                       signature: str | None = None) -> dict[str, str]:
        """X-Slack-Request-Timestamp and X-Slack-Signature for `body` (now, unless overridden)."""
        ts = str(int(float(timestamp))) if timestamp is not None else str(int(time.time()))
        return {"X-Slack-Request-Timestamp": ts,
                "X-Slack-Signature": signature or sign(self.signing_secret, body, ts)}

    def post(self, body: bytes | str, content_type: str, *, timestamp: float | str | None = None,
             signature: str | None = None, headers: dict[str, str] | None = None) -> Response:
        """POST a raw body, signed, with Slack's headers; returns the app's response."""
        raw = body.encode("utf-8") if isinstance(body, str) else body
        all_headers = {"Content-Type": content_type, "Accept": "application/json,*/*",
                       "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
                       **self.signed_headers(raw, timestamp, signature), **(headers or {})}
        connection_class = (http.client.HTTPSConnection if self._parts.scheme == "https"
                            else http.client.HTTPConnection)
        connection = connection_class(self._parts.hostname, self._parts.port, timeout=self.timeout)
        try:
            connection.request("POST", self.path, body=raw, headers=all_headers)
            reply = connection.getresponse()
            data = reply.read()
            return Response(reply.status, dict(reply.getheaders()), data.decode("utf-8", errors="replace"))
        finally:
            connection.close()

    def post_form(self, fields: dict[str, str], **options: Any) -> Response:
        """POST form-encoded fields (as Slack sends commands and interactions)."""
        return self.post(urlencode(fields), "application/x-www-form-urlencoded", **options)

    def command(self, command: str, text: str = "", user_id: str = "U1", channel_id: str = "C1", *,
                timestamp: float | str | None = None, signature: str | None = None,
                **fields: Any) -> Response:
        """A slash command (other fields as in `Payloads.command_payload`: response_url, ...)."""
        payload = self.command_payload(command, text, user_id, channel_id, **fields)
        return self.post_form(payload, timestamp=timestamp, signature=signature)

    def event(self, event: dict[str, Any], event_id: str | None = None, retry_num: int | None = None,
              retry_reason: str | None = None, *, timestamp: float | str | None = None,
              signature: str | None = None) -> Response:
        """An Events API callback; with `retry_num`, Slack's X-Slack-Retry-Num/-Reason headers."""
        headers = {}
        if retry_num is not None:
            headers = {"X-Slack-Retry-Num": str(retry_num),
                       "X-Slack-Retry-Reason": retry_reason or "http_timeout"}
        body = json.dumps(self.event_payload(event, event_id))
        return self.post(body, "application/json", timestamp=timestamp, signature=signature,
                         headers=headers)

    def action(self, action_id: str, value: str | None = None, user_id: str = "U1",
               channel_id: str = "C1", message_ts: str | None = None, *,
               timestamp: float | str | None = None, signature: str | None = None,
               **fields: Any) -> Response:
        """A block_actions click, form-encoded as `payload=<json>` (fields as in `action_payload`)."""
        payload = self.action_payload(action_id, value, user_id, channel_id, message_ts, **fields)
        return self.post_form({"payload": json.dumps(payload)}, timestamp=timestamp, signature=signature)

    def url_verification(self, challenge: str = "devslack-challenge", *,
                         timestamp: float | str | None = None, signature: str | None = None) -> Response:
        """Slack's endpoint check: the app must answer with the challenge."""
        body = json.dumps({"token": "verification-token", "challenge": challenge,
                           "type": "url_verification"})
        return self.post(body, "application/json", timestamp=timestamp, signature=signature)
