"""FakeSlack: a local, Slack-compatible workspace server (Web API, response_url, files, Socket Mode).

    with FakeSlack() as fake:
        client = WebClient(token="xoxb-test", base_url=fake.url)
        client.chat_postMessage(channel="C1", text="hi")
        assert fake.messages("C1")[0].text == "hi"

It listens on 127.0.0.1 only, on `port` (0: a free one, known as soon as the object exists).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from http.server import ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from .handler import RequestHandler
from .models import Ack, Message
from .websocket import WebSocket
from .workspace import Workspace

if TYPE_CHECKING:
    from .ui import PageSettings, WorkspaceUI

log = logging.getLogger(__name__)
ENVELOPE_TYPES = ("slash_commands", "events_api", "interactive")


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    fake: "FakeSlack"


class FakeSlack(Workspace):
    """A fake Slack workspace served over HTTP and WebSocket.

    Tokens: Web API calls must carry `bot_token`; `apps.connections.open` needs `app_token`.
    With `strict=False` (the default) unknown user and channel ids are created on first use;
    with `strict=True` they answer `user_not_found` / `channel_not_found`.
    """

    def __init__(self, port: int = 0, *, bot_token: str = "xoxb-test", app_token: str = "xapp-test",
                 team_id: str = "T0DEVSLACK", team: str = "labmate-dev", bot_user_id: str = "U0LABMATE",
                 bot_id: str = "B0LABMATE", app_id: str = "A0LABMATE", strict: bool = False) -> None:
        self._httpd = _HTTPServer(("127.0.0.1", port), RequestHandler)
        self._httpd.fake = self
        super().__init__(base_url=f"http://127.0.0.1:{self._httpd.server_address[1]}",
                         bot_token=bot_token, app_token=app_token, team_id=team_id, team=team,
                         bot_user_id=bot_user_id, bot_id=bot_id, app_id=app_id, strict=strict)
        self._thread: threading.Thread | None = None
        self._sockets: list[WebSocket] = []
        self._tickets: set[str] = set()
        self._hooks: dict[str, dict[str, Any]] = {}
        self.ui: "WorkspaceUI | None" = None  # the browser page, once `open_page` is called

    # -- lifecycle -----------------------------------------------------------------------------

    @property
    def port(self) -> int:
        """The TCP port the server listens on."""
        return self._httpd.server_address[1]

    @property
    def url(self) -> str:
        """The Web API base URL, ending in '/': give it to WebClient(base_url=...) / SLACK_API_URL."""
        return f"{self.base_url}/api/"

    def start(self) -> "FakeSlack":
        """Serve in a background thread; returns self."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._httpd.serve_forever, name="devslack",
                                            kwargs={"poll_interval": 0.1}, daemon=True)
            self._thread.start()
        return self

    def stop(self) -> None:
        """Close Socket Mode connections, stop serving and release the port."""
        self.close_sockets(1001, "server stopping")
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()

    def __enter__(self) -> "FakeSlack":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def open_page(self, app_url: str, signing_secret: str, page: "PageSettings | None" = None) -> "WorkspaceUI":
        """Serve the workspace's browser page at `/`: what a person does there is sent, signed,
        to the app at `app_url` (its `/slack/events`) as Slack would send it."""
        from .signing import SlackSender
        from .ui import WorkspaceUI

        self.ui = WorkspaceUI(self, SlackSender(app_url, signing_secret, self), page)
        return self.ui

    # -- response_url --------------------------------------------------------------------------

    def new_response_url(self, channel: str | None = None, user: str | None = None,
                         message_ts: str | None = None) -> str:
        """A fresh response_url on this server.

        JSON posted to it becomes a message in `channel`: ephemeral to `user` unless
        `response_type` is "in_channel"; `replace_original` / `delete_original` act on the
        message `message_ts` (the one whose button was clicked).
        """
        hook = uuid.uuid4().hex
        with self.lock:
            self._hooks[hook] = {"channel": channel, "user": user, "message_ts": message_ts}
        return f"{self.base_url}/response/{hook}"

    def handle_response_url(self, hook: str, body: dict[str, Any]) -> tuple[int, dict[str, str], Any]:
        """Apply a response_url post (called by the HTTP handler)."""
        with self.lock:
            target = self._hooks.get(hook)
            if target is None:
                return 404, {}, {"ok": False, "error": "no_active_hooks"}
            original = self._original(target)
            if _truthy(body.get("delete_original")):
                if original is not None:
                    self.remove_message(original)
            elif _truthy(body.get("replace_original")) and original is not None:
                original.text = str(body.get("text") or "")
                original.blocks = parse_blocks(body.get("blocks"))
                original.edits += 1
                self.changed()
            else:
                self._respond_with_message(target, body)
        return 200, {}, {"ok": True}

    def _original(self, target: dict[str, Any]) -> Message | None:
        """The message replace_original/delete_original act on: the clicked one, else the last
        one posted through the same response_url (as Slack does for slash commands)."""
        if target["message_ts"] and target["channel"]:
            return self.find_message(target["channel"], target["message_ts"])
        posted = target.get("posted")
        return posted if posted is not None and any(m is posted for m in self._messages) else None

    def _respond_with_message(self, target: dict[str, Any], body: dict[str, Any]) -> None:
        response_type = str(body.get("response_type") or "ephemeral")
        in_channel = response_type == "in_channel"
        target["posted"] = self.store_message(Message(
            channel=target["channel"] or "", ts=self.next_ts(), text=str(body.get("text") or ""),
            blocks=parse_blocks(body.get("blocks")), thread_ts=body.get("thread_ts"),
            user=self.bot_user_id, bot_id=self.bot_id, ephemeral=not in_channel,
            visible_to=None if in_channel else target["user"], source="response_url",
            response_type=response_type))

    # -- Socket Mode ---------------------------------------------------------------------------

    def issue_socket_url(self) -> str:
        """A ws:// URL with a fresh ticket (what apps.connections.open returns)."""
        ticket = uuid.uuid4().hex
        with self.lock:
            self._tickets.add(ticket)
        return f"ws://127.0.0.1:{self.port}/link/?ticket={ticket}&app_id={self.app_id}"

    def valid_ticket(self, ticket: str) -> bool:
        """Whether apps.connections.open issued this ticket."""
        with self.lock:
            return ticket in self._tickets

    @property
    def socket_clients(self) -> int:
        """How many Socket Mode connections are open."""
        return len(self._open_sockets())

    def wait_for_socket(self, timeout: float = 5.0) -> None:
        """Block until at least one Socket Mode client is connected."""
        deadline = time.monotonic() + timeout
        with self.lock:
            while not self._open_sockets():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no Socket Mode client connected within {timeout}s")
                self.lock.wait(remaining)

    def socket_send(self, envelope_type: str, payload: dict[str, Any], *,
                    accepts_response_payload: bool | None = None, envelope_id: str | None = None,
                    retry_attempt: int = 0, retry_reason: str = "", timeout: float = 5.0) -> str:
        """Push an envelope to the newest connected client (waiting up to `timeout` for one).

        `envelope_type` is "slash_commands", "events_api" or "interactive"; `payload` is what
        Slack would have POSTed (see `bot.devslack.payloads`). `accepts_response_payload`
        defaults to what Slack sends: True for commands, view submissions and block
        suggestions, False otherwise. Returns the envelope_id, for `wait_for_ack`.
        """
        if envelope_type not in ENVELOPE_TYPES:
            raise ValueError(f"envelope_type must be one of {ENVELOPE_TYPES}")
        envelope = {
            "envelope_id": envelope_id or str(uuid.uuid4()), "type": envelope_type, "payload": payload,
            "accepts_response_payload": (_accepts_response(envelope_type, payload)
                                         if accepts_response_payload is None else accepts_response_payload),
        }
        if envelope_type == "events_api":
            envelope.update(retry_attempt=retry_attempt, retry_reason=retry_reason)
        self.wait_for_socket(timeout)
        with self.lock:
            self._envelopes.append(envelope)
            newest = self._open_sockets()[-1]
        newest.send_text(json.dumps(envelope))
        return envelope["envelope_id"]

    def socket_disconnect(self, reason: str = "refresh_requested") -> None:
        """Send Slack's `{"type": "disconnect"}` to every client, then close their connections."""
        for ws in self._open_sockets():
            try:
                ws.send_text(json.dumps({"type": "disconnect", "reason": reason,
                                         "debug_info": {"host": "devslack"}}))
            except OSError:
                pass
        self.close_sockets(1000, reason)

    def close_sockets(self, code: int = 1000, reason: str = "") -> None:
        """Close every Socket Mode connection from the server side (a WebSocket close frame).

        slack_sdk's builtin client reconnects unless its `auto_reconnect_enabled` is False;
        closing from here first also lets its `close()` return at once instead of after its
        3 s receive timeout.
        """
        for ws in self._open_sockets():
            ws.close(code, reason)

    def serve_socket(self, ws: WebSocket) -> None:
        """Run one accepted Socket Mode connection until it closes (called by the HTTP handler)."""
        try:
            ws.send_text(json.dumps(self._hello()))
            with self.lock:  # registered after hello, so envelopes always come after it
                self._sockets.append(ws)
                self.changed()
            while (text := ws.receive()) is not None:
                self._record_client_message(text)
        except OSError as exc:
            log.debug("Socket Mode connection ended: %s", exc)
        finally:
            ws.closed = True
            with self.lock:
                if ws in self._sockets:
                    self._sockets.remove(ws)
                self.changed()

    def _hello(self) -> dict[str, Any]:
        return {"type": "hello", "num_connections": self.socket_clients + 1,
                "debug_info": {"host": "devslack", "build_number": 1,
                               "approximate_connection_time": 3600},
                "connection_info": {"app_id": self.app_id}}

    def _record_client_message(self, text: str) -> None:
        try:
            message = json.loads(text)
        except ValueError:
            message = {"raw": text}
        if not isinstance(message, dict):
            message = {"raw": message}
        with self.lock:
            self._acks.append(Ack(message.get("envelope_id"), message.get("payload"), time.time(), message))
            self.changed()

    def _open_sockets(self) -> list[WebSocket]:
        with self.lock:
            return [ws for ws in self._sockets if not ws.closed]


def _accepts_response(envelope_type: str, payload: dict[str, Any]) -> bool:
    if envelope_type == "slash_commands":
        return True
    return envelope_type == "interactive" and payload.get("type") in ("view_submission", "block_suggestion")


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))


def parse_blocks(value: Any) -> Any:
    """`blocks` as Slack's clients send them: a list, or the same list as a JSON string."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return None
    return value
