"""Block Kit rendering: pure functions from results to `list[dict]` (tested against saved JSON).

Slack rejects a message with more than 50 blocks or a section over 3,000 characters, so every
renderer stays within those limits and `split_messages` cuts long lists into several messages.
"""

from __future__ import annotations

import json

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_VALUE = 2000  # a button's value
DRAFT_ACTION = "draft_from_results"


def clip(text: str, limit: int = MAX_SECTION) -> str:
    """`text` cut to `limit` characters (an ellipsis marks the cut), as Slack limits fields."""
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def escape(text: str) -> str:
    """Slack mrkdwn needs &, < and > escaped, or links and mentions break."""
    return (text or "").replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def hit_blocks(hit, rank: int) -> list[dict]:
    """One result: linked title, authors · year · venue, snippet, score, and two buttons."""
    title = escape(hit.title)
    linked = f"<{hit.url}|{title}>" if hit.url else title
    authors = ", ".join(hit.authors[:4]) + (" et al." if len(hit.authors) > 4 else "")
    meta = " · ".join(str(x) for x in (escape(authors), hit.year, escape(hit.venue or "")) if x)
    page = f" (p. {hit.page})" if hit.page else ""
    body = f"*{rank}. {linked}*\n{meta}\n>{escape(hit.snippet)}{page}" if meta else \
        f"*{rank}. {linked}*\n>{escape(hit.snippet)}{page}"
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(body)}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": f"`{escape(hit.id)}` · score {hit.score:.3f}"}]},
        {"type": "actions", "block_id": f"paper:{hit.id}"[:255], "elements": [
            {"type": "button", "action_id": "papers_bibtex", "text": {"type": "plain_text", "text": "BibTeX"},
             "value": hit.id[:2000]},
            {"type": "button", "action_id": "papers_more_like", "text": {"type": "plain_text", "text": "More like this"},
             "value": hit.id[:2000]},
        ]},
    ]


def draft_button_block(topic: str, paper_ids: list[str]) -> dict:
    """The "Draft related work from these" button; its value is JSON {"topic", "papers"} kept
    under Slack's 2,000 characters (the topic is clipped, then ids dropped from the end)."""
    topic = topic[:300]
    ids: list[str] = []
    for paper_id in paper_ids:
        if len(json.dumps({"topic": topic, "papers": ids + [paper_id]})) > MAX_VALUE:
            break
        ids.append(paper_id)
    return {"type": "actions", "block_id": "draft", "elements": [
        {"type": "button", "action_id": DRAFT_ACTION,
         "text": {"type": "plain_text", "text": "Draft related work from these"},
         "value": json.dumps({"topic": topic, "papers": ids})}]}


def results_blocks(description: str, hits: list, draft_topic: str | None = None) -> list[dict]:
    """A header line and the hits (call `split_messages` before posting); with `draft_topic`,
    a last button that drafts a related-work section on it from the hits shown."""
    header = {"type": "section", "text": {"type": "mrkdwn",
                                          "text": clip(f"*{len(hits)} paper(s) for {escape(description)}*")}}
    if not hits:
        return [{"type": "section", "text": {"type": "mrkdwn", "text": clip(
            f"No papers match {escape(description)}. Try fewer words or looser filters.")}}]
    blocks = [header]
    for rank, hit in enumerate(hits, start=1):
        blocks += hit_blocks(hit, rank)
    if draft_topic and draft_topic.strip():
        blocks.append(draft_button_block(draft_topic.strip(), [hit.id for hit in hits]))
    return blocks


def results_text(description: str, hits: list) -> str:
    """Plain-text fallback (notifications, screen readers, clients without blocks)."""
    if not hits:
        return f"No papers match {description}."
    lines = [f"{len(hits)} paper(s) for {description}:"]
    for rank, hit in enumerate(hits, start=1):
        lines.append(f"{rank}. {hit.title} ({hit.year or 'n.d.'}) [{hit.id}]")
    return clip("\n".join(lines), 3900)


def split_messages(blocks: list[dict], limit: int = MAX_BLOCKS, max_chars: int | None = None) -> list[list[dict]]:
    """Cut blocks into messages of at most `limit` blocks (and, with `max_chars`, about that much
    text each), never separating a result from its buttons."""
    messages, current, chars = [], [], 0
    for block in blocks:
        starts_result = block["type"] == "section" and current and current[-1]["type"] == "actions"
        size = len(str((block.get("text") or {}).get("text", "")))
        too_long = max_chars is not None and current and chars + size > max_chars
        if len(current) >= limit or (starts_result and len(current) + 3 > limit) or too_long:
            messages.append(current)
            current, chars = [], 0
        current.append(block)
        chars += size
    if current:
        messages.append(current)
    return messages


def bibtex_blocks(entry: str) -> list[dict]:
    """A BibTeX entry in a code block (split into sections if it is very long)."""
    return code_blocks(entry)[:MAX_BLOCKS]


def code_blocks(text: str) -> list[dict]:
    """Any text verbatim in code blocks, one section per 2,990 characters (no cap: split the
    result with `split_messages`)."""
    size = MAX_SECTION - 10
    chunks = [text[i:i + size] for i in range(0, len(text), size)] or [""]
    return [{"type": "section", "text": {"type": "mrkdwn", "text": f"```{chunk}```"}} for chunk in chunks]


def text_blocks(text: str) -> list[dict]:
    """A plain message (help, confirmations, errors) as one section."""
    return [{"type": "section", "text": {"type": "mrkdwn", "text": clip(text)}}]
