"""`@labmate <question>` in a channel or thread: the same search as /papers, answered in the thread."""

from __future__ import annotations

import re

from bot.blocks import text_blocks
from bot.commands.papers import papers_messages
from bot.errors import user_message

_MENTION = re.compile(r"<@[A-Z0-9]+(?:\|[^>]*)?>")


def register(app, services) -> None:
    @app.event("app_mention")
    def on_mention(event):
        channel, thread = event["channel"], event.get("thread_ts") or event["ts"]

        def reply(text: str) -> None:
            services.messenger.post(channel=channel, thread_ts=thread, text=text, blocks=text_blocks(text))

        if not services.settings.access.papers.allows(event.get("user"), channel):
            services.messenger.post(channel=channel, user=event.get("user"), thread_ts=thread,
                                    text="Sorry, I'm not enabled for you in this channel.")
            return
        question = _MENTION.sub(" ", event.get("text", "")).strip()
        services.submit(lambda: _answer(services, question, channel, thread), lambda exc: reply(user_message(exc)))


def _answer(services, question: str, channel: str, thread: str) -> None:
    _, messages = papers_messages(services, _strip_filler(question))
    for fallback, blocks in messages:
        services.messenger.post(channel=channel, thread_ts=thread, text=fallback, blocks=blocks)


def _strip_filler(question: str) -> str:
    """'what do we have on X?' searches for X (the filler words only dilute BM25)."""
    text = re.sub(r"^(hi|hey|hello)[,!\s]+", "", question.strip(), flags=re.I)
    text = re.sub(r"^(what|which|any|do we have|have we got|find|search( for)?|papers?( on| about)?)\b[\w\s]*?"
                  r"\b(on|about|for|regarding)\s+", "", text, flags=re.I)
    return text.rstrip("?!. ") or question
