"""The fake workspace's state: users, channels, messages, files, recorded calls and acks.

Every read and write holds one condition variable, so the HTTP and WebSocket threads and the
test thread see a consistent state, and `wait_for` wakes as soon as something changes.
"""

from __future__ import annotations

import itertools
import threading
import time
from typing import Any, Callable

from .models import Ack, Call, Failure, Message, StoredFile, file_object, summary


class Workspace:
    """State and queries shared by `FakeSlack`; see that class for the constructor arguments."""

    def __init__(self, *, base_url: str, bot_token: str, app_token: str, team_id: str,
                 team: str, bot_user_id: str, bot_id: str, app_id: str, strict: bool) -> None:
        self.base_url = base_url
        self.bot_token, self.app_token = bot_token, app_token
        self.team_id, self.team, self.app_id = team_id, team, app_id
        self.bot_user_id, self.bot_id = bot_user_id, bot_id
        self.strict = strict
        self._cond = threading.Condition()
        self._ids = itertools.count(1)
        self._last_ts = 0.0
        self._users: dict[str, dict[str, Any]] = {}
        self._channels: dict[str, dict[str, Any]] = {}
        self._failures: dict[str, list[Failure]] = {}
        # Bumped whenever what a viewer of the workspace sees changes; it starts from the clock
        # (ms) so a page still open from before a restart sees the new server as newer.
        self._version = int(time.time() * 1000)
        self.clear()
        self.add_user(bot_user_id, "labmate", is_bot=True)

    # -- setup ---------------------------------------------------------------------------------

    def clear(self) -> None:
        """Forget calls, messages, files, acks, envelopes and pending failures (keep users, channels)."""
        with self._cond:
            self._calls: list[Call] = []
            self._messages: list[Message] = []
            self._acks: list[Ack] = []
            self._envelopes: list[dict[str, Any]] = []
            self._files: dict[str, StoredFile] = {}
            self._uploads: dict[str, dict[str, Any]] = {}
            self._failures.clear()
            self._version += 1
            self._cond.notify_all()

    def add_user(self, user_id: str, name: str | None = None, *, real_name: str | None = None,
                 email: str | None = None, is_admin: bool = False, is_bot: bool = False,
                 tz: str = "Europe/London") -> dict[str, Any]:
        """Register a user for `users.info`; returns its Slack `user` object."""
        name = name or user_id.lower()
        real = real_name or name.title()
        user = {
            "id": user_id, "team_id": self.team_id, "name": name, "real_name": real,
            "deleted": False, "is_bot": is_bot, "is_admin": is_admin, "is_owner": False,
            "is_app_user": False, "tz": tz, "tz_label": tz, "tz_offset": 0,
            "profile": {"real_name": real, "display_name": name, "email": email or f"{name}@example.org",
                        "team": self.team_id, **({"bot_id": self.bot_id} if is_bot else {})},
        }
        with self._cond:
            self._users[user_id] = user
        return user

    def add_channel(self, channel_id: str, name: str | None = None, *,
                    is_private: bool = False) -> dict[str, Any]:
        """Register a channel for `conversations.info` (ids starting with D are direct messages)."""
        is_im = channel_id.startswith("D")
        channel = {
            "id": channel_id, "name": name or channel_id.lower(), "is_channel": not (is_im or is_private),
            "is_group": is_private, "is_im": is_im, "is_private": is_private or is_im,
            "is_archived": False, "is_general": False, "is_member": True, "created": int(time.time()),
            "creator": self.bot_user_id, "topic": {"value": ""}, "purpose": {"value": ""},
        }
        with self._cond:
            self._channels[channel_id] = channel
        return channel

    def add_file(self, name: str, data: bytes, filetype: str | None = None, *,
                 user: str | None = None, title: str | None = None) -> dict[str, Any]:
        """Host `data` as a file (as if a user had uploaded it); returns its Slack `file` object.

        Its `url_private` and `url_private_download` serve the bytes only to requests that carry
        `Authorization: Bearer <bot token>`.
        """
        file_id = self.new_id("F")
        info = file_object(file_id, name, len(data), filetype=filetype, base_url=self.base_url,
                           team_id=self.team_id, user=user or self.bot_user_id,
                           created=int(time.time()), title=title)
        with self._cond:
            self._files[file_id] = StoredFile(info, bytes(data))
            self._cond.notify_all()
        return info

    def fail_next(self, method: str, status: int = 429, retry_after: int | None = 1,
                  times: int = 1, error: str | None = None) -> None:
        """Make the next `times` calls to `method` fail.

        The fake answers with HTTP `status` (429 carries `Retry-After: retry_after` and
        `{"ok": false, "error": "ratelimited"}`). With `error`, it answers HTTP 200 with
        `{"ok": false, "error": error}` instead, as Slack does for API errors. `method` may also
        be one of the pseudo-methods `response_url`, `file_upload`, `file_download`.
        """
        with self._cond:
            self._failures.setdefault(method, []).append(Failure(status, retry_after, error, times))

    # -- queries -------------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """Every request received so far, oldest first (a copy)."""
        with self._cond:
            return list(self._calls)

    def calls_to(self, method: str) -> list[Call]:
        """The recorded calls to one method, oldest first."""
        with self._cond:
            return [call for call in self._calls if call.method == method]

    def messages(self, channel: str | None = None) -> list[Message]:
        """Visible messages (posted, updated in place, ephemeral, response_url ones) in order."""
        with self._cond:
            return [m for m in self._messages if channel is None or m.channel == channel]

    @property
    def acks(self) -> list[Ack]:
        """Messages Socket Mode clients sent back (normally acks), oldest first."""
        with self._cond:
            return list(self._acks)

    @property
    def envelopes(self) -> list[dict[str, Any]]:
        """Envelopes pushed to Socket Mode clients, oldest first."""
        with self._cond:
            return list(self._envelopes)

    def file(self, file_id: str) -> StoredFile | None:
        """A hosted file (its `info` object and `data` bytes), or None."""
        with self._cond:
            return self._files.get(file_id)

    def ack_for(self, envelope_id: str) -> Ack | None:
        """The ack a client sent for an envelope, if any yet."""
        with self._cond:
            return next((a for a in self._acks if a.envelope_id == envelope_id), None)

    def wait_for(self, predicate: Callable[[Any], Any], timeout: float = 5.0, *,
                 among: str = "messages") -> Any:
        """Block until an item satisfies `predicate`; return that item.

        `among` is "messages" (Message), "calls" (Call) or "acks" (Ack). The predicate runs
        under the workspace lock each time the state changes; raises TimeoutError after
        `timeout` seconds, naming what was there.
        """
        sources = {"messages": lambda: self._messages, "calls": lambda: self._calls,
                   "acks": lambda: self._acks}
        if among not in sources:
            raise ValueError(f"among must be one of {sorted(sources)}, got {among!r}")
        items = sources[among]
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                found = next((item for item in items() if predicate(item)), None)
                if found is not None:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"nothing among {among} matched within {timeout}s; "
                                       f"last ones: {self._describe(items()[-5:])}")
                self._cond.wait(remaining)

    def wait_for_call(self, method: str, timeout: float = 5.0,
                      predicate: Callable[[Call], Any] | None = None) -> Call:
        """Block until a call to `method` (matching `predicate`, if given) has been answered."""
        return self.wait_for(lambda c: c.method == method and c.status is not None
                             and (predicate is None or predicate(c)), timeout, among="calls")

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> Ack:
        """Block until a Socket Mode client acked `envelope_id`; return the Ack."""
        return self.wait_for(lambda a: a.envelope_id == envelope_id, timeout, among="acks")

    @staticmethod
    def _describe(items: list[Any]) -> str:
        return ", ".join(summary(item) for item in items) or "none"

    # -- used by the endpoints -----------------------------------------------------------------

    def new_id(self, prefix: str) -> str:
        """A fresh Slack-style id (`F0000000001`)."""
        return f"{prefix}{next(self._ids):010d}"

    def next_ts(self) -> str:
        """A unique, increasing message timestamp (`1712345678.000123`)."""
        with self._cond:
            self._last_ts = max(time.time(), self._last_ts + 0.000001)
            return f"{self._last_ts:.6f}"

    def record(self, call: Call) -> Failure | None:
        """Store a call; return the failure to inject for it, if one is pending."""
        with self._cond:
            self._calls.append(call)
            self._cond.notify_all()
            queue = self._failures.get(call.method)
            if not queue:
                return None
            failure = queue[0]
            failure.remaining -= 1
            if failure.remaining <= 0:
                queue.pop(0)
            return failure

    def answered(self, call: Call, status: int, response: dict[str, Any] | None) -> None:
        """Note the answer given to a recorded call."""
        with self._cond:
            call.status, call.response = status, response
            self._cond.notify_all()

    def changed(self) -> None:
        """Wake waiters after an in-place change (callers hold or need not hold the lock)."""
        with self._cond:
            self._version += 1
            self._cond.notify_all()

    @property
    def version(self) -> int:
        """A counter that grows each time messages are posted, edited or deleted."""
        with self._cond:
            return self._version

    @property
    def lock(self) -> threading.Condition:
        """The workspace's condition variable (reentrant), for compound updates."""
        return self._cond

    def store_message(self, message: Message) -> Message:
        """Append a message and wake waiters."""
        with self._cond:
            self._messages.append(message)
            self._version += 1
            self._cond.notify_all()
        return message

    def find_message(self, channel: str, ts: str) -> Message | None:
        """The visible, non-ephemeral message `ts` in `channel`."""
        with self._cond:
            return next((m for m in self._messages if m.channel == channel and m.ts == ts
                         and not m.ephemeral), None)

    def remove_message(self, message: Message) -> None:
        """Delete a message (chat.delete, delete_original)."""
        with self._cond:
            self._messages.remove(message)
            self._version += 1
            self._cond.notify_all()

    def user_info(self, user_id: str) -> dict[str, Any] | None:
        """A registered user; unknown ids are registered on the fly unless `strict`."""
        with self._cond:
            if user_id not in self._users and not self.strict and user_id[:1] in "UW":
                self.add_user(user_id)
            return self._users.get(user_id)

    def channel_info(self, channel_id: str) -> dict[str, Any] | None:
        """A registered channel; unknown ids are registered on the fly unless `strict`."""
        with self._cond:
            if channel_id not in self._channels and not self.strict and channel_id[:1] in "CGD":
                self.add_channel(channel_id)
            return self._channels.get(channel_id)

    def begin_upload(self, filename: str, length: int) -> str:
        """files.getUploadURLExternal: reserve a file id for bytes still to come."""
        file_id = self.new_id("F")
        with self._cond:
            self._uploads[file_id] = {"filename": filename, "length": length, "data": None}
        return file_id

    def receive_upload(self, file_id: str, data: bytes) -> bool:
        """The POST to an upload URL; False when the id was never reserved."""
        with self._cond:
            upload = self._uploads.get(file_id)
            if upload is not None:
                upload["data"] = data
            return upload is not None

    def complete_upload(self, file_id: str, title: str | None, user: str) -> dict[str, Any] | None:
        """files.completeUploadExternal for one file: host it; None if its bytes never came."""
        with self._cond:
            upload = self._uploads.get(file_id)
            if upload is None or upload["data"] is None:
                return None
            del self._uploads[file_id]
            info = file_object(file_id, upload["filename"], len(upload["data"]), filetype=None,
                               base_url=self.base_url, team_id=self.team_id, user=user,
                               created=int(time.time()), title=title)
            self._files[file_id] = StoredFile(info, upload["data"])
            self._cond.notify_all()
            return info
