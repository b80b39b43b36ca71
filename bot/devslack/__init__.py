"""devslack: a local, Slack-compatible workspace for tests and for running labmate without Slack.

- `FakeSlack`: Web API (`.url` for WebClient/SLACK_API_URL), response_urls, file hosting,
  Socket Mode over WebSocket, a record of every call, failure injection.
- `SlackSender`: signed HTTP requests to an app's /slack/events, as Slack sends them.
- `SocketSender`: the same commands, events and clicks pushed over Socket Mode.
"""

from .models import Ack, Call, Message, StoredFile
from .payloads import Payloads, SocketSender
from .server import FakeSlack, parse_blocks
from .signing import Response, SlackSender, sign

__all__ = ["Ack", "Call", "FakeSlack", "Message", "Payloads", "Response", "SlackSender",
           "SocketSender", "StoredFile", "parse_blocks", "sign"]
