"""One module per Slack command or event family, each with `register(app, services)`."""

from __future__ import annotations


def register_all(app, services) -> None:
    from bot.commands import files, mentions, papers

    for module in (papers, mentions, files):
        module.register(app, services)
