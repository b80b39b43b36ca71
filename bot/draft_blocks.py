"""Block Kit rendering of `/draft`: pure functions from a draft job or a finished Draft to
`list[dict]` (tested against saved JSON), within Slack's limits like bot/blocks.py.

A draft is one channel message edited in place (placeholder, live text, summary or error)
plus, in its thread, the full text with references and warnings, split into messages.
"""

from __future__ import annotations

import re

from bot.blocks import MAX_SECTION, clip, escape, split_messages
from drafting.sections import SECTIONS

LIVE_CHARS = 2800  # the live text shows the end of the draft so far
CHUNK = MAX_SECTION - 100
FALLBACK_CHARS = 3900
MESSAGE_CHARS = 12000  # text per thread message: long ones are refused (msg_blocks_too_long) or folded


def draft_help() -> str:
    """The usage of /draft, listing the sections."""
    names = ", ".join(f"`{name}`" for name in SECTIONS)
    return ("*Draft a paper section from the lab's library*\n"
            "`/draft <section> <topic>`, e.g. `/draft related-work graph neural networks for molecules`\n"
            f"Sections: {names}.\n"
            "I write it live in the channel, then post the full text with its references in the thread, "
            "with `.md` and `.bib` files. Every `[n]` cites a paper of the library.\n"
            "On `/papers` results, *Draft related work from these* drafts from exactly the papers listed.")


def heading(title: str, topic: str, user: str) -> str:
    """'*Related work* on _topic_ for <@U1>' (the topic escaped)."""
    return f"*{escape(title)}* on _{escape(topic)}_ for <@{user}>"


def placeholder_text(title: str, topic: str, user: str, papers: int = 0, queued: bool = False) -> str:
    """'Drafting the related work section on _topic_ for <@U1>…' (or that it waits its turn)."""
    source = "" if not papers else " from the paper listed" if papers == 1 else f" from the {papers} papers listed"
    text = f"Drafting the {escape(title.lower())} section on _{escape(topic)}_{source} for <@{user}>…"
    if queued:
        text += "\n:hourglass_flowing_sand: Queued: another draft is being written; yours starts right after it."
    return clip(text)


def placeholder_blocks(title: str, topic: str, user: str, papers: int = 0, queued: bool = False) -> list[dict]:
    """The channel message posted at once, before any retrieval or writing."""
    return [{"type": "section", "text": {"type": "mrkdwn", "text": placeholder_text(title, topic, user, papers,
                                                                                    queued)}}]


def live_blocks(title: str, topic: str, user: str, text: str) -> list[dict]:
    """The placeholder while the model writes: heading, the end of the text so far, 'writing…'."""
    body = to_mrkdwn(text)
    if len(body) > LIVE_CHARS:
        body = "…" + body[-LIVE_CHARS:]
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(heading(title, topic, user))}},
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(body or "…")}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text": ":writing_hand: writing…"}]},
    ]


def summary_text(draft, title: str, user: str) -> str:
    """One line: what was drafted, how many sources it cites, how many warnings."""
    cited, warned = len(draft.citations), len(draft.warnings)
    return (f"{heading(title, draft.topic, user)}: drafted, {cited} source{'s' * (cited != 1)} cited, "
            f"{warned} warning{'s' * (warned != 1)}.")


def summary_blocks(draft, title: str, user: str) -> list[dict]:
    """The placeholder once the draft is done: the summary and where the full text is."""
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": clip(":memo: " + summary_text(draft, title, user))}},
        {"type": "context", "elements": [{"type": "mrkdwn", "text":
                                          "Full text, references and `.md`/`.bib` files are in the thread."}]},
    ]


def failure_blocks(title: str, topic: str, user: str, message: str) -> list[dict]:
    """The placeholder when drafting failed: what was asked and what to do (`message`)."""
    return [{"type": "section", "text": {"type": "mrkdwn", "text": clip(
        f"Could not draft the {escape(title.lower())} section on _{escape(topic)}_ for <@{user}>.\n{message}")}}]


def thread_messages(draft, title: str) -> list[tuple[str, list[dict]]]:
    """The full draft for the thread as (fallback text, blocks) messages: text, references,
    warnings; long drafts take several messages, none over Slack's limits."""
    blocks = [{"type": "header", "text": {"type": "plain_text", "text": clip(f"{title}: {draft.topic}", 150)}}]
    blocks += [_section(chunk) for chunk in chunks(to_mrkdwn(draft.text) or "(empty)")]
    if draft.references:
        blocks += [_section(chunk) for chunk in chunks("*References*\n" + escape(draft.references))]
    if draft.warnings:
        lines = "\n".join(f"• {escape(w)}" for w in draft.warnings)
        blocks += [_section(chunk) for chunk in chunks(f":warning: *Warnings*\n{lines}")]
    return [(_fallback(part), part) for part in split_messages(blocks, max_chars=MESSAGE_CHARS)]


def _section(text: str) -> dict:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


def _fallback(blocks: list[dict]) -> str:
    return clip("\n\n".join(b["text"]["text"] for b in blocks), FALLBACK_CHARS)


def chunks(text: str, limit: int = CHUNK, separators: tuple[str, ...] = ("\n\n", "\n", " ")) -> list[str]:
    """`text` cut into pieces of at most `limit` characters: whole paragraphs when they fit,
    else lines, else words (a hard cut only for a word longer than `limit`)."""
    text = text.strip()
    if len(text) <= limit:
        return [text]
    if not separators:
        return [text[i:i + limit] for i in range(0, len(text), limit)]
    separator, finer = separators[0], separators[1:]
    pieces, current = [], ""
    for part in text.split(separator):
        joined = f"{current}{separator}{part}" if current else part
        if len(joined) <= limit:
            current = joined
            continue
        if current:
            pieces.append(current)
        current = part if len(part) <= limit else ""
        if not current:
            pieces += chunks(part, limit, finer)
    if current:
        pieces.append(current)
    return [piece for piece in pieces if piece.strip()]


def to_mrkdwn(markdown: str) -> str:
    """Markdown as Slack shows it: escaped, headings and **bold** as *bold*, *italics* as
    _italics_, [text](url) as links, bullets as •. Citations `[n]` stay as they are."""
    text = escape(markdown or "")
    text = re.sub(r"^#{1,6}\s*(.+?)\s*#*$", "\0\\1\0", text, flags=re.M)
    text = re.sub(r"^(\s*)[-*+]\s+", "\\1• ", text, flags=re.M)
    text = re.sub(r"\*\*(.+?)\*\*", "\0\\1\0", text)
    text = re.sub(r"(?<![\w*])\*([^*\n]+?)\*(?![\w*])", r"_\1_", text)
    text = re.sub(r"\[([^\]\n]+)\]\((https?://[^)\s]+)\)", r"<\2|\1>", text)
    return text.replace("\0", "*")
