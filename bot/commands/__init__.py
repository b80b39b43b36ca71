"""One module per Slack command or event family, each with `register(app, services)`."""

from __future__ import annotations


def register_all(app, services) -> None:
    from bot.commands import draft, files, mentions, papers, train

    for module in (papers, draft, mentions, files, train):
        module.register(app, services)
    from bot.commands import report  # /report (scheduled reports on demand)

    report.register(app, services)
