"""Web API methods of the fake workspace, answering with Slack's response shapes.

Each handler takes the workspace and the parsed parameters and returns the response fields
after `"ok": true`, or raises ApiError for `{"ok": false, "error": ...}`. `register` adds a
method (or replaces one) for the whole process.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, Callable

from .models import Message

if TYPE_CHECKING:
    from .server import FakeSlack

Handler = Callable[["FakeSlack", dict[str, Any]], dict[str, Any]]
METHODS: dict[str, Handler] = {}
APP_TOKEN_METHODS = {"apps.connections.open"}


class ApiError(Exception):
    """A Slack API error: the response is `{"ok": false, "error": error}`."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


def register(name: str) -> Callable[[Handler], Handler]:
    """Decorator: make `handler(fake, params) -> dict` answer the Web API method `name`."""
    def wrap(handler: Handler) -> Handler:
        """Register and return the handler unchanged."""
        METHODS[name] = handler
        return handler
    return wrap


def call_method(fake: "FakeSlack", name: str, params: dict[str, Any], token: str | None) -> dict[str, Any]:
    """Check the token as Slack does, then run the method; returns the JSON response."""
    handler = METHODS.get(name)
    if handler is None:
        return {"ok": False, "error": "unknown_method"}
    expected = fake.app_token if name in APP_TOKEN_METHODS else fake.bot_token
    if not token:
        return {"ok": False, "error": "not_authed"}
    if token != expected:
        known = token in (fake.app_token, fake.bot_token)
        return {"ok": False, "error": "not_allowed_token_type" if known else "invalid_auth"}
    try:
        return {"ok": True, **handler(fake, params)}
    except ApiError as exc:
        return {"ok": False, "error": exc.error}


# -- parameter helpers -------------------------------------------------------------------------


def _json_field(params: dict[str, Any], key: str) -> Any:
    value = params.get(key)
    if isinstance(value, str):
        try:
            return json.loads(value) if value.strip() else None
        except ValueError:
            raise ApiError(f"invalid_{key}") from None
    return value


def _content(params: dict[str, Any]) -> tuple[str, Any, Any]:
    text = params.get("text") or ""
    blocks, attachments = _json_field(params, "blocks"), _json_field(params, "attachments")
    if not (text or blocks or attachments):
        raise ApiError("no_text")
    return str(text), blocks, attachments


def _channel(fake: "FakeSlack", params: dict[str, Any], key: str = "channel") -> str:
    channel = str(params.get(key) or "")
    if channel[:1] in ("U", "W"):  # posting to a user id opens (or reuses) the DM with them
        channel = "D" + channel[1:]
    if not channel or fake.channel_info(channel) is None:
        raise ApiError("channel_not_found")
    return channel


def _message(fake: "FakeSlack", params: dict[str, Any]) -> Message:
    channel = _channel(fake, params)
    message = fake.find_message(channel, str(params.get("ts") or ""))
    if message is None:
        raise ApiError("message_not_found")
    return message


def _bot_message(fake: "FakeSlack", channel: str, **fields: Any) -> Message:
    thread_ts = fields.pop("thread_ts", None) or None
    return Message(channel=channel, ts=fake.next_ts(), thread_ts=thread_ts,
                   user=fake.bot_user_id, bot_id=fake.bot_id, **fields)


# -- methods -----------------------------------------------------------------------------------


@register("auth.test")
def auth_test(fake: "FakeSlack", params: dict[str, Any]) -> dict[str, Any]:
    """Who the token belongs to: the bot user, its bot id and the team."""
    return {"url": f"{fake.base_url}/", "team": fake.team, "user": "labmate",
            "team_id": fake.team_id, "user_id": fake.bot_user_id, "bot_id": fake.bot_id,
            "is_enterprise_install": False}


@register("chat.postMessage")
def chat_post_message(fake: "FakeSlack", params: dict[str, Any]) -> dict[str, Any]:
    """Post a message as the bot (a user id as channel posts to the DM)."""
    channel = _channel(fake, params)
    text, blocks, attachments = _content(params)
    message = fake.store_message(_bot_message(fake, channel, text=text, blocks=blocks,
                                              attachments=attachments, thread_ts=params.get("thread_ts")))
    return {"channel": channel, "ts": message.ts, "message": message.to_slack()}


@register("chat.update")
def chat_update(fake: "FakeSlack", params: dict[str, Any]) -> dict[str, Any]:
    """Replace a message's text (and blocks/attachments when given), in place."""
    with fake.lock:
        message = _message(fake, params)
        text, blocks, attachments = _content(params)
        message.text = text
        if "blocks" in params:
            message.blocks = blocks
        if "attachments" in params:
            message.attachments = attachments
        message.edits += 1
        fake.changed()
    return {"channel": message.channel, "ts": message.ts, "text": message.text,
            "message": message.to_slack()}


@register("chat.postEphemeral")
def chat_post_ephemeral(fake: "FakeSlack", params: dict[str, Any]) -> dict[str, Any]:
    """Post a message only `user` sees."""
    channel = _channel(fake, params)
    user = str(params.get("user") or "")
    if not user or fake.user_info(user) is None:
        raise ApiError("user_not_found")
    text, blocks, attachments = _content(params)
    message = fake.store_message(_bot_message(
        fake, channel, text=text, blocks=blocks, attachments=attachments, ephemeral=True,
        visible_to=user, source="chat.postEphemeral", thread_ts=params.get("thread_ts")))
    return {"message_ts": message.ts}


@register("chat.delete")
def chat_delete(fake: "FakeSlack", params: dict[str, Any]) -> dict[str, Any]:
    """Delete a message."""
    with fake.lock:
        message = _message(fake, params)
        fake.remove_message(message)
    return {"channel": message.channel, "ts": message.ts}


@register("conversations.info")
def conversations_info(fake: "FakeSlack", params: dict[str, Any]) -> dict[str, Any]:
    """A channel's object."""
    channel = fake.channel_info(str(params.get("channel") or ""))
    if channel is None:
        raise ApiError("channel_not_found")
    return {"channel": channel}


@register("users.info")
def users_info(fake: "FakeSlack", params: dict[str, Any]) -> dict[str, Any]:
    """A user's object."""
    user = fake.user_info(str(params.get("user") or ""))
    if user is None:
        raise ApiError("user_not_found")
    return {"user": user}


@register("files.info")
def files_info(fake: "FakeSlack", params: dict[str, Any]) -> dict[str, Any]:
    """A hosted file's object."""
    stored = fake.file(str(params.get("file") or ""))
    if stored is None:
        raise ApiError("file_not_found")
    return {"file": stored.info, "comments": [], "response_metadata": {"next_cursor": ""}}


@register("files.getUploadURLExternal")
def files_get_upload_url(fake: "FakeSlack", params: dict[str, Any]) -> dict[str, Any]:
    """Step 1 of the external upload: an upload URL on this server and a file id."""
    filename = params.get("filename")
    try:
        length = int(params.get("length"))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ApiError("invalid_arguments") from None
    if not filename or length < 0:
        raise ApiError("invalid_arguments")
    file_id = fake.begin_upload(str(filename), length)
    return {"upload_url": f"{fake.base_url}/upload/{file_id}", "file_id": file_id}


@register("files.completeUploadExternal")
def files_complete_upload(fake: "FakeSlack", params: dict[str, Any]) -> dict[str, Any]:
    """Step 3: host the uploaded files and share them to the channel(s) given."""
    items = _json_field(params, "files")
    if not isinstance(items, list) or not items:
        raise ApiError("invalid_arguments")
    channels = [c for c in str(params.get("channels") or "").split(",") if c]
    if params.get("channel_id"):
        channels.insert(0, str(params["channel_id"]))
    channels = [_channel(fake, {"channel": c}) for c in channels]
    infos = []
    for item in items:
        info = fake.complete_upload(str(item.get("id")), item.get("title"), fake.bot_user_id)
        if info is None:
            raise ApiError("file_not_found")
        infos.append(info)
    for channel in channels:
        _share_files(fake, channel, infos, params)
    return {"files": infos}


def _share_files(fake: "FakeSlack", channel: str, infos: list[dict[str, Any]],
                 params: dict[str, Any]) -> None:
    with fake.lock:
        for info in infos:
            key = "ims" if channel.startswith("D") else "channels"
            info[key].append(channel)
        fake.store_message(_bot_message(fake, channel, text=str(params.get("initial_comment") or ""),
                                        files=infos, source="files.completeUploadExternal",
                                        thread_ts=params.get("thread_ts")))


@register("apps.connections.open")
def apps_connections_open(fake: "FakeSlack", params: dict[str, Any]) -> dict[str, Any]:
    """A Socket Mode WebSocket URL (app-level token only)."""
    return {"url": fake.issue_socket_url()}
