"""Records kept by the fake workspace: API calls, messages, Socket Mode acks, hosted files."""

from __future__ import annotations

import mimetypes
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

# Slack's `filetype` for extensions whose name differs from the extension itself.
_FILETYPES = {"txt": "text", "md": "markdown", "py": "python", "yml": "yaml", "htm": "html",
              "jpeg": "jpg", "tex": "latex", "sh": "shell", "js": "javascript"}


@dataclass
class Call:
    """One HTTP request the fake received.

    `method` is the Web API method name (`chat.postMessage`), or one of the pseudo-methods
    `response_url`, `file_upload` and `file_download` for the non-API endpoints.
    `params` holds the parsed query string and body (form-encoded, multipart or JSON).
    `status` and `response` are filled in once the fake has answered.
    """

    method: str
    params: dict[str, Any]
    headers: dict[str, str]
    timestamp: float
    path: str = ""
    status: int | None = None
    response: dict[str, Any] | None = None

    def header(self, name: str, default: str | None = None) -> str | None:
        """A request header, looked up case-insensitively."""
        lowered = name.lower()
        for key, value in self.headers.items():
            if key.lower() == lowered:
                return value
        return default

    @property
    def token(self) -> str | None:
        """The bearer token of the request, else its `token` parameter."""
        auth = self.header("Authorization") or ""
        if auth.lower().startswith("bearer "):
            return auth[7:].strip()
        token = self.params.get("token")
        return token if isinstance(token, str) else None


@dataclass
class Message:
    """A message as the fake workspace shows it.

    `user` is the author (the bot's user id for what the bot posts); `visible_to` is the one
    user who sees an ephemeral message. `source` names how it arrived: `chat.postMessage`,
    `chat.postEphemeral`, `files.completeUploadExternal` or `response_url`. `edits` counts the
    times it was replaced (chat.update, or a response_url post with replace_original).
    """

    channel: str
    ts: str
    text: str = ""
    blocks: list[dict[str, Any]] | None = None
    thread_ts: str | None = None
    user: str | None = None
    bot_id: str | None = None
    ephemeral: bool = False
    visible_to: str | None = None
    files: list[dict[str, Any]] = field(default_factory=list)
    attachments: list[dict[str, Any]] | None = None
    source: str = "chat.postMessage"
    response_type: str | None = None
    edits: int = 0

    @property
    def plain_text(self) -> str:
        """`text` followed by every text string inside `blocks` and `attachments`, one a line."""
        parts = [self.text] if self.text else []
        _collect_text(self.blocks or [], parts)
        _collect_text(self.attachments or [], parts)
        return "\n".join(parts)

    def to_slack(self) -> dict[str, Any]:
        """The message object as Slack's API returns it."""
        out: dict[str, Any] = {"type": "message", "ts": self.ts, "text": self.text}
        for key in ("user", "bot_id", "blocks", "thread_ts", "attachments"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.files:
            out["files"] = self.files
            out["upload"] = True
        if self.edits:
            out["edited"] = {"user": self.user, "ts": self.ts}
        return out


def _collect_text(node: Any, parts: list[str]) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "text" and isinstance(value, str):
                parts.append(value)
            else:
                _collect_text(value, parts)
    elif isinstance(node, list):
        for item in node:
            _collect_text(item, parts)


@dataclass
class Ack:
    """A message a Socket Mode client sent back: normally `{"envelope_id": ..., "payload": ...}`."""

    envelope_id: str | None
    payload: Any
    timestamp: float
    raw: dict[str, Any]


@dataclass
class Failure:
    """A failure `fail_next` queued for the next `remaining` calls to one method."""

    status: int
    retry_after: int | None
    error: str | None
    remaining: int


def summary(item: Any) -> str:
    """A short description of a Message or Call, for timeout errors."""
    if isinstance(item, Message):
        return f"<{item.source} {item.channel} {item.ts} {item.plain_text[:60]!r}>"
    if isinstance(item, Call):
        return f"<{item.method} -> {item.status}>"
    return repr(item)[:100]


@dataclass
class StoredFile:
    """A file the workspace hosts: its Slack `file` object and its bytes."""

    info: dict[str, Any]
    data: bytes


def filetype_of(name: str, filetype: str | None = None) -> str:
    """Slack's short file type (`png`, `pdf`, `text`, ...) for a file name."""
    if filetype:
        return filetype
    ext = name.rsplit(".", 1)[-1].lower() if "." in name else ""
    return _FILETYPES.get(ext, ext or "binary")


def file_object(file_id: str, name: str, size: int, *, filetype: str | None, base_url: str,
                team_id: str, user: str, created: int, title: str | None = None) -> dict[str, Any]:
    """A Slack `file` object whose private URLs point at the fake server at `base_url`."""
    kind = filetype_of(name, filetype)
    mimetype = mimetypes.guess_type(name)[0] or "application/octet-stream"
    private, quoted = f"{base_url}/files-pri/{team_id}-{file_id}", quote(name)
    return {
        "id": file_id, "created": created, "timestamp": created, "name": name,
        "title": title or name, "mimetype": mimetype, "filetype": kind,
        "pretty_type": kind.upper(), "user": user, "user_team": team_id, "editable": False,
        "size": size, "mode": "hosted", "is_external": False, "external_type": "",
        "is_public": False, "public_url_shared": False, "display_as_bot": False,
        "url_private": f"{private}/{quoted}",
        "url_private_download": f"{private}/download/{quoted}",
        "permalink": f"{base_url}/files/{user}/{file_id}/{quoted}",
        "channels": [], "groups": [], "ims": [], "comments_count": 0,
    }
