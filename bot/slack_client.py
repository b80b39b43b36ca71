"""Talking to Slack's Web API: retries around every call, and no answer ever silently dropped.

Every call goes through `SLACK_API_URL` when it is set (GovSlack, the local workspace, tests).
A message Slack still refuses after the retries is logged with its content and kept in the
outbox, from which a background thread delivers it once Slack answers again.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Mapping, Protocol

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.http_retry.builtin_handlers import ServerErrorRetryHandler
from slack_sdk.http_retry.handler import RetryHandler
from slack_sdk.webhook import WebhookClient

from bot.blocks import code_blocks, split_messages, text_blocks
from bot.state import BotState

log = logging.getLogger("labmate.slack")
DEFAULT_API_URL = "https://slack.com/api/"


class ApiObserver(Protocol):
    """Told about Web API retries and failures (bot.metrics.BotMetrics counts them)."""

    def api_retry(self, method: str, reason: str) -> None: ...

    def api_error(self, method: str, error: str) -> None: ...


WEBHOOK = "response_url"  # the `method` of response_url posts


def _counting(handler: type[RetryHandler], reason: str) -> type[RetryHandler]:
    class Counting(handler):
        def __init__(self, observer: ApiObserver, method: str | None, **kwargs: Any):
            super().__init__(**kwargs)
            self.observer, self.method = observer, method

        def prepare_for_next_attempt(self, *, state, request, response=None, error=None) -> None:
            self.observer.api_retry(self.method or request.url.rsplit("/", 1)[-1], reason)
            super().prepare_for_next_attempt(state=state, request=request, response=response, error=error)

    Counting.__name__ = Counting.__qualname__ = f"Counting{handler.__name__}"
    return Counting


_COUNTING = [_counting(ConnectionErrorRetryHandler, "connection_error"),
             _counting(RateLimitErrorRetryHandler, "ratelimited"), _counting(ServerErrorRetryHandler, "server_error")]


def retry_handlers(count: int, observer: ApiObserver | None = None, method: str | None = None) -> list:
    """Connection errors, 429 (after Retry-After) and 5xx, each retried at most `count` times;
    each retry is told to `observer` (by API method: from the URL, or `method`)."""
    if observer is None:
        return [ConnectionErrorRetryHandler(max_retry_count=count), RateLimitErrorRetryHandler(max_retry_count=count),
                ServerErrorRetryHandler(max_retry_count=count)]
    return [handler(observer, method, max_retry_count=count) for handler in _COUNTING]


def api_error_name(exc: BaseException) -> str:
    """A short, bounded name for a failed call: Slack's `error` ("ratelimited", "channel_not_found"),
    else `http_<status>`, or `connection_error` for network failures."""
    if isinstance(exc, SlackApiError):
        response = exc.response
        data = getattr(response, "data", None)
        error = data.get("error") if isinstance(data, dict) else None
        return str(error) if error else f"http_{getattr(response, 'status_code', 'error')}"
    return "connection_error" if isinstance(exc, OSError) else type(exc).__name__


class ObservedWebClient(WebClient):
    """A WebClient that tells `observer` about every call that still fails after its retries."""

    def __init__(self, *args: Any, observer: ApiObserver, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.observer = observer

    def api_call(self, api_method: str, **kwargs: Any):  # every Web API method goes through here
        try:
            return super().api_call(api_method, **kwargs)
        except (SlackApiError, OSError) as exc:
            self.observer.api_error(api_method, api_error_name(exc))
            raise


def api_url(env: Mapping[str, str]) -> str:
    url = env.get("SLACK_API_URL") or DEFAULT_API_URL
    return url if url.endswith("/") else url + "/"


def make_client(token: str, env: Mapping[str, str], retries: int, observer: ApiObserver | None = None) -> WebClient:
    """The Web API client; with `observer`, its retries and final failures are reported to it."""
    if observer is None:
        return WebClient(token=token, base_url=api_url(env), retry_handlers=retry_handlers(retries), timeout=30)
    return ObservedWebClient(token=token, base_url=api_url(env), retry_handlers=retry_handlers(retries, observer),
                             timeout=30, observer=observer)


class Messenger:
    """Posts messages and response_url replies; parks what Slack keeps refusing in the outbox."""

    def __init__(self, client: WebClient, state: BotState, retries: int, observer: ApiObserver | None = None):
        self.client = client
        self.state = state
        self.retries = retries
        self.observer = observer  # told about response_url retries and failures (Web API ones: the client's)
        self._stop = threading.Event()

    def post(self, *, park: bool = True, **message: Any) -> dict | None:
        """chat.postMessage (or chat.postEphemeral when `user` is given); None if Slack refused it.
        A refused message is parked for redelivery unless `park` is False (the caller handles it)."""
        method = "chat_postEphemeral" if message.get("user") else "chat_postMessage"
        return self._call(method, message, park)

    def update(self, *, park: bool = True, **message: Any) -> dict | None:
        """chat.update; None if Slack refused it. `park=False` for edits a later one supersedes
        (live progress), so a stale one is never redelivered over the final text."""
        return self._call("chat_update", message, park)

    def upload(self, channel: str, thread_ts: str | None, files: list[tuple[str, str | bytes, str]]) -> bool:
        """Upload files, given as (filename, content, title), into a thread in one share; content
        is text, or bytes for binary files (a PNG). If Slack refuses, the failure is logged and
        text contents are posted in the thread instead (a binary file gets a note); such posts
        are parked like any message if they fail too. Returns whether the upload worked."""
        uploads = [{"filename": name, "content": content, "title": title} for name, content, title in files]
        try:
            self.client.files_upload_v2(channel=channel, thread_ts=thread_ts, file_uploads=uploads)
            return True
        except Exception as exc:  # API error, upload URL refused, network failure after retries
            log.exception("Slack did not take the files %s for %s", [f[0] for f in files], channel)
            error = exc.response.get("error") if isinstance(exc, SlackApiError) else str(exc)
        for name, content, _ in files:
            if isinstance(content, bytes):
                note = f":warning: I could not attach `{name}` ({error})."
                self.post(channel=channel, thread_ts=thread_ts, text=note, blocks=text_blocks(note))
                continue
            header = f":warning: I could not attach `{name}` ({error}); here is its content instead."
            for blocks in split_messages([text_blocks(header)[0], *code_blocks(content)], max_chars=12000):
                self.post(channel=channel, thread_ts=thread_ts, text=header, blocks=blocks)
        return False

    def respond(self, response_url: str, **payload: Any) -> bool:
        """Reply through a command's or action's response_url (works without channel membership)."""
        try:
            handlers = retry_handlers(self.retries, self.observer, WEBHOOK)
            response = WebhookClient(response_url, retry_handlers=handlers).send_dict(payload)
            if response.status_code < 300:
                return True
            error = f"HTTP {response.status_code}: {response.body}"
            self._observe_webhook(f"http_{response.status_code}")
        except Exception as exc:  # network failure after retries
            error = repr(exc)
            self._observe_webhook(api_error_name(exc))
        self._park("respond", {"response_url": response_url, **payload}, error)
        return False

    def _call(self, method: str, message: dict, park: bool = True) -> dict | None:
        try:
            return getattr(self.client, method)(**message).data
        except (SlackApiError, OSError) as exc:
            if park:
                self._park(method, message, str(exc))
            else:
                log.warning("Slack refused %s (not retried later): %s", method, exc)
            return None

    def _observe_webhook(self, error: str) -> None:
        if self.observer is not None:
            self.observer.api_error(WEBHOOK, error)

    def _park(self, kind: str, payload: dict, error: str) -> None:
        item = self.state.queue(kind, payload, error)
        log.error("Slack did not take a message (%s, outbox #%d): %s; content: %s", kind, item, error,
                  payload.get("text"))

    def redeliver(self) -> int:
        """Try the outbox once; returns how many messages went out."""
        sent = 0
        for item_id, kind, payload in self.state.pending():
            try:
                if kind == "respond":
                    url = payload.pop("response_url")
                    response = WebhookClient(url).send_dict(payload)
                    if response.status_code >= 300:
                        self._observe_webhook(f"http_{response.status_code}")
                        raise OSError(f"HTTP {response.status_code}")
                else:
                    getattr(self.client, kind)(**payload)
            except (SlackApiError, OSError) as exc:
                self.state.failed_again(item_id, str(exc))
                break  # Slack is still down; keep the order and try later
            self.state.delivered(item_id)
            sent += 1
        return sent

    def start_redelivery(self, every: float) -> threading.Thread:
        def loop() -> None:
            while not self._stop.wait(every):
                try:
                    self.redeliver()
                except Exception:  # never let the redelivery thread die
                    log.exception("redelivery failed")

        thread = threading.Thread(target=loop, name="labmate-redeliver", daemon=True)
        thread.start()
        return thread

    def stop(self) -> None:
        self._stop.set()
