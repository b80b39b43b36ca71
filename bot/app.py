"""The Bolt application: `create_app(settings, services, env)` wires commands, events, errors."""

from __future__ import annotations

import logging
import os
from typing import Mapping

from core.errors import ConfigError

log = logging.getLogger("labmate.app")

TOKEN_HELP = (
    "labmate serve needs Slack credentials in the environment:\n"
    "  SLACK_BOT_TOKEN       the bot token (xoxb-...), from OAuth & Permissions\n"
    "  SLACK_APP_TOKEN       an app-level token (xapp-...) with connections:write, for Socket Mode (recommended)\n"
    "  SLACK_SIGNING_SECRET  the signing secret, from Basic Information (needed for --mode http)\n"
    "See README.md, 'Connect to Slack'."
)


def create_app(settings, services, env: Mapping[str, str] | None = None, *, verify_token: bool = True,
               metrics: bool = True):
    """A configured slack_bolt App whose Web API calls go through SLACK_API_URL when set.

    With `metrics` (the default), `app.labmate_metrics` is a `bot.metrics.BotMetrics` counting its
    requests and Web API errors (bot/serve.py times the acks and serves it); else None."""
    from slack_bolt import App, BoltResponse

    from bot.commands import register_all
    from bot.errors import user_message
    from bot.slack_client import Messenger, make_client

    env = os.environ if env is None else env
    token = env.get("SLACK_BOT_TOKEN")
    if not token:
        raise ConfigError(TOKEN_HELP)
    observer = None
    if metrics:
        from bot.metrics import BotMetrics

        # Jobs by state when they are in this machine's database (else `labmate train serve` has them).
        observer = BotMetrics(services, training_database=None if settings.training.url else settings.training.database)
    client = make_client(token, env, settings.slack.api_retries, observer)
    secret = env.get("SLACK_SIGNING_SECRET") or ""
    app = App(client=client, signing_secret=secret, request_verification_enabled=bool(secret),
              token_verification_enabled=verify_token, logger=logging.getLogger("labmate.bolt"))
    services.messenger = Messenger(client, services.state, settings.slack.api_retries, observer)

    @app.middleware
    def handle_each_event_once(body, next):
        # Slack retries deliveries it thinks were slow (X-Slack-Retry-Num, same event_id);
        # the database remembers ids across restarts and across processes.
        event_id = body.get("event_id") if isinstance(body, dict) else None
        if event_id and not services.state.first_time(event_id):
            log.info("event %s already handled; ignoring the retry", event_id)
            return BoltResponse(status=200, body="")
        return next()

    @app.error
    def on_error(error, body, respond, logger):
        logger.exception("listener failed: %s", error)
        if observer is not None:
            observer.listener_failed(error)
        if respond is not None and isinstance(body, dict) and body.get("response_url"):
            respond(text=user_message(error), response_type="ephemeral", replace_original=False)

    register_all(app, services)
    if observer is not None:
        observer.instrument(app, services)
    app.labmate_metrics = observer
    return app
