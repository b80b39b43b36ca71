"""The payloads Slack sends an app: slash commands, Events API callbacks, block_actions clicks.

`Payloads` builds them; `SocketSender` pushes them to Socket Mode clients through a FakeSlack,
and `bot.devslack.signing.SlackSender` POSTs them, signed, to an app's HTTP endpoint.
"""

from __future__ import annotations

import time
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .server import FakeSlack


def new_trigger_id() -> str:
    """A Slack-looking trigger_id."""
    return f"{int(time.time())}.{uuid.uuid4().int % 10**12}.{uuid.uuid4().hex}"


def new_event_id() -> str:
    """A Slack-looking event_id (`Ev0123ABCD45`)."""
    return "Ev" + uuid.uuid4().hex[:10].upper()


class Payloads:
    """Builds payloads for one workspace (ids taken from `fake` when given).

    Without a fake, response_urls are placeholders on hooks.slack.com that nothing serves.
    """

    def __init__(self, fake: "FakeSlack | None" = None, *, team_id: str | None = None,
                 api_app_id: str | None = None, bot_user_id: str | None = None) -> None:
        self.fake = fake
        self.team_id = team_id or (fake.team_id if fake else "T0DEVSLACK")
        self.api_app_id = api_app_id or (fake.app_id if fake else "A0LABMATE")
        self.bot_user_id = bot_user_id or (fake.bot_user_id if fake else "U0LABMATE")
        self.team_domain = fake.team if fake else "labmate-dev"

    def response_url(self, channel_id: str, user_id: str, message_ts: str | None = None) -> str:
        """A response_url on the fake (or a placeholder without one)."""
        if self.fake is not None:
            return self.fake.new_response_url(channel=channel_id, user=user_id, message_ts=message_ts)
        return f"https://hooks.slack.com/actions/{self.team_id}/1/{uuid.uuid4().hex}"

    def command_payload(self, command: str, text: str = "", user_id: str = "U1",
                        channel_id: str = "C1", *, response_url: str | None = None,
                        trigger_id: str | None = None, user_name: str | None = None,
                        channel_name: str | None = None) -> dict[str, str]:
        """A slash command's fields, exactly as Slack form-encodes them (all strings)."""
        return {
            "token": "verification-token", "team_id": self.team_id, "team_domain": self.team_domain,
            "channel_id": channel_id, "channel_name": channel_name or channel_id.lower(),
            "user_id": user_id, "user_name": user_name or user_id.lower(), "command": command,
            "text": text, "api_app_id": self.api_app_id, "is_enterprise_install": "false",
            "response_url": response_url or self.response_url(channel_id, user_id),
            "trigger_id": trigger_id or new_trigger_id(),
        }

    def event_payload(self, event: dict[str, Any], event_id: str | None = None,
                      event_time: int | None = None) -> dict[str, Any]:
        """An Events API `event_callback` envelope around `event` (event_ts added if missing)."""
        event = dict(event)
        event.setdefault("event_ts", f"{time.time():.6f}")
        return {
            "token": "verification-token", "team_id": self.team_id, "api_app_id": self.api_app_id,
            "event": event, "type": "event_callback", "event_id": event_id or new_event_id(),
            "event_time": event_time or int(time.time()),
            "authorizations": [{"enterprise_id": None, "team_id": self.team_id,
                                "user_id": self.bot_user_id, "is_bot": True,
                                "is_enterprise_install": False}],
            "is_ext_shared_channel": False, "event_context": "4-" + uuid.uuid4().hex,
        }

    def action_payload(self, action_id: str, value: str | None = None, user_id: str = "U1",
                       channel_id: str = "C1", message_ts: str | None = None, *,
                       block_id: str = "actions", response_url: str | None = None,
                       action_type: str = "button", text: str = "Button") -> dict[str, Any]:
        """A `block_actions` payload: `user_id` clicked `action_id` on message `message_ts`.

        The clicked message is taken from the fake when it has it (so handlers can read its
        blocks), else a bare one. The response_url replaces/deletes that message.
        """
        message_ts = message_ts or f"{time.time():.6f}"
        found = self.fake.find_message(channel_id, message_ts) if self.fake else None
        message = found.to_slack() if found else {"type": "message", "ts": message_ts, "text": ""}
        action: dict[str, Any] = {"action_id": action_id, "block_id": block_id, "type": action_type,
                                  "action_ts": f"{time.time():.6f}"}
        if action_type == "button":
            action["text"] = {"type": "plain_text", "text": text, "emoji": True}
        if value is not None:
            action["value"] = value
        return {
            "type": "block_actions", "token": "verification-token", "api_app_id": self.api_app_id,
            "user": {"id": user_id, "username": user_id.lower(), "name": user_id.lower(),
                     "team_id": self.team_id},
            "container": {"type": "message", "message_ts": message_ts, "channel_id": channel_id,
                          "is_ephemeral": False},
            "trigger_id": new_trigger_id(), "team": {"id": self.team_id, "domain": self.team_domain},
            "enterprise": None, "is_enterprise_install": False,
            "channel": {"id": channel_id, "name": channel_id.lower()}, "message": message,
            "state": {"values": {}}, "actions": [action],
            "response_url": response_url or self.response_url(channel_id, user_id, message_ts),
        }


class SocketSender(Payloads):
    """Pushes commands, events and clicks to the fake's Socket Mode clients.

    Each method returns the envelope_id; `fake.wait_for_ack(envelope_id)` returns the ack.
    """

    def __init__(self, fake: "FakeSlack") -> None:
        super().__init__(fake)
        self.fake: "FakeSlack" = fake

    def command(self, command: str, text: str = "", user_id: str = "U1", channel_id: str = "C1",
                **fields: Any) -> str:
        """Send a `slash_commands` envelope (fields as in `command_payload`)."""
        payload = self.command_payload(command, text, user_id, channel_id, **fields)
        return self.fake.socket_send("slash_commands", payload)

    def event(self, event: dict[str, Any], event_id: str | None = None,
              retry_attempt: int = 0, retry_reason: str = "") -> str:
        """Send an `events_api` envelope; a retry repeats `event_id` with retry_attempt > 0."""
        return self.fake.socket_send("events_api", self.event_payload(event, event_id),
                                     retry_attempt=retry_attempt, retry_reason=retry_reason)

    def action(self, action_id: str, value: str | None = None, user_id: str = "U1",
               channel_id: str = "C1", message_ts: str | None = None, **fields: Any) -> str:
        """Send an `interactive` envelope holding a block_actions payload."""
        payload = self.action_payload(action_id, value, user_id, channel_id, message_ts, **fields)
        return self.fake.socket_send("interactive", payload)
