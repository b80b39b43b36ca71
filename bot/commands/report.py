"""`/report weekly`: the lab's weekly report, posted in the channel now (see `bot.weekly`)."""

from __future__ import annotations

import logging

from bot.commands.train import replier
from bot.errors import user_message
from bot.report_blocks import report_help

log = logging.getLogger("labmate.report")

REFUSED = "Sorry, /report is not enabled for you in this channel. Ask whoever runs labmate to add you."
SKIPPED = "Nothing new this week, and `[reports] skip_empty` is on, so no report was posted."


def register(app, services) -> None:
    """`/report`."""

    @app.command("/report")
    def report_command(ack, command):
        ack()  # within Slack's 3 s, before reading the index or the training service
        user, channel = command.get("user_id"), command.get("channel_id")
        reply = replier(services, command.get("response_url"))
        if not services.settings.access.report.allows(user, channel):
            reply(REFUSED)
            return
        services.submit(lambda: run_report(services, (command.get("text") or "").strip(), channel, reply),
                        lambda exc: reply(user_message(exc)))


def run_report(services, text: str, channel: str, reply) -> None:
    """Do what `/report <text>` asks."""
    from bot.weekly import post_weekly

    sub = text.split()[0].lower() if text.split() else ""
    if sub != "weekly":
        reply(report_help() if sub in ("", "help", "-h", "--help", "?") else
              f"I don't know `/report {sub}`. " + report_help())
        return
    if not post_weekly(services, channel):
        reply(SKIPPED)
