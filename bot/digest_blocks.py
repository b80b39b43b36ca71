"""Block Kit of paper digests: pure functions (tested against saved JSON)."""

from __future__ import annotations

from datetime import datetime

from bot.blocks import clip, escape, results_blocks, results_text


def digest_heading(query: str, since: datetime) -> str:
    return f"New papers on “{query}” since {format_time(since)}"


def format_time(moment: datetime) -> str:
    """'Mon 3 Mar 2025, 09:00 CET' (in the zone `moment` carries)."""
    return f"{moment:%a} {moment.day} {moment:%b %Y, %H:%M} {moment.tzname() or ''}".rstrip()


def footer_block(sub_id: int, frequency: str) -> dict:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": (
        f"{frequency.capitalize()} digest #{sub_id} · `/papers unsubscribe {sub_id}` stops it")}]}


def digest_blocks(sub_id: int, query: str, frequency: str, since: datetime, hits: list) -> list[dict]:
    """The heading, the new papers as `/papers` shows results (BibTeX, More like this, and the
    draft button on the query), and a footer naming the subscription (call `split_messages`)."""
    heading = {"type": "header", "text": {"type": "plain_text", "text": clip(digest_heading(query, since), 150)}}
    return [heading, *results_blocks(f"“{query}”", hits, draft_topic=query), footer_block(sub_id, frequency)]


def digest_text(query: str, since: datetime, hits: list) -> str:
    """Plain-text fallback of a digest."""
    return clip(digest_heading(query, since) + "\n" + results_text(f"“{query}”", hits), 3900)


def empty_digest_blocks(sub_id: int, query: str, frequency: str, since: datetime) -> list[dict]:
    """The brief message of a digest with nothing new."""
    text = f"No new papers on “{escape(query)}” since {format_time(since)}."
    return [{"type": "section", "text": {"type": "mrkdwn", "text": clip(text)}}, footer_block(sub_id, frequency)]


def empty_digest_text(query: str, since: datetime) -> str:
    return f"No new papers on “{query}” since {format_time(since)}."


def subscriptions_text(subscriptions: list, next_runs: dict[int, datetime | None]) -> str:
    """This channel's subscriptions, one a line, with their next run."""
    if not subscriptions:
        return "This channel has no paper digests. Start one with `/papers subscribe <words> [daily|weekly]`."
    lines = ["*Paper digests in this channel*"]
    for sub in subscriptions:
        when = next_runs.get(sub.id)
        nxt = f" · next {format_time(when)}" if when else ""
        by = f" · by <@{sub.user}>" if sub.user else ""
        lines.append(f"#{sub.id} “{escape(sub.query)}” · {sub.frequency}{nxt}{by}")
    lines.append("`/papers unsubscribe <id>` stops one.")
    return "\n".join(lines)
