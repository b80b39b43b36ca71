"""The workspace's browser page: a person in a channel, talking to the app as in Slack.

`WorkspaceUI` serves the page (`static/`) and its small JSON API from the FakeSlack server.
What the person types goes to the app exactly as Slack sends it: a slash command as a signed,
form-encoded POST with a response_url on the fake; a message as an Events API callback
(`message`, plus `app_mention` when it mentions the app); a button click as `block_actions`;
an uploaded file as a hosted file and a `file_share` message event. The app answers through
the fake's Web API, and the page sees the result by long-polling `/ui/state`.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any

from .models import Message
from .signing import SlackSender

if TYPE_CHECKING:
    from .server import FakeSlack

log = logging.getLogger(__name__)
Reply = tuple[int, dict[str, str], Any]
STATIC_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
                ".css": "text/css; charset=utf-8", ".png": "image/png", ".svg": "image/svg+xml"}
MAX_WAIT = 30.0


@dataclass
class Person:
    """The workspace member using the page."""

    id: str = "U0RESEARCH"
    name: str = "you"
    real_name: str = "Lab member"


@dataclass
class PageSettings:
    """What the page shows: channels (id, name), a notice, and the app's slash commands."""

    channels: list[tuple[str, str]] = field(default_factory=lambda: [("C0GENERAL", "general")])
    notice: str = ""
    commands: list[dict[str, str]] = field(default_factory=list)
    person: Person = field(default_factory=Person)


class WorkspaceUI:
    """Serves the page and turns what the person does into what Slack would send the app."""

    def __init__(self, fake: "FakeSlack", sender: SlackSender, page: PageSettings | None = None) -> None:
        self.fake, self.sender = fake, sender
        self.page = page or PageSettings()
        self.me = self.page.person
        fake.add_user(self.me.id, self.me.name, real_name=self.me.real_name)
        fake.add_user("USLACKBOT", "slackbot", real_name="Slackbot", is_bot=True)
        for channel_id, name in self.page.channels:
            fake.add_channel(channel_id, name)
        # The app's answer to a command may take a while (or the app may be down): never make
        # the page's request thread wait on it longer than Slack would (3 s) plus slack.
        self.sender.timeout = 10.0

    def set_notice(self, text: str) -> None:
        """Change the banner above the messages (pages update at once)."""
        self.page.notice = text
        self.fake.changed()

    # -- routing -------------------------------------------------------------------------------

    def handle(self, verb: str, path: str, params: dict[str, Any], data: bytes | None) -> Reply:
        """Answer one request under `/` or `/ui/`."""
        if verb == "GET" and path in ("/", "/index.html"):
            return self._static("index.html")
        if verb == "GET" and path.startswith("/ui/static/"):
            return self._static(path[len("/ui/static/"):])
        if verb == "GET" and path.startswith("/ui/files/"):
            return self._file(path[len("/ui/files/"):].split("/")[0])
        if verb == "GET" and path == "/ui/state":
            return 200, {"Cache-Control": "no-store"}, self.state(
                _int(params.get("since"), -1), min(_float(params.get("wait"), 0.0), MAX_WAIT))
        routes = {"/ui/send": self.send, "/ui/click": self.click, "/ui/upload": self.upload}
        if verb == "POST" and path in routes:
            try:
                error = routes[path](params, data)
            except ValueError as exc:
                error = str(exc)
            return 200, {}, {"ok": error is None, **({"error": error} if error else {})}
        return 404, {"Content-Type": "text/plain"}, b"not found"

    def _static(self, name: str) -> Reply:
        suffix = "." + name.rsplit(".", 1)[-1] if "." in name else ""
        if "/" in name or name.startswith(".") or suffix not in STATIC_TYPES:
            return 404, {"Content-Type": "text/plain"}, b"not found"
        try:
            body = resources.files(__package__).joinpath("static", name).read_bytes()
        except (FileNotFoundError, IsADirectoryError):
            return 404, {"Content-Type": "text/plain"}, b"not found"
        return 200, {"Content-Type": STATIC_TYPES[suffix], "Cache-Control": "no-cache"}, body

    def _file(self, file_id: str) -> Reply:
        # The page is served to 127.0.0.1 only, so it shows files without the bot token that
        # url_private asks of the app.
        stored = self.fake.file(file_id)
        if stored is None:
            return 404, {"Content-Type": "text/plain"}, b"file not found"
        return 200, {"Content-Type": stored.info["mimetype"]}, stored.data

    # -- state ---------------------------------------------------------------------------------

    def state(self, since: int = -1, wait: float = 0.0) -> dict[str, Any]:
        """Everything the page shows, once the workspace's version is past `since` (or after
        `wait` seconds, whichever is first)."""
        deadline = time.monotonic() + wait
        with self.fake.lock:
            while self.fake.version <= since and (remaining := deadline - time.monotonic()) > 0:
                self.fake.lock.wait(remaining)
            version = self.fake.version
            messages = [self._message(m) for m in self.fake.messages() if self._visible(m)]
        return {"version": version, "team": self.fake.team, "me": {"id": self.me.id, "name": self.me.name},
                "channels": [{"id": c, "name": n} for c, n in self.page.channels],
                "notice": self.page.notice, "commands": self.page.commands, "messages": messages}

    def _visible(self, message: Message) -> bool:
        return not message.ephemeral or message.visible_to in (None, self.me.id)

    def _message(self, message: Message) -> dict[str, Any]:
        user = self.fake.user_info(message.user) if message.user else None
        return {"channel": message.channel, "ts": message.ts, "thread_ts": message.thread_ts,
                "user": message.user, "user_name": (user or {}).get("name") or message.user or "",
                "is_bot": bool(message.bot_id), "text": message.text, "blocks": message.blocks,
                "ephemeral": message.ephemeral, "edits": message.edits,
                "files": [{"id": f["id"], "name": f["name"], "title": f.get("title") or f["name"],
                           "mimetype": f["mimetype"], "url": f"/ui/files/{f['id']}"}
                          for f in message.files]}

    # -- what the person does ------------------------------------------------------------------

    def send(self, params: dict[str, Any], data: bytes | None = None) -> str | None:
        """A message or slash command typed in the composer; returns an error to show, or None."""
        channel = self._channel(params)
        text = str(params.get("text") or "").strip()
        if not text:
            return "Type a message or a command first."
        if text.startswith("/"):
            return self._command(channel, text)
        thread_ts = params.get("thread_ts") or None
        mentions_app = re.search(r"(^|\s)@labmate\b", text, re.I) is not None
        # As Slack's clients do: literal &, < and > are escaped; a mention becomes <@U...>.
        text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        text = re.sub(r"(^|\s)@labmate\b", lambda m: f"{m.group(1)}<@{self.fake.bot_user_id}>", text, flags=re.I)
        message = self._post_as_me(channel, text, thread_ts)
        event = {"type": "message", "channel": channel, "user": self.me.id, "text": text, "ts": message.ts,
                 "channel_type": "channel", **({"thread_ts": thread_ts} if thread_ts else {})}
        self._deliver(lambda: self.sender.event(event), channel, "message")
        if mentions_app:
            mention = {**event, "type": "app_mention"}
            mention.pop("channel_type")
            self._deliver(lambda: self.sender.event(mention), channel, "app_mention")
        return None

    def click(self, params: dict[str, Any], data: bytes | None = None) -> str | None:
        """A button in a message was clicked."""
        channel = self._channel(params)
        action_id = str(params.get("action_id") or "")
        if not action_id or not params.get("ts"):
            return "That button has no action; reload the page."
        self._deliver(lambda: self.sender.action(
            action_id, params.get("value"), self.me.id, channel, str(params["ts"]),
            block_id=str(params.get("block_id") or "actions"), text=str(params.get("text") or "Button")),
            channel, "the button")
        return None

    def upload(self, params: dict[str, Any], data: bytes | None) -> str | None:
        """A file dropped on the page: hosted, shared in the channel, announced as Slack does."""
        channel = self._channel(params)
        name = str(params.get("filename") or "").strip()
        if data is None or not name:
            return "Choose a file to upload."
        info = self.fake.add_file(name, data, user=self.me.id)
        info["channels"].append(channel)
        thread_ts = params.get("thread_ts") or None
        message = self._post_as_me(channel, "", thread_ts, files=[info])
        event = {"type": "message", "subtype": "file_share", "channel": channel, "user": self.me.id,
                 "text": "", "ts": message.ts, "files": [info], "upload": True, "channel_type": "channel",
                 **({"thread_ts": thread_ts} if thread_ts else {})}
        self._deliver(lambda: self.sender.event(event), channel, "the file")
        return None

    # -- helpers -------------------------------------------------------------------------------

    def _channel(self, params: dict[str, Any]) -> str:
        channel = str(params.get("channel") or "")
        if channel not in {c for c, _ in self.page.channels}:
            raise ValueError(f"There is no channel {channel!r} here; pick one on the left.")
        return channel

    def _post_as_me(self, channel: str, text: str, thread_ts: str | None, files: list | None = None) -> Message:
        return self.fake.store_message(Message(channel=channel, ts=self.fake.next_ts(), text=text,
                                               thread_ts=thread_ts, user=self.me.id, files=files or [],
                                               source="person"))

    def _command(self, channel: str, text: str) -> str | None:
        command, _, rest = text.partition(" ")
        known = [c["command"] for c in self.page.commands]
        if known and command not in known:
            return f"{command} is not a command here. Try {', '.join(known)}."
        response = self._deliver(lambda: self.sender.command(command, rest.strip(), self.me.id, channel,
                                                             user_name=self.me.name), channel, command)
        if response is not None and response.status == 200 and response.body.strip():
            self._show_ack(channel, response)
        return None

    def _show_ack(self, channel: str, response) -> None:
        """An ack that carries a message is shown as Slack shows it (ephemeral unless in_channel)."""
        try:
            body = response.json()
        except ValueError:
            body = {"text": response.body}
        if not isinstance(body, dict) or not (body.get("text") or body.get("blocks")):
            return
        in_channel = body.get("response_type") == "in_channel"
        self.fake.store_message(Message(
            channel=channel, ts=self.fake.next_ts(), text=str(body.get("text") or ""), blocks=body.get("blocks"),
            user=self.fake.bot_user_id, bot_id=self.fake.bot_id, ephemeral=not in_channel,
            visible_to=None if in_channel else self.me.id, source="ack"))

    def _deliver(self, send, channel: str, what: str):
        """Send one request to the app; a refusal or no answer is shown to the person as Slack
        shows it (an ephemeral "failed with the error" line), never dropped silently."""
        try:
            response = send()
        except OSError as exc:
            log.warning("the app did not answer %s: %s", what, exc)
            self._slackbot(channel, f"{what} failed: the app did not answer ({exc}). Is `labmate serve` running?")
            return None
        if response.status != 200:
            log.warning("the app answered %s with HTTP %s: %s", what, response.status, response.body[:200])
            self._slackbot(channel, f"{what} failed with the error \"http_{response.status}\" "
                                    "(see the labmate log).")
        return response

    def _slackbot(self, channel: str, text: str) -> None:
        self.fake.store_message(Message(channel=channel, ts=self.fake.next_ts(), text=text, user="USLACKBOT",
                                        ephemeral=True, visible_to=self.me.id, source="slackbot"))


def _int(value: Any, default: int) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return default


def _float(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default

