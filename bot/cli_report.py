"""`labmate report run weekly`: post a scheduled report now, from the command line."""

from __future__ import annotations

import os

import click

from bot.cli import main, settings_of

NEEDS_TOKEN = ("labmate report run posts to Slack, so it needs SLACK_BOT_TOKEN (the bot token, xoxb-...) in the "
               "environment, as labmate serve does (SLACK_API_URL sends the calls elsewhere, e.g. a test server).")
NO_CHANNEL = ("No channel to post the report in: pass --channel C0123456789, or set `channel` in the [reports] "
              "section of config.toml (or LABMATE_REPORTS__CHANNEL).")


@main.group()
def report() -> None:
    """Scheduled reports ([reports] in config.toml; `labmate serve` posts them on schedule).

    \b
    labmate report run weekly
    labmate report run weekly --channel C0123456789
    """


@report.command("run")
@click.argument("kind", type=click.Choice(["weekly"]))
@click.option("--channel", default=None, help="Channel id to post in (default: [reports] channel).")
@click.pass_context
def run(ctx, kind: str, channel: str | None) -> None:
    """Post the KIND report now (weekly: the last 7 days' papers, drafts and training jobs)."""
    from bot.services import Services
    from bot.slack_client import Messenger, make_client
    from bot.weekly import post_weekly
    from core.errors import ConfigError, LabmateError

    settings = settings_of(ctx)
    token = os.environ.get("SLACK_BOT_TOKEN")
    if not token:
        raise ConfigError(NEEDS_TOKEN)
    channel = channel or settings.reports.channel
    if not channel:
        raise ConfigError(NO_CHANNEL)
    services = Services(settings)
    try:
        client = make_client(token, os.environ, settings.slack.api_retries)
        services.messenger = Messenger(client, services.state, settings.slack.api_retries)
        before = len(services.state.pending())
        posted = post_weekly(services, channel)
        if len(services.state.pending()) > before:
            raise LabmateError(f"Slack did not take the report for {channel} (is the bot in that channel? "
                              "`/invite @labmate`); it waits in the outbox for `labmate serve` to redeliver it.")
    finally:
        services.close()
    click.echo(f"Posted the weekly report in {channel}." if posted else
               "Nothing new this week and [reports] skip_empty is on: nothing posted.")
